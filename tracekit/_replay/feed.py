"""Recorded decisions through a guard, on the recorded clock: the loop every policy replay runs
(``tracekit.replay``, suggest-bounds, the postmortem's runaway signature).

Each recorded event drives the same ``RunGuard`` hook the live run calls for it: a run start
``start``, a tool call ``check_call``, a tool result ``after_result``, a model output
``after_model_output``, a progress mark ``after_progress`` and a run end ``finish``. The guard
runs against an in-memory control store: nothing is shared, no socket is opened.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._base.encode import canonical_json
from .._base.vocab import REFUSALS, EventKind, EventStatus
from .._contain.runguard import Call, RunGuard
from .._contain.runtime import GuardRuntime
from .._contain.settings import Guard
from .._control.memory import MemoryControl
from ..errors import Halted, OutOfScope

__all__ = [
    "RecordedRules",
    "ReplayRun",
    "decide",
    "decisions",
    "first_halt",
    "halted_runs",
    "memory_runtime",
    "with_declared_calls",
]

_COLUMNS = (
    "run_id",
    "parent_run_id",
    "root_run_id",
    "tenant",
    "seq",
    "step",
    "ts",
    "kind",
    "name",
    "call_id",
    "args",
    "status",
    "cost_usd",
    "attrs",
    "release_id",
    "model_version",
    "prompt_version",
    "tools_version",
)
_WRITES = '"writes":true'
_CALLS = '"tool_calls"'


class ReplayRun:
    """What the guard sees of a run (``RunView``), rebuilt from its recorded events."""

    def __init__(self, first: dict[str, Any], depth: int) -> None:
        self.run_id: str = first["run_id"]
        self.tenant: str = first["tenant"] or "unknown"
        self.parent_run_id: str | None = first["parent_run_id"]
        self.root_run_id: str = first["root_run_id"] or self.run_id
        self.release_id: str = first.get("release_id") or "unknown"
        self.depth = depth
        self.step = 0

    def next_seq(self) -> int:
        return 0


def memory_runtime(
    guard: Guard, clock: list[float], known: dict[str, list[str]] | None = None
) -> GuardRuntime:
    """``guard`` on an in-memory control store and the clock ``clock[0]`` (every replay: the
    recorded clock, nothing shared, no socket), knowing the destinations of ``known``."""
    runtime = GuardRuntime(
        guard.model_copy(update={"staleness_s": 1e9}), MemoryControl(), clock=lambda: clock[0]
    )
    for tenant, destinations in (known or {}).items():
        for destination in destinations:
            runtime.is_new_destination(tenant, destination)  # seen: not new in the replay
    return runtime


def decisions(events: pa.Table, ledger: pa.Table | None = None) -> list[dict[str, Any]]:
    """The recorded decisions the guard sees, in the order they were made. Only tool calls
    (and refused attempts) keep their arguments: a prompt can be the whole conversation. With
    the ``ledger``, each write carries its ``destination``."""
    table = events.select([c for c in _COLUMNS if c in events.column_names])
    calls = pc.or_(pc.equal(table["kind"], EventKind.TOOL_CALL), _refusals(table))
    args = pc.if_else(calls, table["args"], pa.scalar(None, pa.string()))
    table = table.set_column(table.column_names.index("args"), "args", args)
    rows = sorted(table.to_pylist(), key=lambda r: (r["ts"], r["run_id"], r["seq"]))
    rows = with_declared_calls(rows)
    if ledger is not None and ledger.num_rows:
        _add_destinations(rows, ledger)
    return rows


def with_declared_calls(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with an attempted tool call after each model output for every call it declares
    (``attrs.tool_calls``) that no tool-call event of its run answers before the run's next
    model output: a trace that records only model calls (an imported one, often) still shows
    the guard every call the agent tried. Each recorded attempt (a tool call, a refused call)
    answers one declared call (``_answer``)."""
    if not any(r["kind"] == EventKind.MODEL_OUTPUT and _CALLS in (r["attrs"] or "") for r in rows):
        return rows
    pending: dict[str, tuple[int, list[dict[str, Any]]]] = {}  # run -> (its output's place, calls)
    places: list[tuple[int, list[dict[str, Any]]]] = []
    for index, row in enumerate(rows):
        kind, run_id = row["kind"], row["run_id"]
        if kind == EventKind.MODEL_OUTPUT:
            pending[run_id] = (index, _declared(row))
            places.append(pending[run_id])
        elif run_id in pending and (kind == EventKind.TOOL_CALL or _refused_attempt(row)):
            _answer(pending[run_id][1], row)
    return _inserted(rows, places)


