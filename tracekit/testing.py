"""Helpers for testing agents that record with tracekit.

    from tracekit.testing import recording

    def test_agent_stops_refunding(tmp_path):
        with recording(tmp_path / "store") as rec:
            my_agent.handle(ticket)
        assert rec.count("SELECT count(*) FROM tool_calls WHERE tool = 'issue_refund'") == 1

``recorded_in_memory()`` records into a ``MemorySink`` (no store, no DuckDB), like
OpenTelemetry's in-memory exporter; ``reset()`` forgets every setting and stops the recorder
and the guard between tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._capture import state as _state
from ._capture.rows import Event, MemorySink
from ._capture.state import PROCESS

__all__ = [
    "Event",
    "MemorySink",
    "Recording",
    "incident_bundle",
    "judge",
    "recorded_in_memory",
    "recording",
    "reset",
]


class Recording:
    """A store the code under test recorded into; every query first flushes the recorder."""

    def __init__(self, store: os.PathLike[str] | str) -> None:
        self.store = store

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL over the views; one dict per row."""
        from ._query.views import connect

        _state.flush()
        with connect(self.store) as con:
            cursor = con.execute(sql, params or [])
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def count(self, sql: str, params: list[Any] | None = None) -> int:
        """The single integer a ``SELECT count(*) ...`` returns."""
        [row] = self.rows(sql, params)
        [value] = row.values()
        return int(value)

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Every event (of one run, if given), in recording order."""
        if run_id is None:
            return self.rows("SELECT * FROM events ORDER BY ts, run_id, seq")
        return self.rows("SELECT * FROM events WHERE run_id = ? ORDER BY seq", [run_id])

    def runs(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM runs ORDER BY started, run_id")


@contextmanager
def recording(
    store: os.PathLike[str] | str, release: Any = None, redact: Any = None
) -> Iterator[Recording]:
    """Record into ``store`` for the duration of the block, then restore the previous settings."""
    previous = _state.settings()
    _state.configure(store=store, release=release, redact=redact)
    try:
        yield Recording(store)
    finally:
        _state.shutdown()
        _state.configure(store=previous.store, release=previous.release, redact=previous.redactor)


def judge(verdict: Any, halt_by: int, max_effects: int, max_cost: float) -> str:
    """The eval gate's judgement of a replay against the expectations (the damage allowed):
    ``contained`` (today's guard halted it within them) or ``resolved`` (today's agent ended by
    itself within them); otherwise an ``AssertionError`` naming the expectation that broke."""
    said = verdict.describe()
    if not verdict.contained and not verdict.ended_by_itself:
        raise AssertionError(f"not contained: {said}")
    outcome = "contained" if verdict.contained else "resolved"
    broken = [
        f"{what} ({limit})"
        for what, failed, limit in (
            (
                f"it went to step {verdict.step}",
                (verdict.step or 0) > halt_by,
                f"HALT_BY_STEP = {halt_by}",
            ),
            (
                f"{len(verdict.effects)} effect(s) fired",
                len(verdict.effects) > max_effects,
                f"MAX_EFFECTS = {max_effects}",
            ),
            (
                f"${verdict.spend_usd:.4f} spent",
                verdict.spend_usd > max_cost,
                f"MAX_COST_USD = {max_cost}",
            ),
        )
        if failed
    ]
    if broken:
        how = "halted" if verdict.contained else "ended by itself"
        raise AssertionError(f"not contained: {how}, but {'; '.join(broken)}: {said}")
    return outcome


def reset() -> None:
    """Forget everything tracekit holds in this process: the recorder is shut down (what it
    buffered is written), the guard and the control store are closed, the settings go back to
    their defaults (read again from the environment and the project on next use)."""
    PROCESS.reset()


@contextmanager
def recorded_in_memory(guard: Any = None) -> Iterator[MemorySink]:
    """Record the block's events into a ``MemorySink`` instead of a store (nothing is written);
    ``guard`` (a ``tracekit.Guard``) checks its runs on an in-memory control store::

        with recorded_in_memory() as sink:
            my_agent.handle(ticket)
        assert [e.name for e in sink.events("tool_call")] == ["lookup_order"]
    """
    import time

    from ._contain.runtime import GuardRuntime
    from ._control.memory import MemoryControl

    sink = MemorySink()
    runtime = None if guard is None else GuardRuntime(guard, MemoryControl(), time.time)
    try:
        with PROCESS.pin(sink, runtime):
            yield sink
    finally:
        if runtime is not None:
            runtime.close()


def incident_bundle(test_file: str | os.PathLike[str], relative: str) -> Path:
    """The bundle a generated incident test replays, found relative to the test file."""
    path = (Path(test_file).resolve().parent / relative).resolve()
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"incident bundle {path} is missing: restore it from version "
            "control or re-export it with `tracekit export`"
        )
    return path
