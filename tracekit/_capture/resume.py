"""What the durable trace shows of a run being resumed: its steps, next seq, cost, progress
marks, last change of state and the tool calls it made (read from the store with pyarrow, so
resuming needs no DuckDB)."""

from __future__ import annotations

from .._base.vocab import EventKind
from .._contain.runguard import RunTrace
from .._store.layout import Store
from .._store.reading import run_rows
from .state import PROCESS

__all__ = ["trace_so_far"]

_COLUMNS = ["seq", "step", "kind", "name", "args", "cost_usd"]


def trace_so_far(run_id: str) -> RunTrace | None:
    """The run's trace so far (None if the store has none, or cannot be read: the saved
    state alone, then)."""
    PROCESS.flush()
    try:
        rows = run_rows(Store(PROCESS.settings().store), run_id, _COLUMNS).to_pylist()
    except Exception:
        return None
    if not rows:
        return None
    first_step: dict[tuple[str, str], int] = {}
    for row in rows:
        if row["kind"] == EventKind.TOOL_CALL and row["args"] is not None:
            key = (row["name"], row["args"])
            first_step[key] = min(first_step.get(key, row["step"] or 0), row["step"] or 0)
    progress_steps = [r["step"] or 0 for r in rows if r["kind"] == EventKind.PROGRESS]
    return RunTrace(
        steps=max(r["step"] or 0 for r in rows),
        seq=max(r["seq"] for r in rows) + 1,
        cost=float(sum(r["cost_usd"] or 0.0 for r in rows)),
        progress=len(progress_steps),
        last_change_step=max([*progress_steps, *first_step.values(), 0]),
        calls=sorted(first_step),
    )
