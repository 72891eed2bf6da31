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

from .._base.vocab import LedgerStatus
from .._contain.detectors.base import Tunable
from .._contain.settings import DETECTORS, Guard
from .._export.bundle import load_bundle
from .._store.layout import Store, resolve_root
from .feed import decisions, first_halt, halted_runs

__all__ = ["TUNABLES", "BoundTrial", "Suggestion", "Suggestions", "suggest", "suggest_bounds"]

#: every setting suggest-bounds tries, from the detectors, in the order the guard checks them
TUNABLES: tuple[Tunable, ...] = tuple(t for d in DETECTORS for t in d.tunables)
_INTEGER = {t.field for t in TUNABLES if t.integer}


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
                text = str(int(value)) if item.bound in _INTEGER else f"{value:g}"
                lines.append(
                    f"{item.bound} = {text}  # halts at step {item.suggested.step}, "
                    f"{item.suggested.false_halts} false halt(s)"
                )
        return "\n".join(lines)


def suggest_bounds(
    bundle: str | os.PathLike[str],
    store: str | os.PathLike[str] | None = None,
    healthy_limit: int = 1000,
) -> Suggestions:
    """Try candidate thresholds of every bound on the incident and on the store's other runs."""
    manifest, events, ledger = load_bundle(bundle, prompts=False)
    incident = decisions(events)
    fired = [r for r in ledger.to_pylist() if r["status"] == LedgerStatus.FIRED]
    healthy = _healthy(store, set(manifest["runs"]), healthy_limit)
    found = [suggest(tunable, incident, fired, healthy) for tunable in TUNABLES]
    runs = len({r["run_id"] for r in healthy})
    return Suggestions(Path(bundle).name, runs, [s for s in found if s.trials])


def _healthy(
    store: str | os.PathLike[str] | None, incident: set[str], limit: int
) -> list[dict[str, Any]]:
    """The decisions of the store's most recent runs outside the incident (none without a
    store)."""
    from .._query.views import connect

    root = resolve_root(store)
    if not Store(root).exists():
        return []
    with connect(root) as con:
        table: pa.Table = con.sql(
            "SELECT * FROM events WHERE kind <> 'prompt' AND run_id IN (SELECT run_id FROM runs "
            "WHERE run_id NOT IN (SELECT unnest($ids)) AND root_run_id NOT IN "
            "(SELECT unnest($ids)) ORDER BY started DESC LIMIT $limit)",
            params={"ids": sorted(incident), "limit": limit},
        ).to_arrow_table()
    return decisions(table)


def suggest(
    tunable: Tunable,
    incident: list[dict[str, Any]],
    fired: list[dict[str, Any]],
    healthy: list[dict[str, Any]],
) -> Suggestion:
    """Every candidate setting of one bound, replayed over the incident and the healthy runs."""
    bound = tunable.field
    trials = [
        _trial(bound, int(v) if tunable.integer else v, incident, fired, healthy)
        for v in tunable.candidates(incident)
    ]
    containing = [t for t in trials if t.contains]
    tightest = min(containing, key=lambda t: (t.step, t.value)) if containing else None
    suggested = (
        min(containing, key=lambda t: (t.false_halts, t.step, -t.value)) if containing else None
    )
    return Suggestion(bound, tightest, suggested, trials)


def _trial(
    bound: str,
    value: float,
    incident: list[dict[str, Any]],
    fired: list[dict[str, Any]],
    healthy: list[dict[str, Any]],
) -> BoundTrial:
    guard = Guard.model_validate({bound: value})
    halt = first_halt(incident, guard)
    stopped = len(halted_runs(healthy, guard)) if healthy else 0
    if halt is None:
        spend = float(sum(r["cost_usd"] or 0.0 for r in incident))
        return BoundTrial(bound, value, None, len(fired), spend, stopped)
    _, row, spend = halt
    effects = sum(1 for f in fired if f["ts"] < row["ts"])
    return BoundTrial(bound, value, row["step"], effects, round(spend, 6), stopped)
