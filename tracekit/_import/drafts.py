"""What every importer gives the loader: events as ``Draft``s, grouped into ``Unit``s (a span,
a step, an HTTP interaction), each naming the run it belongs to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["Draft", "Unit"]


class Draft(NamedTuple):
    """One event of a foreign trace: its recorded time (ns) and its place among the events of
    the same unit (``part``: 0 at the unit's start, 1 at its end); the event columns as JSON
    text; ``model`` is the model that answered (the run's release is stamped with it)."""

    ts_ns: int
    part: int
    kind: str
    name: str | None = None
    call_id: str | None = None
    args: str | None = None
    output: str | None = None
    status: str | None = None
    error: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    attrs: str | None = None
    model: str | None = None


class Unit(NamedTuple):
    """One piece of a foreign run as a reader gives it, with its events.

    ``run_id`` must be the same whenever the same trace is imported (importing is idempotent by
    run id): a trace id, a session id, a digest of the file. The run starts at its earliest
    unit and ends at its latest. ``name`` names the run (the earliest unit that gives one wins);
    the ``error`` of a ``root`` unit fails the run (``""``: failed without a message).
    ``source`` and ``meta`` go on the run's ``run_start`` (``{"imported": source, **meta}``,
    from its first unit); ``parent_run_id`` makes the run a sub-run of another (a nested agent).
    """

    run_id: str
    start_ns: int
    end_ns: int
    drafts: Sequence[Draft]
    name: str | None = None
    root: bool = False
    error: str | None = None
    tenant: str | None = None
    source: str = "imported"
    meta: Mapping[str, Any] | None = None
    parent_run_id: str | None = None
