"""suggest-bounds: the guard settings that would have contained an incident, and their cost.

For each bound the guard has (repeats, steps, steps without progress, call and write rates, cost,
tenant spend, fan-out), candidate thresholds are drawn from what the incident itself shows, and
each is tried by policy replay, alone on an otherwise empty guard: over the incident (where does
it halt, with how many effects fired and how much spent) and over the healthy runs in the store
(how many it would also have stopped: false halts). Per bound the tightest setting (the earliest
halt) and the suggested one are reported.

A suggestion needs evidence: at least ``min_healthy`` healthy runs (5 by default; below that
nothing is suggested, and the output says why), and it keeps a margin over the loosest that
healthy runs needed: the smallest setting that contains the incident and is at least
``1 + margin`` times the tightest setting that stopped no healthy run (``margin`` 0.25; one
more, at least, for a count). A setting that only just lets the healthy runs through is one
busy day away from a false halt.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .._base.vocab import LedgerStatus
from .._capture.state import PROCESS
from .._contain.detectors.base import Tunable
from .._contain.settings import DETECTORS, Guard
from .._export.bundle import load_bundle
from .._store.layout import Store, resolve_root
from .feed import decisions, first_halt, halted_runs

__all__ = ["TUNABLES", "BoundTrial", "Suggestion", "Suggestions", "suggest", "suggest_bounds"]

#: every setting suggest-bounds tries, from the detectors, in the order the guard checks them
TUNABLES: tuple[Tunable, ...] = tuple(t for d in DETECTORS for t in d.tunables)
_INTEGER = {t.field for t in TUNABLES if t.integer}
MIN_HEALTHY = 5  # healthy runs a suggestion needs
MARGIN = 0.25  # over the tightest setting that stops no healthy run


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
    healthy_runs: int = 0  # the healthy runs the suggestion was judged on
    note: str | None = None  # why nothing (or something short of the margin) is suggested


@dataclass
class Suggestions:
    incident: str
    healthy_runs: int
    bounds: list[Suggestion]

    def toml(self) -> str:
        """The suggested settings as a ``[tool.tracekit.guard]`` table."""
        lines = ["[tool.tracekit.guard]"]
        for item in self.bounds:
            if item.suggested is None:
                lines.append(f"# {item.bound}: not suggested ({item.note})")
                continue
            value = item.suggested.value
            text = str(int(value)) if item.bound in _INTEGER else f"{value:g}"
            lines.append(
                f"{item.bound} = {text}  # halts at step {item.suggested.step}; stops "
                f"{item.suggested.false_halts} of {item.healthy_runs} healthy run(s)"
                + (f"; {item.note}" if item.note else "")
            )
        return "\n".join(lines)


def suggest_bounds(
    bundle: str | os.PathLike[str],
    store: str | os.PathLike[str] | None = None,
    healthy_limit: int = 1000,
    min_healthy: int = MIN_HEALTHY,
) -> Suggestions:
    """Try candidate thresholds of every bound on the incident and on the store's other runs."""
    manifest, events, ledger = load_bundle(bundle, prompts=False)
    incident = decisions(events)
    fired = [r for r in ledger.to_pylist() if r["status"] == LedgerStatus.FIRED]
    healthy = healthy_decisions(store, set(manifest["runs"]), healthy_limit)
    found = [suggest(t, incident, fired, healthy, min_healthy) for t in TUNABLES]
    runs = len({r["run_id"] for r in healthy})
    return Suggestions(Path(bundle).name, runs, [s for s in found if s.trials])


def healthy_decisions(
    store: str | os.PathLike[str] | None, incident: set[str], limit: int
) -> list[dict[str, Any]]:
    """The decisions of the store's most recent runs outside the incident (none without a
    store)."""
    from .._query.views import connect

    root = resolve_root(store) if store is not None else PROCESS.settings().store
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
    min_healthy: int = MIN_HEALTHY,
) -> Suggestion:
    """Every candidate setting of one bound, replayed over the incident and the healthy runs;
    the suggested one by the rules of this module's docstring."""
    bound = tunable.field
    trials = [
        _trial(bound, int(v) if tunable.integer else v, incident, fired, healthy)
        for v in tunable.candidates(incident)
    ]
    containing = [t for t in trials if t.contains]
    tightest = min(containing, key=lambda t: (t.step, t.value)) if containing else None
    runs = len({r["run_id"] for r in healthy})
    found = Suggestion(bound, tightest, None, trials, runs)
    if not containing:
        found.note = "no setting tried contains the incident"
    elif runs < min_healthy:
        found.note = (
            f"{runs} healthy run(s) in the store to judge it by; a suggestion needs "
            f"{min_healthy} (--healthy-minimum)"
        )
    else:
        found.suggested, found.note = _with_margin(containing, tunable.integer)
    return found


def _with_margin(containing: list[BoundTrial], integer: bool) -> tuple[BoundTrial, str | None]:
    """The smallest containing setting with the margin over the tightest that stopped no
    healthy run (or, short of that, the best there is, said so)."""
    safe = sorted((t for t in containing if t.false_halts == 0), key=lambda t: t.value)
    if not safe:
        least = min(containing, key=lambda t: (t.false_halts, t.step, -t.value))
        return least, "every setting that contains it also stops healthy runs"
    floor = safe[0].value
    wanted = floor + max(1, math.ceil(floor * MARGIN)) if integer else floor * (1 + MARGIN)
    roomy = [t for t in safe if t.value >= wanted]
    if roomy:
        return roomy[0], None
    return safe[-1], f"less than the {MARGIN:.0%} margin over {floor:g} still contains it"


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
