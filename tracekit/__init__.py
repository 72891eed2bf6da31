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

from ._agent import entrypoint, model, now, random
from ._agentreplay import RecordingEnds, ReplayDivergence, ReplayedToolError
from ._config import Release, Settings, configure, flush, shutdown
from ._effects import DuplicateInFlight, IdempotencyConflict, ReplayedFailure
from ._encode import canonical_json
from ._guard import Guard, Halted, OutOfScope
from ._incident import export_incident
from ._query import connect
from ._redact import Redactor
from ._replay import Verdict, replay
from ._run import Run, current_run, run, tool
from ._schema import EVENT_SCHEMA, SCHEMA_VERSION
from ._store import TracekitWarning, resolve_root
from ._version import __version__

__all__ = [
    "EVENT_SCHEMA",
    "SCHEMA_VERSION",
    "DuplicateInFlight",
    "Guard",
    "Halted",
    "IdempotencyConflict",
    "OutOfScope",
    "RecordingEnds",
    "Redactor",
    "Release",
    "ReplayDivergence",
    "ReplayedFailure",
    "ReplayedToolError",
    "Run",
    "Settings",
    "TracekitWarning",
    "Verdict",
    "__version__",
    "canonical_json",
    "configure",
    "connect",
    "current_run",
    "entrypoint",
    "export_incident",
    "flush",
    "model",
    "now",
    "random",
    "recover",
    "replay",
    "resolve_root",
    "run",
    "shutdown",
    "tool",
]


def recover(store: str | None = None) -> tuple[int, int]:
    """Compact every segment left by a dead writer; returns (segments, rows) recovered."""
    from ._store import Store

    return Store(resolve_root(store)).recover()
