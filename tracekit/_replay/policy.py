"""Policy replay: an incident's recorded decisions through today's guard, on the recorded clock.

No agent code runs and nothing leaves the process: the guard works against an in-memory control
store, and its clock is each event's recorded timestamp. The verdict says where the guard would
have halted, by which signal, which effects would have fired before the halt, and the spend by
then — or that today's guard would not contain the incident.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._capture.settings import Release
from .._contain.guard import (
    Guard,
    GuardRuntime,
    Halted,
    OutOfScope,
    RunGuard,
    guard_from_mapping,
    load_project_settings,
)
from .._control.memory import MemoryControl
from .._export.bundle import load_bundle

__all__ = ["Verdict", "decisions", "first_halt", "memory_runtime",
           "project_guard", "replay"]


@dataclass
class Verdict:
    """What today's guard does with the incident."""

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

    def describe(self) -> str:
        fired = len(self.effects)
        if self.contained:
            return (f"contained: halted at step {self.step} of run {self.run_id} by {self.signal} "
                    f"({self.reason}); {fired} effect(s) fired before, ${self.spend_usd:.4f} spent")
        what = (f"all {self.events} decisions pass" if self.mode == "policy" else
                f"the agent ran {self.events} decisions unhalted")
        text = (f"NOT contained by today's guard: {what}; {fired} effect(s) fire, "
                f"${self.spend_usd:.4f} spent. Add a bound that would stop it.")
        return text if self.note is None else f"{text} ({self.note})"


class _ReplayRun:
    """What RunGuard reads of a run, rebuilt from its recorded events."""

    def __init__(self, first: dict[str, Any]) -> None:
        self.run_id = first["run_id"]
        self.tenant = first["tenant"] or "unknown"
        self.parent_run_id = first["parent_run_id"]
        self.root_run_id = first["root_run_id"] or self.run_id
        self.release = Release(model=first["model_version"] or "unknown",
                               prompt=first["prompt_version"] or "unknown",
                               tools=first["tools_version"] or "unknown")
        self.depth = 0
        self.step = 0

    def next_seq(self) -> int:
        return 0


def project_guard(start: str | os.PathLike[str] | None = None) -> Guard | None:
    """The guard in the project's pyproject.toml / tracekit.toml, if any."""
    found = load_project_settings(None if start is None else Path(start))
    if not found or not found[0].get("guard"):
        return None
    return guard_from_mapping(found[0]["guard"], found[1])


def replay(bundle: str | os.PathLike[str], guard: Guard | None = None,
           entrypoint: str | None = None) -> Verdict:
    """Feed the bundle's recorded decisions through ``guard`` (default: the project's guard,
    else the one in force when the incident was exported) on the recorded clock.

    With ``entrypoint`` ("module:function") the real agent code runs instead (agent replay),
    its model outputs, tool results, HTTP, clock and random draws served from the recording;
    a call the recording does not have raises ``ReplayDivergence``.
    """
    manifest, events, ledger = load_bundle(bundle, prompts=False)  # agent replay reads them lazily
    if guard is None:
        guard = project_guard() or (guard_from_mapping(manifest["guard"], "the bundle")
                                    if manifest.get("guard") else Guard())
    if entrypoint is not None:
        return _agent_verdict(Path(bundle), events, ledger, entrypoint, guard,
                              len(set(manifest["runs"])))
    rows = decisions(events)
    writes = [r for r in ledger.to_pylist() if r["status"] == "fired"]
    runs, halt = len(set(manifest["runs"])), first_halt(rows, guard)
    if halt is not None:
        return _halted(*halt, writes, runs, len(rows))
    spend = sum(r["cost_usd"] or 0.0 for r in rows)
    return Verdict(False, runs, len(rows), spend_usd=round(spend, 6),
                   effects=[_effect(w) for w in writes])


def memory_runtime(guard: Guard, clock: list[float]) -> GuardRuntime:
    """``guard`` on an in-memory control store and the clock ``clock[0]`` (every replay: the
    recorded clock, nothing shared, no socket)."""
    return GuardRuntime(guard.model_copy(update={"staleness_s": 1e9}), MemoryControl(),
                        clock=lambda: clock[0])


def decisions(events: pa.Table) -> list[dict[str, Any]]:
    """The recorded decisions the guard sees, in the order they were made."""
    return sorted(_decisions(events), key=lambda r: (r["ts"], r["run_id"], r["seq"]))


_COLUMNS = ("run_id", "parent_run_id", "root_run_id", "tenant", "seq", "step", "ts", "kind",
            "name", "args", "status", "cost_usd", "attrs", "model_version", "prompt_version",
            "tools_version")


