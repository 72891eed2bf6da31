"""suggest-bounds: the guard settings that would have contained an incident, and their cost.

For each bound the guard has (repeats, steps, steps without progress, call and write rates, cost,
tenant spend, fan-out), candidate thresholds are drawn from what the incident itself shows, and
each is tried by policy replay, alone on an otherwise empty guard: over the incident (where does
it halt, with how many effects fired and how much spent) and over the healthy runs in the store
(how many it would also have stopped: false halts). Per bound the tightest setting (the earliest
halt) and the suggested one (fewest false halts, then earliest halt, then loosest) are reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .._contain.guard import Guard, Halted, RunGuard
from .._export.bundle import load_bundle

__all__ = ["BoundTrial", "Suggestion", "suggest_bounds"]

_INT_BOUNDS = ("max_repeats", "max_steps", "max_steps_without_progress",
               "max_tool_calls_per_minute", "max_writes_per_minute", "max_children",
               "max_depth")
_FLOAT_BOUNDS = ("max_cost_usd", "tenant_spend_usd")
_MAX_CANDIDATES = 24


@dataclass
class BoundTrial:
    """One setting of one bound, replayed."""

    bound: str
    value: float
    step: int | None  # where the incident halts (None: not contained)
    effects: int
    spend_usd: float
    false_halts: int

    @property
    def contains(self) -> bool:
        return self.step is not None


@dataclass
class Suggestion:
    bound: str
    tightest: BoundTrial | None
    suggested: BoundTrial | None
    trials: list[BoundTrial] = field(default_factory=list)


@dataclass
class Suggestions:
    incident: str
    healthy_runs: int
    bounds: list[Suggestion]

    def toml(self) -> str:
        """The suggested settings as a ``[tool.tracekit.guard]`` table."""
        lines = ["[tool.tracekit.guard]"]
        for item in self.bounds:
            if item.suggested is not None:
                value = item.suggested.value
                text = str(int(value)) if item.bound in _INT_BOUNDS else f"{value:g}"
                lines.append(f"{item.bound} = {text}  # halts at step {item.suggested.step}, "
                             f"{item.suggested.false_halts} false halt(s)")
        return "\n".join(lines)


def suggest_bounds(bundle: str | os.PathLike[str],
                   store: str | os.PathLike[str] | None = None,
                   healthy_limit: int = 1000) -> Suggestions:
    """Try candidate thresholds of every bound on the incident and on the store's other runs."""
    from .policy import decisions

    manifest, events, ledger = load_bundle(bundle, prompts=False)
    incident = decisions(events)
    fired = [r for r in ledger.to_pylist() if r["status"] == "fired"]
    healthy = _healthy(store, set(manifest["runs"]), healthy_limit)
    found = [_suggest(name, incident, fired, healthy) for name in (*_INT_BOUNDS,
                                                                   *_FLOAT_BOUNDS)]
    runs = len({r["run_id"] for r in healthy})
    return Suggestions(Path(bundle).name, runs, [s for s in found if s.trials])


def _healthy(store: str | os.PathLike[str] | None, incident: set[str],
             limit: int) -> list[dict[str, Any]]:
    """The decisions of the store's most recent runs outside the incident (none without a
    store)."""
    from .._query.views import connect
    from .._store.layout import Store, resolve_root
    from .policy import decisions

    root = resolve_root(store)
    if not Store(root).exists():
        return []
    with connect(root) as con:
        table: pa.Table = con.sql(
            "SELECT * FROM events WHERE kind <> 'prompt' AND run_id IN (SELECT run_id FROM runs "
            "WHERE run_id NOT IN (SELECT unnest($ids)) AND root_run_id NOT IN "
            "(SELECT unnest($ids)) ORDER BY started DESC LIMIT $limit)",
            params={"ids": sorted(incident), "limit": limit}).to_arrow_table()
    return decisions(table)


def _suggest(bound: str, incident: list[dict[str, Any]], fired: list[dict[str, Any]],
             healthy: list[dict[str, Any]]) -> Suggestion:
    trials = []
    from .policy import first_halt

    for value in _candidates(bound, incident):
        guard = Guard(**{bound: value})
        halt = first_halt(incident, guard)
        stopped = len(_halted_runs(healthy, guard)) if healthy else 0
        if halt is None:
            trials.append(BoundTrial(bound, value, None, len(fired), _spend(incident), stopped))
            continue
        _, row, spend = halt
        effects = sum(1 for f in fired if f["ts"] < row["ts"])
        trials.append(BoundTrial(bound, value, row["step"], effects, round(spend, 6), stopped))
    containing = [t for t in trials if t.contains]
    tightest = min(containing, key=lambda t: (t.step, t.value)) if containing else None
    suggested = min(containing, key=lambda t: (t.false_halts, t.step, -t.value)) \
        if containing else None
    return Suggestion(bound, tightest, suggested, trials)


def _candidates(bound: str, rows: list[dict[str, Any]]) -> list[Any]:
    """Thresholds worth trying, from what the incident shows."""
    if bound in _FLOAT_BOUNDS:
        total = _spend(rows)
        if total <= 0:
            return []
        steps = sorted({round(total * k / _MAX_CANDIDATES, 6) for k in range(1, _MAX_CANDIDATES)})
        return [v for v in steps if v > 0]
    top = max(2, min(_observed(bound, rows), 200))
    if top <= _MAX_CANDIDATES:
        return list(range(0 if bound in ("max_depth", "max_children") else 1, top + 1))
    ratio = top ** (1 / _MAX_CANDIDATES)
    return sorted({max(1, round(ratio ** k)) for k in range(_MAX_CANDIDATES + 1)})


def _observed(bound: str, rows: list[dict[str, Any]]) -> int:
    """How far the incident went on this bound's measure (an upper end for its candidates)."""
    steps = max((r["step"] or 0 for r in rows), default=0)
    calls = sum(1 for r in rows if r["kind"] == "tool_call")
    runs = len({r["run_id"] for r in rows})
    return {"max_depth": runs, "max_children": runs}.get(bound, max(steps, calls))


def _spend(rows: list[dict[str, Any]]) -> float:
    return float(sum(r["cost_usd"] or 0.0 for r in rows))


def _halted_runs(rows: list[dict[str, Any]], guard: Guard) -> set[str]:
    """The runs ``guard`` would have stopped (each run goes on until its own halt)."""
    from .policy import _decide, memory_runtime

    clock = [0.0]
    runtime = memory_runtime(guard, clock)
    guards: dict[str, RunGuard] = {}
    halted: set[str] = set()
    try:
        for row in rows:
            if row["run_id"] in halted:
                continue
            clock[0] = row["ts"].timestamp()
            try:
                _decide(row, guards, runtime)
            except Halted:
                halted.add(row["run_id"])
        return halted
    finally:
        runtime.close()
