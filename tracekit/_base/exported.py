"""The names tracekit's OTLP/JSON export writes and its import reads back (one place for both)."""

from __future__ import annotations

__all__ = ["EXPORTED", "EXPORTED_COLUMNS"]

#: the resource attribute of spans tracekit exported (its value: the run id)
EXPORTED = "tracekit.run_id"
#: the event columns a ``tracekit.event`` carries as ``tracekit.<column>``, in ``Draft`` order
EXPORTED_COLUMNS = ("name", "call_id", "args", "output", "status", "error", "tokens_in",
                    "tokens_out", "cost_usd", "latency_ms", "attrs", "model")  # fmt: skip
