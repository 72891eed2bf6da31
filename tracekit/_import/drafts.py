"""An event as an importer reads it, before the run it belongs to is known whole."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Draft"]


class Draft(NamedTuple):
    """One event of a foreign trace: its recorded time (ns) and its place among the events of
    the same span (``part``: 0 at the span's start, 1 at its end); the event columns as JSON
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