def _decisions(events: pa.Table) -> list[dict[str, Any]]:
    """The rows the guard sees, as Python values; only tool calls keep their arguments (a
    prompt can be the whole conversation: never converted)."""
    table = events.select([c for c in _COLUMNS if c in events.column_names])
    calls = pc.or_(pc.equal(table["kind"], "tool_call"), _refusals(table))
    args = pc.if_else(calls, table["args"], pa.scalar(None, pa.string()))
    table = table.set_column(table.column_names.index("args"), "args", args)
    return table.to_pylist()


def _refusals(table: pa.Table) -> pa.ChunkedArray:
    """The guard events of calls the guard refused when the incident was recorded: they are
    attempts too (the agent tried the call), and today's guard decides them again."""
    refused = pc.is_in(table["status"], pa.array(["halted", "refused"]))
    return pc.fill_null(pc.and_(pc.and_(pc.equal(table["kind"], "guard"), refused),
                                pc.is_valid(table["args"])), False)


def first_halt(rows: list[dict[str, Any]], guard: Guard
               ) -> tuple[Halted, dict[str, Any], float] | None:
    """Where ``guard`` halts these decisions (on their recorded clock): the halt, its row and
    the spend by then; None when it lets them all through."""
    clock = [0.0]
    runtime = memory_runtime(guard, clock)
    guards: dict[str, RunGuard] = {}
    spend = 0.0
    try:
        for row in rows:
            clock[0] = row["ts"].timestamp()
            try:
                _decide(row, guards, runtime)
            except Halted as halt:  # a model output that trips a bound was paid all the same
                paid = (row["cost_usd"] or 0.0) if row["kind"] == "model_output" else 0.0
                return halt, row, spend + paid
            spend += row["cost_usd"] or 0.0
        return None
    finally:
        runtime.close()


def _decide(row: dict[str, Any], guards: dict[str, RunGuard], runtime: GuardRuntime) -> None:
    kind, run_id = row["kind"], row["run_id"]
    if kind == "run_start" or run_id not in guards:
        run = _ReplayRun(row)
        parent = guards.get(run.parent_run_id or "")
        run.depth = parent.run.depth + 1 if parent is not None else 0
        guards[run_id] = RunGuard(runtime, run, None)  # type: ignore[arg-type]
        guards[run_id].check_start()
    guard = guards[run_id]
    guard.run.step = row["step"] or 0
    if kind == "model_output":
        guard.after_model_output(row["cost_usd"])
    elif kind == "progress":
        guard.after_progress()
    elif kind == "guard" and row["status"] == "refused" and row["args"] is not None:
        raise _refused_again(row)
    elif kind == "tool_call" or (kind == "guard" and row["args"] is not None):
        writes = '"writes":true' in (row["attrs"] or "")
        guard.check_call(row["name"], row["args"] or "", writes)
        guard.passed(row["name"], row["args"] or "")


def _refused_again(row: dict[str, Any]) -> OutOfScope:
    """A call refused as out of scope (the tool's own bounds, the run's tool set): declared in
    the agent's code, not in the guard's settings, so today it is refused just the same."""
    info = json.loads(row["attrs"] or "{}")
    return OutOfScope(info.get("level") or "run", info.get("target"),
                      info.get("reason") or "out of scope", signal=info.get("signal"),
                      value=info.get("value"), threshold=info.get("threshold"))


def _halted(halt: Halted, row: dict[str, Any], spend: float, writes: list[dict[str, Any]],
            runs: int, events: int) -> Verdict:
    before = [w for w in writes if w["ts"] < row["ts"]]
    return Verdict(True, runs, events, run_id=row["run_id"], step=row["step"], level=halt.level,
                   signal=halt.signal, reason=halt.reason, value=halt.value,
                   threshold=halt.threshold, spend_usd=round(spend, 6),
                   effects=[_effect(w) for w in before])


def _agent_verdict(bundle: Path, events: pa.Table, ledger: pa.Table, entrypoint: str,
                   guard: Guard, runs: int) -> Verdict:
    from .agent import agent_replay

    rows, effects, ended = agent_replay(bundle, events, ledger, entrypoint, guard)
    spend = 0.0
    for index, row in enumerate(rows):
        if row[4] == "guard" and row[9] in ("halted", "refused"):
            halt = json.loads(row[15] or "{}")
            return Verdict(True, runs, index + 1, run_id=row[0][0], step=row[2],
                           level=halt.get("level"), signal=halt.get("signal"),
                           reason=halt.get("reason"), value=halt.get("value"),
                           threshold=halt.get("threshold"), spend_usd=round(spend, 6),
                           effects=[_effect(e) for i, e in effects if i < index],
                           mode="agent")
        spend += row[13] or 0.0
    return Verdict(False, runs, len(rows), spend_usd=round(spend, 6),
                   effects=[_effect(e) for _, e in effects], mode="agent", note=ended)


def _effect(row: dict[str, Any]) -> dict[str, Any]:
    return {"tool": row["tool"], "destination": row["destination"], "amount": row["amount"],
            "currency": row["currency"], "run_id": row["run_id"], "call_id": row["call_id"]}