def _declared(output: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls a model output declares, as the attempted calls they would be."""
    if _CALLS not in (output["attrs"] or ""):
        return []
    try:
        calls = json.loads(output["attrs"]).get("tool_calls") or []
    except (ValueError, AttributeError):
        return []
    return [_attempt_row(output, c) for c in calls if isinstance(c, dict) and c.get("name")]


def _attempt_row(output: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    return output | {
        "kind": EventKind.TOOL_CALL, "name": str(call["name"]), "call_id": call.get("id"),
        "args": _arguments(call.get("arguments")), "status": EventStatus.STARTED,
        "cost_usd": None, "attrs": '{"declared":true}',
    }  # fmt: skip


def _arguments(arguments: Any) -> str:
    """Declared arguments (JSON text, as the SDKs give them) as a tool call records them."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return canonical_json({"input": arguments})
    return canonical_json(arguments if isinstance(arguments, dict) else {"input": arguments})


def _answer(declared: list[dict[str, Any]], call: dict[str, Any]) -> None:
    """Strike the declared call that a recorded attempt answers: the one of the same id, else
    the first of the same tool, else the first (an agent may name its tools its own way)."""
    same = [d for d in declared if d["call_id"] is not None and d["call_id"] == call["call_id"]]
    same = same or [d for d in declared if d["name"] == call["name"]] or declared
    if same:
        declared.remove(same[0])


def _refused_attempt(row: dict[str, Any]) -> bool:
    return row["kind"] == EventKind.GUARD and row["args"] is not None


def _inserted(
    rows: list[dict[str, Any]], places: list[tuple[int, list[dict[str, Any]]]]
) -> list[dict[str, Any]]:
    after = {index: calls for index, calls in places if calls}
    if not after:
        return rows
    out: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        out.append(row)
        out.extend(after.get(index, ()))
    return out


def _add_destinations(rows: list[dict[str, Any]], ledger: pa.Table) -> None:
    where = {
        (r["run_id"], r["call_id"]): r["destination"]
        for r in ledger.select(["run_id", "call_id", "destination"]).to_pylist()
        if r["destination"] is not None
    }
    for row in rows:
        if row["kind"] == EventKind.TOOL_CALL:
            found = where.get((row["run_id"], row.get("call_id")))
            if found is not None:
                row["destination"] = found


class RecordedRules:
    """A recorded write's rules as the guard reads them: its destination (from the ledger) and
    no argument bounds (a call out of its bounds was refused when recorded, and is again)."""

    __slots__ = ("bounds", "destination")

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.bounds: dict[str, tuple[float | None, float | None]] = {}

    def destination_of(self, named: dict[str, Any]) -> str | None:
        return self.destination

    def __eq__(self, other: object) -> bool:  # one plan per destination in the guard's cache
        return isinstance(other, RecordedRules) and other.destination == self.destination

    def __hash__(self) -> int:
        return hash(self.destination)


def _refusals(table: pa.Table) -> pa.ChunkedArray:
    """The guard events of calls the guard refused when the incident was recorded: they are
    attempts too (the agent tried the call), and today's guard decides them again."""
    refused = pc.is_in(table["status"], pa.array(sorted(REFUSALS)))
    return pc.fill_null(
        pc.and_(
            pc.and_(pc.equal(table["kind"], EventKind.GUARD), refused), pc.is_valid(table["args"])
        ),
        False,
    )


def decide(row: dict[str, Any], guards: dict[str, RunGuard], runtime: GuardRuntime) -> None:
    """One recorded event through its run's guard (raises where the guard refuses)."""
    kind, run_id = row["kind"], row["run_id"]
    if kind == EventKind.RUN_START or run_id not in guards:
        _start(row, guards, runtime)
    guard = guards[run_id]
    guard.run.step = row["step"] or 0
    _HOOKS.get(kind, _attempt)(guard, row)


def _start(row: dict[str, Any], guards: dict[str, RunGuard], runtime: GuardRuntime) -> None:
    parent = guards.get(row["parent_run_id"] or "")
    run = ReplayRun(row, parent.run.depth + 1 if parent is not None else 0)
    guards[run.run_id] = guard = RunGuard(runtime, run, None)
    guard.start()


def _attempt(guard: RunGuard, row: dict[str, Any]) -> None:
    """A tool call, or a call the guard refused when it was recorded."""
    if row["kind"] == EventKind.TOOL_CALL or (
        row["kind"] == EventKind.GUARD and row["args"] is not None
    ):
        if row["status"] == EventStatus.REFUSED:
            raise _refused_again(row)
        writes = _WRITES in (row["attrs"] or "")
        destination = row.get("destination") if writes else None
        rules = RecordedRules(destination) if destination is not None else None
        named: dict[str, Any] | None = {} if rules is not None else None
        guard.check_call(Call(row["name"], row["args"] or "", writes, rules, named))


_HOOKS: dict[str, Callable[[RunGuard, dict[str, Any]], None]] = {
    EventKind.RUN_START: lambda guard, row: None,
    EventKind.MODEL_OUTPUT: lambda guard, row: guard.after_model_output(row["cost_usd"]),
    EventKind.PROGRESS: lambda guard, row: guard.after_progress(),
    EventKind.TOOL_RESULT: lambda guard, row: guard.after_result(
        row["name"], row["status"] != EventStatus.ERROR
    ),
    EventKind.RUN_END: lambda guard, row: guard.finish(),
}


def _refused_again(row: dict[str, Any]) -> OutOfScope:
    """A call refused as out of scope (the tool's own bounds, the run's tool set): declared in
    the agent's code, not in the guard's settings, so today it is refused just the same."""
    info = json.loads(row["attrs"] or "{}")
    return OutOfScope(
        info.get("level") or "run",
        info.get("target"),
        info.get("reason") or "out of scope",
        signal=info.get("signal"),
        value=info.get("value"),
        threshold=info.get("threshold"),
    )


def first_halt(
    rows: list[dict[str, Any]], guard: Guard, known: dict[str, list[str]] | None = None
) -> tuple[Halted, dict[str, Any], float] | None:
    """Where ``guard`` halts these decisions (on their recorded clock): the halt, its row and
    the spend by then; None when it lets them all through. ``known``: the destinations each
    tenant had written to before (a bundle's ``known_destinations``)."""
    clock = [0.0]
    runtime = memory_runtime(guard, clock, known)
    spend = 0.0
    guards: dict[str, RunGuard] = {}
    try:
        for row in rows:
            clock[0] = row["ts"].timestamp()
            try:
                decide(row, guards, runtime)
            except Halted as halt:  # a model output that trips a bound was paid all the same
                paid = (row["cost_usd"] or 0.0) if row["kind"] == EventKind.MODEL_OUTPUT else 0.0
                return halt, row, spend + paid
            spend += row["cost_usd"] or 0.0
        return None
    finally:
        runtime.close()


def halted_runs(rows: list[dict[str, Any]], guard: Guard) -> set[str]:
    """The runs ``guard`` would have stopped (each run goes on until its own halt)."""
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
                decide(row, guards, runtime)
            except Halted:
                halted.add(row["run_id"])
        return halted
    finally:
        runtime.close()
