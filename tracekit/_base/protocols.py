"""The small protocols the rooms see each other through."""

from __future__ import annotations

from typing import Protocol

__all__ = ["RunView"]


class RunView(Protocol):
    """What the guard and the ledger see of a run: its identity, lineage and current step
    (a live ``tracekit.Run``, or a run rebuilt from its recorded events by policy replay)."""

    run_id: str
    tenant: str
    parent_run_id: str | None
    root_run_id: str
    depth: int
    step: int
    release_id: str

    def next_seq(self) -> int: ...
