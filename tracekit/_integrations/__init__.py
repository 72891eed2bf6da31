"""One-line instrumentation of the SDKs agents are built on: ``tracekit.instrument(client)``.

Each SDK module wraps its client's model calls in place (its own methods, nothing patched
globally) and imports its SDK only when a client of it is instrumented.
"""
