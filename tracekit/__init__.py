"""tracekit: the flight recorder, circuit breaker and regression net for AI agents.

Record a run::

    import tracekit

    tracekit.configure(release=tracekit.Release(model="gpt-x", prompt="v3", tools="v7"))

    @tracekit.tool
    def lookup_order(order_id: str) -> dict: ...

    with tracekit.run(tenant="acme") as run:
        run.prompt(messages)
        run.model_output(reply, usage=usage, cost_usd=0.002)
        lookup_order("A-1")

Query it: ``tracekit.connect().execute("SELECT * FROM runs").fetchall()``. Test agents with
``tracekit.testing.recording``.
"""

from typing import TYPE_CHECKING, Any

from . import errors
from ._base.encode import canonical_json
from ._base.redact import Redactor
from ._base.schema import EVENT_SCHEMA, SCHEMA_VERSION
from ._base.vocab import EventKind, EventStatus, HaltLevel, LedgerStatus, Signal
from ._capture.clock import now, random
from ._capture.decorators import entrypoint, model, tool
from ._capture.run import Run, current_run, run
from ._capture.settings import Release, Settings
from ._capture.state import configure, flush, shutdown
from ._contain.settings import Guard
from ._oncall import Status, Switched, compensate, halt, scope, status, unhalt
from ._query.named import named_queries, run_named
from ._store.layout import resolve_root
from ._version import __version__
from .errors import (
    DuplicateInFlight,
    Halted,
    IdempotencyConflict,
    LedgerWriteFailed,
    OutOfScope,
    RecordingEnds,
    ReplayDivergence,
    ReplayedFailure,
    ReplayedToolError,
    TracekitError,
    TracekitWarning,
)

if TYPE_CHECKING:
    from ._export.bundle import export_incident
    from ._export.otlp import export_otlp
    from ._import.load import import_traces
    from ._integrations.instrument import instrument
    from ._query.views import connect
    from ._replay.policy import Verdict, replay
    from ._report.postmortem import build_postmortem, chart

__all__ = [
    "EVENT_SCHEMA",
    "SCHEMA_VERSION",
    "DuplicateInFlight",
    "EventKind",
    "EventStatus",
    "Guard",
    "HaltLevel",
    "Halted",
    "IdempotencyConflict",
    "LedgerStatus",
    "LedgerWriteFailed",
    "OutOfScope",
    "RecordingEnds",
    "Redactor",
    "Release",
    "ReplayDivergence",
    "ReplayedFailure",
    "ReplayedToolError",
    "Run",
    "Settings",
    "Signal",
    "Status",
    "Switched",
    "TracekitError",
    "TracekitWarning",
    "Verdict",
    "__version__",
    "build_postmortem",
    "canonical_json",
    "chart",
    "compensate",
    "configure",
    "connect",
    "current_run",
    "entrypoint",
    "errors",
    "export_incident",
    "export_otlp",
    "flush",
    "halt",
    "import_traces",
    "instrument",
    "model",
    "named_queries",
    "now",
    "random",
    "recover",
    "replay",
    "resolve_root",
    "run",
    "run_named",
    "scope",
    "shutdown",
    "status",
    "tool",
    "unhalt",
]


_LAZY = {
    "connect": "_query.views",
    "export_incident": "_export.bundle",
    "export_otlp": "_export.otlp",
    "replay": "_replay.policy",
    "Verdict": "_replay.policy",
    "chart": "_report.postmortem",
    "build_postmortem": "_report.postmortem",
    "instrument": "_integrations.instrument",
    "import_traces": "_import.load",
}


def __getattr__(name: str) -> Any:
    """The query, export and replay API, imported on first use (DuckDB is slow to load)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tracekit' has no attribute {name!r}")


def recover(store: str | None = None) -> tuple[int, int]:
    """Compact every segment left by a dead writer; returns (segments, rows) recovered."""
    from ._store.compaction import recover as compact_dead
    from ._store.layout import Store

    return compact_dead(Store(resolve_root(store)))
