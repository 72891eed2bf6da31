"""Policy replay: an incident's recorded decisions through today's guard, on the recorded clock.

No agent code runs and nothing leaves the process: the guard works against an in-memory control
store, and its clock is each event's recorded timestamp. The verdict says where the guard would
have halted, by which signal, which effects would have fired before the halt, and the spend by
then — or that today's guard would not contain the incident.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .._base.vocab import REFUSALS, EventKind, LedgerStatus
from .._contain.settings import Guard
from .._export.bundle import load_bundle
from ..errors import Halted
from .feed import decisions, first_halt
from .resolve import resolve_guard, with_project_on_path

__all__ = ["Verdict", "replay"]


@dataclass
class Verdict:
    """What today's guard (and, in agent replay, today's agent) does with the incident.

    ``contained``: the guard halted it; ``ended_by_itself``: agent replay, the agent's entry
    point returned inside the recording, unhalted. ``step``, ``effects`` and ``spend_usd`` are
    the damage by then: the eval gate judges them against its expectations
    (``tracekit.testing.judge``: contained, resolved or not contained).
    """

    contained: bool
    runs: int
    events: int
    run_id: str | None = None
    step: int | None = None
    level: str | None = None
    signal: str | None = None
    reason: str | None = None
    value: float | None = None
    threshold: float | None = None
    spend_usd: float = 0.0
    effects: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "policy"
    note: str | None = None
    ended_by_itself: bool = False  # agent replay: the entry point returned, nothing halted it
    guard_source: str = ""  # where the guard came from (resolve.py's order)

    def describe(self) -> str:
        fired = len(self.effects)
        if self.contained:
            return (
                f"contained: halted at step {self.step} of run {self.run_id} by {self.signal} "
                f"({self.reason}); {fired} effect(s) fired before, ${self.spend_usd:.4f} spent"
            )
        what = (
            f"all {self.events} decisions pass"
            if self.mode == "policy"
            else f"the agent ran {self.events} decisions unhalted"
            + (f" and ended by itself at step {self.step}" if self.ended_by_itself else "")
        )
        text = (
            f"NOT contained by today's guard: {what}; {fired} effect(s) fire, "
            f"${self.spend_usd:.4f} spent. Add a bound that would stop it."
        )
        return text if self.note is None else f"{text} ({self.note})"


def replay(
    bundle: str | os.PathLike[str],
    guard: Guard | None = None,
    entrypoint: str | None = None,
    project: str | os.PathLike[str] | None = None,
) -> Verdict:
    """Feed the bundle's recorded decisions through a guard on the recorded clock: ``guard``,
    else the project's (searched from ``project``, a folder or file of the project, default
    here, up), else the one in force when the incident was recorded (``resolve.py``).

    With ``entrypoint`` ("module:function", imported from the project's root) the real agent
    code runs instead (agent replay), its model outputs, tool results, HTTP, clock and random
    draws served from the recording; a call the recording does not have raises
    ``ReplayDivergence``.
    """
    manifest, events, ledger = load_bundle(bundle, prompts=False)  # agent replay reads them lazily
    guard, source = resolve_guard(manifest, guard, project)
    verdict = _verdict(Path(bundle), manifest, events, ledger, guard, entrypoint, project)
    verdict.guard_source = source
    return verdict


def _verdict(
    bundle: Path,
    manifest: dict[str, Any],
    events: pa.Table,
    ledger: pa.Table,
    guard: Guard,
    entrypoint: str | None,
    project: str | os.PathLike[str] | None,
) -> Verdict:
    if entrypoint is not None:
        with_project_on_path(project)
        return _agent_verdict(bundle, events, ledger, entrypoint, guard, len(set(manifest["runs"])))
    rows = decisions(events, ledger)
    writes = [r for r in ledger.to_pylist() if r["status"] == LedgerStatus.FIRED]
    known = manifest.get("known_destinations")
    runs, halt = len(set(manifest["runs"])), first_halt(rows, guard, known)
    if halt is not None:
        return _halted(*halt, writes, runs, len(rows))
    spend = sum(r["cost_usd"] or 0.0 for r in rows)
    last = max((r["step"] or 0 for r in rows), default=0)
    return Verdict(
        False,
        runs,
        len(rows),
        step=last,
        spend_usd=round(spend, 6),
        effects=[_effect(w) for w in writes],
        note=_no_history(guard) if known is None else None,
    )


def _no_history(guard: Guard) -> str | None:
    if guard.new_destination == "allow":
        return None
    return (
        "this bundle carries no destination history (exported by an older tracekit): every "
        "destination counts as new; export it again to judge new_destination"
    )


def _halted(
    halt: Halted,
    row: dict[str, Any],
    spend: float,
    writes: list[dict[str, Any]],
    runs: int,
    events: int,
) -> Verdict:
    before = [w for w in writes if w["ts"] < row["ts"]]
    return Verdict(
        True,
        runs,
        events,
        run_id=row["run_id"],
        step=row["step"],
        level=halt.level,
        signal=halt.signal,
        reason=halt.reason,
        value=halt.value,
        threshold=halt.threshold,
        spend_usd=round(spend, 6),
        effects=[_effect(w) for w in before],
    )


def _agent_verdict(
    bundle: Path, events: pa.Table, ledger: pa.Table, entrypoint: str, guard: Guard, runs: int
) -> Verdict:
    from .agent import agent_replay

    replayed, effects, ended = agent_replay(bundle, events, ledger, entrypoint, guard)
    spend = 0.0
    for index, event in enumerate(replayed):
        if event.kind == EventKind.GUARD and event.status in REFUSALS:
            halt = event.decoded_attrs
            return Verdict(
                True,
                runs,
                index + 1,
                run_id=event.run_id,
                step=event.step,
                level=halt.get("level"),
                signal=halt.get("signal"),
                reason=halt.get("reason"),
                value=halt.get("value"),
                threshold=halt.get("threshold"),
                spend_usd=round(spend, 6),
                effects=[_effect(e) for i, e in effects if i < index],
                mode="agent",
            )
        spend += event.cost_usd or 0.0
    return Verdict(
        False,
        runs,
        len(replayed),
        step=max((e.step for e in replayed), default=0),
        spend_usd=round(spend, 6),
        effects=[_effect(e) for _, e in effects],
        mode="agent",
        note=ended,
        ended_by_itself=ended is None,
    )


def _effect(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "tool": row["tool"],
        "destination": row["destination"],
        "amount": row["amount"],
        "currency": row["currency"],
        "run_id": row["run_id"],
        "call_id": row["call_id"],
    }
