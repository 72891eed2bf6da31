"""Foreign traces into the store: OTLP/JSON with OpenTelemetry's GenAI conventions, as runs
that show, query, export, make-test and replay like recorded ones.

``otlp`` reads the spans (a line at a time), ``genai`` turns each span into event drafts,
``load`` orders them into runs and writes them (``tracekit import``)."""

__all__ = ["FORMATS"]

#: what ``tracekit import --format`` takes ("auto" finds the format from the file)
FORMATS = ("auto", "otlp-json", "otel-genai")
