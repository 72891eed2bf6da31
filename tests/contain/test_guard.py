"""The guard: every bound and detector, the kill switch in order, fail closed, resume.

Each bound has a scripted agent that trips it and one that stays just under it. Redis tests start
their own ``redis-server`` on a free loopback port and kill it themselves.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _redis import RedisServer
from pydantic import ValidationError

import tracekit
from tracekit._capture.state import PROCESS
from tracekit._control.base import flag_key, now_info
from tracekit._control.redis import RedisControl
from tracekit._control.sqlite import SQLiteControl

redis = pytest.importorskip("redis")

CHILD = Path(__file__).resolve().parent.parent / "guard_children" / "agent.py"

# -- tools whose bodies count their own runs (a refused call must never reach the body) ----------
BODY: Counter[str] = Counter()


@tracekit.tool
def lookup(order_id: str) -> dict[str, str]:
    BODY["lookup"] += 1
    return {"order_id": order_id, "status": "shipped"}


@tracekit.tool(writes=True)
def send_email(to: str, body: str) -> bool:
    BODY["send_email"] += 1
    return True


@tracekit.tool(writes=True, bounds={"amount": (0, 200)})
def refund(order_id: str, amount: float) -> dict[str, Any]:
    BODY["refund"] += 1
    return {"order_id": order_id, "refunded": amount}


def plain(i: int = 0) -> int:
    """An undecorated body for ``run.call_tool`` (so nested runs cannot capture the call)."""
    BODY["plain"] += 1
    return i


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``guarded(control=None, clock=None, **bounds)`` configures a guarded store in tmp_path."""
    root = tmp_path / "store"
    BODY.clear()

    def setup(control: str | None = None, clock: Callable[[], float] | None = None,
              **bounds: Any) -> Path:
        bounds.setdefault("staleness_s", 5.0)  # generous: a noisy machine must not trip it
        bounds.setdefault("refresh_s", 0.05)
        tracekit.configure(store=root, guard=tracekit.Guard(**bounds), control=control,
                           clock=clock)
        return root

    yield setup
    tracekit.shutdown()
    tracekit.configure(store=tmp_path / "after", guard=False)  # leave no guard behind


# -- helpers ---------------------------------------------------------------------------------------
def guard_events(root: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    """The ``guard`` events in the store, through SQL, oldest first."""
    assert tracekit.flush(30)
    con = tracekit.connect(root)
    rows = con.execute(
        "SELECT run_id, name, status, error, attrs FROM events WHERE kind = 'guard' "
        "ORDER BY run_id, seq"
    ).fetchall()
    con.close()
    events = [{"run_id": r[0], "name": r[1], "status": r[2], "error": r[3],
               "attrs": json.loads(r[4])} for r in rows]
    return [e for e in events if run_id is None or e["run_id"] == run_id]


def control_of(root: Path) -> SQLiteControl:
    """Another handle on the store's control.db, as another process would open it."""
    return SQLiteControl(root / "control.db")


def assert_halt(halt: tracekit.Halted, level: str, signal: str, value: float | None = None,
                threshold: float | None = None, target: str | None = None) -> None:
    assert halt.level == level, halt
    assert halt.signal == signal, halt
    if value is not None:
        assert halt.value == pytest.approx(value), halt
    if threshold is not None:
        assert halt.threshold == pytest.approx(threshold), halt
    if target is not None:
        assert halt.target == target, halt


def assert_tripped(root: Path, run_id: str, halt: tracekit.Halted, level: str, signal: str,
                   value: float, threshold: float, target: str | None = None) -> None:
    """Halted says what tripped; a guard event records it; the halt flag is in the store."""
    assert not isinstance(halt, tracekit.OutOfScope)
    target = target or run_id
    assert_halt(halt, level, signal, value, threshold, target)
    events = [e for e in guard_events(root, run_id) if e["attrs"]["signal"] == signal]
    assert events, guard_events(root)
    first = events[0]
    assert first["status"] == "halted"
    assert first["attrs"]["level"] == level and first["attrs"]["target"] == target
    assert first["attrs"]["value"] == pytest.approx(value)
    assert first["attrs"]["threshold"] == pytest.approx(threshold)
    control = control_of(root)
    try:
        flags = control.flags()
        info = flags[flag_key(level, target)]
        assert info["signal"] == signal and info["by"] == "tracekit-guard"
        assert info["value"] == pytest.approx(value)
        assert control.trips(1)[0]["key"] == flag_key(level, target)
    finally:
        control.close()


def assert_never_halted(root: Path, run_id: str) -> None:
    assert guard_events(root, run_id) == []
    control = control_of(root)
    try:
        assert flag_key("run", run_id) not in control.flags()
    finally:
        control.close()


def refused(run: tracekit.Run, tool: str = "plain") -> tracekit.Halted | None:
    """Try one guarded call of ``tool`` on ``run``; the Halted it raised, or None if it ran."""
    try:
        run.call_tool(tool, plain)
    except tracekit.Halted as halt:
        return halt
    return None


def wait_for(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.01)


def child(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)


def result_of(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# == bounds and detectors: one agent trips each, one stays just under it ===========================
def test_max_steps_trips_on_the_step_past_the_bound(guarded: Callable[..., Path]) -> None:
    root = guarded(max_steps=3)
    with tracekit.run(tenant="acme") as run:
        for i in range(3):
            run.model_output(f"thought {i}")
            lookup(f"o{i}")
        with pytest.raises(tracekit.Halted) as info:
            run.model_output("thought 3")
        with pytest.raises(tracekit.Halted) as again:  # the run stays halted
            lookup("o3")
    assert BODY["lookup"] == 3
    assert_tripped(root, run.run_id, info.value, "run", "steps", 4, 3)
    assert_halt(again.value, "run", "steps", target=run.run_id)


def test_max_steps_just_under(guarded: Callable[..., Path]) -> None:
    root = guarded(max_steps=3)
    with tracekit.run(tenant="acme") as run:
        for i in range(3):
            run.model_output(f"thought {i}")
            lookup(f"o{i}")
            lookup(f"o{i}-again")
    assert BODY["lookup"] == 6
    assert_never_halted(root, run.run_id)


def test_max_cost_usd_trips(guarded: Callable[..., Path]) -> None:
    root = guarded(max_cost_usd=1.0)
    with tracekit.run(tenant="acme") as run:
        run.model_output("a", cost_usd=0.5)
        run.model_output("b", cost_usd=0.5)
        lookup("o1")
        with pytest.raises(tracekit.Halted) as info:
            run.model_output("c", cost_usd=0.25)
        with pytest.raises(tracekit.Halted):
            lookup("o2")
    assert BODY["lookup"] == 1
    assert_tripped(root, run.run_id, info.value, "run", "cost", 1.25, 1.0)


def test_max_cost_usd_just_under(guarded: Callable[..., Path]) -> None:
    root = guarded(max_cost_usd=1.0)
    with tracekit.run(tenant="acme") as run:
        for cost in (0.5, 0.25, 0.25):  # exactly 1.0: at the bound, not over it
            run.model_output("x", cost_usd=cost)
            lookup("o")
    assert BODY["lookup"] == 3
    assert_never_halted(root, run.run_id)


def test_max_tool_calls_per_minute_trips_on_the_injected_clock(
    guarded: Callable[..., Path],
) -> None:
    clock = FakeClock()
    root = guarded(max_tool_calls_per_minute=5, clock=clock)
    with tracekit.run(tenant="acme") as run:
        for i in range(5):
            lookup(f"o{i}")
            clock.advance(10.0)  # 5 calls in 50 s of guard time (milliseconds of real time)
        with pytest.raises(tracekit.Halted) as info:
            lookup("o5")
    assert BODY["lookup"] == 5
    assert_tripped(root, run.run_id, info.value, "run", "tool_calls_per_minute", 6, 5)


def test_max_tool_calls_per_minute_just_under(guarded: Callable[..., Path]) -> None:
    clock = FakeClock()
    root = guarded(max_tool_calls_per_minute=5, clock=clock)
    with tracekit.run(tenant="acme") as run:
        for i in range(5):
            lookup(f"a{i}")
        clock.advance(60.0)  # the window slides on the injected clock
        for i in range(5):
            lookup(f"b{i}")
            clock.advance(12.0)
        lookup("c")  # the first call of the second burst left the window
    assert BODY["lookup"] == 11
    assert_never_halted(root, run.run_id)


def test_max_repeats_stops_a_tight_loop(guarded: Callable[..., Path]) -> None:
    root = guarded(max_repeats=3)
    with tracekit.run(tenant="acme") as run:
        lookup("A-1")
        lookup(order_id="A-1")  # the same canonical arguments, passed by keyword
        lookup("A-1")
        with pytest.raises(tracekit.Halted) as info:
            lookup("A-1")
        with pytest.raises(tracekit.Halted):
            lookup("B-2")
    assert BODY["lookup"] == 3
    assert_tripped(root, run.run_id, info.value, "run", "repeats", 4, 3)


def test_max_repeats_just_under(guarded: Callable[..., Path]) -> None:
    clock = FakeClock()
    root = guarded(max_repeats=3, repeat_window_s=30.0, clock=clock)
    with tracekit.run(tenant="acme") as run:
        for _ in range(3):
            lookup("A-1")
        lookup("B-2")  # other arguments: not a repeat
        send_email("A-1", "hi")  # another tool
        clock.advance(30.0)  # the repeat window has passed
        for _ in range(3):
            lookup("A-1")
    assert BODY["lookup"] == 7
    assert_never_halted(root, run.run_id)


def test_reflection_spiral_without_tools_is_halted(guarded: Callable[..., Path]) -> None:
    root = guarded(max_steps_without_progress=3)
    with tracekit.run(tenant="acme") as run:
        for i in range(3):
            run.model_output(f"let me reconsider ({i})")
        with pytest.raises(tracekit.Halted) as info:
            run.model_output("let me reconsider, again")
    assert_tripped(root, run.run_id, info.value, "run", "no_progress", 4, 3)


def test_max_steps_without_progress_just_under(guarded: Callable[..., Path]) -> None:
    root = guarded(max_steps_without_progress=3)
    with tracekit.run(tenant="acme") as run:
        for _ in range(3):
            run.model_output("thinking")
        run.progress("found the order")
        for _ in range(3):
            run.model_output("thinking")
        for i in range(6):  # a new tool-call signature each step is a change of state too
            lookup(f"o{i}")
            run.model_output("acting")
    assert_never_halted(root, run.run_id)


def test_a_new_tool_with_the_same_arguments_is_progress(guarded: Callable[..., Path]) -> None:
    guarded(max_steps_without_progress=1)
    with tracekit.run(tenant="acme") as run:
        run.model_output("look it up")
        run.call_tool("lookup_order", plain, "A-1")
        run.model_output("now cancel it")
        run.call_tool("cancel_order", plain, "A-1")  # same arguments, another tool
        run.model_output("done")  # -> Halted(no_progress, value 2) today


def test_max_depth_trips_on_a_grandchild(guarded: Callable[..., Path]) -> None:
    root = guarded(max_depth=1)
    with tracekit.run(tenant="acme") as top, tracekit.run(tenant="acme", parent=top) as sub:
        assert sub.depth == 1
        lookup("o1")
        deep = tracekit.run(tenant="acme", parent=sub)
        with pytest.raises(tracekit.Halted) as info, deep:
            lookup("never")
    assert BODY["lookup"] == 1
    assert deep.depth == 2
    assert_tripped(root, deep.run_id, info.value, "run", "fan_out_depth", 2, 1)


def test_max_depth_just_under(guarded: Callable[..., Path]) -> None:
    root = guarded(max_depth=1)
    with tracekit.run(tenant="acme") as top:
        for i in range(3):
            with tracekit.run(tenant="acme", parent=top):
                lookup(f"o{i}")
    assert BODY["lookup"] == 3
    assert_never_halted(root, top.run_id)
    assert guard_events(root) == []


def test_max_depth_counts_a_parent_given_by_id(guarded: Callable[..., Path]) -> None:
    guarded(max_depth=1)
    with tracekit.run(tenant="acme") as top, tracekit.run(tenant="acme", parent=top) as sub:
        assert sub.depth == 1
        with pytest.raises(tracekit.Halted), tracekit.run(tenant="acme", parent=sub.run_id):
            lookup("a grandchild, spawned by id")  # today: depth 1, runs


def test_max_children_trips_and_halts_the_parent(guarded: Callable[..., Path]) -> None:
    root = guarded(max_children=2)
    with tracekit.run(tenant="acme") as top:
        for i in range(2):
            with tracekit.run(tenant="acme", parent=top):
                lookup(f"o{i}")
        with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="acme", parent=top):
            lookup("never")
        with pytest.raises(tracekit.Halted) as again:
            lookup("parent goes on")
    assert BODY["lookup"] == 2
    assert_halt(again.value, "run", "fan_out_width", target=top.run_id)
    assert_halt(info.value, "run", "fan_out_width", 3, 2, target=top.run_id)
    control = control_of(root)
    assert control.flags()[flag_key("run", top.run_id)]["signal"] == "fan_out_width"
    control.close()
    events = guard_events(root)
    assert any(e["attrs"]["signal"] == "fan_out_width" and e["attrs"]["value"] == 3
               for e in events)


def test_max_children_just_under(guarded: Callable[..., Path]) -> None:
    root = guarded(max_children=2)
    with tracekit.run(tenant="acme") as top:
        for i in range(2):
            with tracekit.run(tenant="acme", parent=top):
                lookup(f"o{i}")
        lookup("parent goes on")
    assert BODY["lookup"] == 3
    assert_never_halted(root, top.run_id)


def test_tenant_spend_is_summed_across_processes(
    guarded: Callable[..., Path], tmp_path: Path,
) -> None:
    root = guarded(tenant_spend_usd=1.0)
    with tracekit.run(tenant="acme") as run:
        run.model_output("warm up")  # the guard is up; control.db exists
    procs = [child("spend", str(root), "acme", "1", "0.25", "1.0", cwd=tmp_path)
             for _ in range(2)]
    for proc in procs:
        assert result_of(proc) == {"halted": None}  # each spent 0.25: the tenant is at 0.5
    control = control_of(root)
    assert control.total("spend:acme", 0) == pytest.approx(0.5)
    rt = PROCESS.guard_runtime()
    assert rt is not None
    with tracekit.run(tenant="acme") as run:
        run.model_output("mine", cost_usd=0.25)
        # the background sync pushes this spend and reads the tenant's window back
        assert wait_for(lambda: control.total("spend:acme", 0) >= 0.75 - 1e-9)
        assert control.total("spend:acme", 0) == pytest.approx(0.75)
        assert rt.tenant_spend("acme") == pytest.approx(0.75)
        lookup("just under: 0.75 of 1.0")  # no Halted
        with pytest.raises(tracekit.Halted) as info:  # alone 0.75, but the tenant is at 1.25
            run.model_output("more", cost_usd=0.5)
        halt = info.value
        assert refused(run) is not None
    control.close()
    assert BODY["plain"] == 0 and BODY["lookup"] == 1
    assert_tripped(root, run.run_id, halt, "tenant", "tenant_spend", 1.25, 1.0, target="acme")
    with tracekit.run(tenant="globex") as other:  # another tenant is not halted
        lookup("globex")
    with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="acme"):
        pass  # a new run of the halted tenant is stopped at its start
    assert_halt(info.value, "tenant", "tenant_spend", target="acme")
    assert other.tenant == "globex"


def test_tenant_spend_counts_only_the_window(guarded: Callable[..., Path]) -> None:
    clock = FakeClock()
    root = guarded(tenant_spend_usd=1.0, spend_window_s=300.0, clock=clock)
    with tracekit.run(tenant="acme") as run:
        rt = PROCESS.guard_runtime()
        assert rt is not None
        control = control_of(root)
        run.model_output("old spend", cost_usd=0.75)
        assert wait_for(lambda: control.total("spend:acme", 0) >= 0.75)
        clock.advance(301.0)  # the old spend leaves the window
        # the background sync recomputes the window on the injected clock
        assert wait_for(lambda: rt.tenant_spend("acme") == 0.0)
        run.model_output("new spend", cost_usd=0.5)  # 1.25 in all, 0.5 in the window
        lookup("still fine")
        assert wait_for(lambda: rt.tenant_spend("acme") == 0.5)
        lookup("still fine")
        with pytest.raises(tracekit.Halted) as info:
            run.model_output("more", cost_usd=0.75)  # 1.25 in the window
    control.close()
    assert_halt(info.value, "tenant", "tenant_spend", 1.25, 1.0, target="acme")
    assert BODY["lookup"] == 2


def test_spend_is_pushed_when_the_process_shuts_down(guarded: Callable[..., Path]) -> None:
    """A short-lived worker's spend is not lost: closing the guard pushes it."""
    root = guarded(tenant_spend_usd=10.0, refresh_s=30.0, staleness_s=60.0)
    with tracekit.run(tenant="acme") as run:
        run.model_output("one expensive call", cost_usd=0.6)
    tracekit.shutdown()
    control = control_of(root)
    try:
        assert control.total("spend:acme", 0) == pytest.approx(0.6)
    finally:
        control.close()


def test_a_fresh_process_sees_the_tenants_spend(guarded: Callable[..., Path]) -> None:
    root = guarded(tenant_spend_usd=1.0)
    root.mkdir(parents=True, exist_ok=True)
    other = control_of(root)  # other workers already spent 1.5 in this window
    other.add("spend:acme", int(time.time() // 10), 1.5)
    other.close()
    with tracekit.run(tenant="acme"):
        time.sleep(0.3)  # several refreshes
        with pytest.raises(tracekit.Halted):
            lookup("should be refused: the tenant is over its budget")


def test_max_writes_per_minute_trips_while_reads_flow(guarded: Callable[..., Path]) -> None:
    clock = FakeClock()
    root = guarded(max_writes_per_minute=2, clock=clock)
    with tracekit.run(tenant="acme") as run:
        send_email("a@x", "1")
        for i in range(10):
            lookup(f"o{i}")  # reads do not count
        send_email("b@x", "2")
        with pytest.raises(tracekit.Halted) as info:
            send_email("c@x", "3")
    assert BODY["send_email"] == 2 and BODY["lookup"] == 10
    assert_tripped(root, run.run_id, info.value, "run", "writes_per_minute", 3, 2)


def test_max_writes_per_minute_just_under(guarded: Callable[..., Path]) -> None:
    clock = FakeClock()
    root = guarded(max_writes_per_minute=2, clock=clock)
    with tracekit.run(tenant="acme") as run:
        for i in range(3):
            send_email(f"{i}a@x", "1")
            send_email(f"{i}b@x", "2")
            clock.advance(60.0)
    assert BODY["send_email"] == 6
    assert_never_halted(root, run.run_id)


def test_min_progress_per_usd_trips_when_progress_collapses(guarded: Callable[..., Path]) -> None:
    root = guarded(min_progress_per_usd=8.0, progress_grace_usd=0.0)
    with tracekit.run(tenant="acme") as run:
        for i in range(2):
            run.progress(f"closed ticket {i}")
            run.model_output("work", cost_usd=0.125)  # 8 progress marks per dollar
        with pytest.raises(tracekit.Halted) as info:
            run.model_output("burn", cost_usd=0.125)  # 2 marks for $0.375: 5.33 per dollar
    assert_tripped(root, run.run_id, info.value, "run", "progress_per_usd", 2 / 0.375, 8.0)


def test_min_progress_per_usd_just_under(guarded: Callable[..., Path]) -> None:
    root = guarded(min_progress_per_usd=8.0, progress_grace_usd=0.0)
    with tracekit.run(tenant="acme") as run:
        for i in range(6):
            run.progress(f"closed ticket {i}")
            run.model_output("work", cost_usd=0.125)  # exactly 8 per dollar, never below
            lookup(f"o{i}")
    assert_never_halted(root, run.run_id)


def test_min_progress_per_usd_has_a_grace(guarded: Callable[..., Path]) -> None:
    root = guarded(min_progress_per_usd=8.0, progress_grace_usd=0.5)
    with tracekit.run(tenant="acme") as run:
        for _ in range(3):
            run.model_output("exploring", cost_usd=0.125)  # $0.375 < grace: not judged yet
        with pytest.raises(tracekit.Halted) as info:
            run.model_output("exploring", cost_usd=0.125)
    assert_tripped(root, run.run_id, info.value, "run", "progress_per_usd", 0.0, 8.0)


# == scoping and argument bounds ===================================================================
def test_a_tool_outside_the_runs_scope_is_refused(guarded: Callable[..., Path]) -> None:
    root = guarded()
    with tracekit.run(tenant="acme", tools={"lookup"}) as run:
        lookup("o1")
        with pytest.raises(tracekit.OutOfScope) as info:
            refund("o1", 10)
        lookup("o2")  # refused, not halted: the run goes on
    assert dict(BODY) == {"lookup": 2}
    assert_halt(info.value, "run", "scope", 1, target=run.run_id)
    assert "refund" in info.value.reason
    (event,) = guard_events(root, run.run_id)
    assert event["name"] == "refund" and event["status"] == "refused"
    assert event["attrs"]["signal"] == "scope"
    control = control_of(root)
    assert control.flags() == {}  # a refusal alone does not halt the run
    control.close()


def test_tenant_tools_scope_every_run_of_the_tenant(guarded: Callable[..., Path]) -> None:
    guarded(tenant_tools={"acme": ["lookup", "send_email"]})
    with tracekit.run(tenant="acme"):
        lookup("o1")
        send_email("a@x", "hi")
        with pytest.raises(tracekit.OutOfScope):
            refund("o1", 10)
    with tracekit.run(tenant="globex"):  # no scope for globex: every tool
        refund("o1", 10)
    assert dict(BODY) == {"lookup": 1, "send_email": 1, "refund": 1}


def test_tool_argument_bounds(guarded: Callable[..., Path]) -> None:
    root = guarded()
    with tracekit.run(tenant="acme") as run:
        refund("o1", 200)  # at the bound
        refund("o1", amount=0)
        with pytest.raises(tracekit.OutOfScope) as info:
            refund("o1", 250)
        with pytest.raises(tracekit.OutOfScope):
            refund("o1", amount=-5)
        with pytest.raises(tracekit.OutOfScope):
            refund(order_id="o1", amount=200.01)
        refund("o2", 199.99)
    assert BODY["refund"] == 3
    assert_halt(info.value, "run", "scope", target=run.run_id)
    assert "amount" in info.value.reason and "250" in info.value.reason
    events = guard_events(root, run.run_id)
    assert [e["status"] for e in events] == ["refused"] * 3
    assert all(e["name"] == "refund" for e in events)


def test_max_scope_violations_halts_the_run(guarded: Callable[..., Path]) -> None:
    root = guarded(max_scope_violations=3)
    with tracekit.run(tenant="acme", tools={"lookup", "refund"}) as run:
        with pytest.raises(tracekit.OutOfScope):
            send_email("a@x", "not allowed")
        lookup("o1")
        with pytest.raises(tracekit.OutOfScope):
            refund("o1", 5000)
        lookup("o2")
        with pytest.raises(tracekit.Halted) as info:
            send_email("b@x", "third strike")
        with pytest.raises(tracekit.Halted) as again:
            lookup("o3")  # in scope, but the run is halted now
    assert dict(BODY) == {"lookup": 2}
    assert_tripped(root, run.run_id, info.value, "run", "scope_violations", 3, 3)
    assert not isinstance(again.value, tracekit.OutOfScope)


def test_max_scope_violations_just_under(guarded: Callable[..., Path]) -> None:
    root = guarded(max_scope_violations=3)
    with tracekit.run(tenant="acme", tools={"lookup", "refund"}) as run:
        for bad in (lambda: send_email("a@x", "no"), lambda: refund("o1", 500)):
            with pytest.raises(tracekit.OutOfScope):
                bad()
        for i in range(10):
            lookup(f"o{i}")
    assert dict(BODY) == {"lookup": 10}
    control = control_of(root)
    assert control.flags() == {}
    control.close()
    assert [e["status"] for e in guard_events(root, run.run_id)] == ["refused", "refused"]


# == the kill switch ===============================================================================
R1 = tracekit.Release(model="m", prompt="p1", tools="t")
R2 = tracekit.Release(model="m", prompt="p2", tools="t")


@pytest.mark.parametrize(("level", "who", "halted"), [
    ("global", None, {"a1", "b1", "a2"}),
    ("tenant", "a", {"a1", "a2"}),
    ("release", "R2", {"a2"}),
    ("run", "a1", {"a1"}),
])
def test_each_halt_level_stops_the_right_runs(
    guarded: Callable[..., Path], level: str, who: str | None, halted: set[str],
) -> None:
    root = guarded()
    with (tracekit.run(tenant="a", release=R1) as a1, tracekit.run(tenant="b", release=R1) as b1,
          tracekit.run(tenant="a", release=R2) as a2):
        runs = {"a1": a1, "b1": b1, "a2": a2}
        target = {None: None, "a": "a", "R2": R2.release_id, "a1": a1.run_id}[who]
        assert all(refused(r) is None for r in runs.values())
        other = control_of(root)  # as the on-call CLI in another process would
        other.set_flag(flag_key(level, target), now_info("incident", by="oncall"))
        assert wait_for(lambda: all(refused(runs[n]) for n in halted))
        for name, run in runs.items():
            halt = refused(run)
            if name in halted:
                assert halt is not None
                assert (halt.level, halt.target, halt.reason) == (level, target, "incident")
            else:
                assert halt is None, (name, halt)
        other.clear_flag(flag_key(level, target))
        other.close()
        assert wait_for(lambda: all(refused(r) is None for r in runs.values()))


def test_halt_levels_are_checked_in_order(guarded: Callable[..., Path]) -> None:
    root = guarded()
    rt = PROCESS.guard_runtime()
    assert rt is not None
    with tracekit.run(tenant="a", release=R1) as run:
        keys = [flag_key("global"), flag_key("tenant", "a"), flag_key("release", R1.release_id),
                flag_key("run", run.run_id), flag_key("tool", "lookup")]
        for key in keys:
            rt.control.set_flag(key, now_info(key))
        assert wait_for(lambda: all(key in rt.flags for key in keys))
        seen = []
        for key in keys:
            halt = wait_for(lambda k=key: (h := refused(run, "lookup")) and h.reason == k and h)
            assert halt, key
            seen.append(halt.level)
            rt.control.clear_flag(key)
        assert seen == ["global", "tenant", "release", "run", "tool"]
        assert wait_for(lambda: refused(run, "lookup") is None)
        assert refused(run, "refund") is None
    assert BODY["plain"] == 2
    assert len(guard_events(root, run.run_id)) >= 5


def test_a_frozen_tool_refuses_only_that_tool(guarded: Callable[..., Path]) -> None:
    root = guarded()
    rt = PROCESS.guard_runtime()
    assert rt is not None
    with tracekit.run(tenant="a") as run, tracekit.run(tenant="b") as other:
        rt.control.set_flag(flag_key("tool", "refund"), now_info("refunds double-paying"))
        assert wait_for(lambda: rt.flags.get("freeze:tool:refund"))
        for r in (run, other):
            with pytest.raises(tracekit.Halted) as info:
                r.call_tool("refund", plain)
            assert_halt(info.value, "tool", "frozen_tool", target="refund")
            assert r.call_tool("lookup", plain, 7) == 7  # reads still flow
        lookup("decorated")  # the current run (other) still uses other tools
        with pytest.raises(tracekit.Halted):
            refund("o1", 5)
    assert dict(BODY) == {"plain": 2, "lookup": 1}
    events = guard_events(root)
    assert {e["name"] for e in events} == {"refund"}
    assert {e["attrs"]["level"] for e in events} == {"tool"}


# == a trip is shared: the halt flag in the control store ==========================================
def test_a_tripped_run_is_stopped_when_resumed_in_another_process(
    guarded: Callable[..., Path], tmp_path: Path,
) -> None:
    root = guarded(max_steps=2)
    with tracekit.run(tenant="acme", run_id="run-tripped") as run:
        run.model_output("1")
        run.model_output("2")
        with pytest.raises(tracekit.Halted):
            run.model_output("3")
    tracekit.shutdown()
    out = result_of(child("resume", str(root), "run-tripped", json.dumps({"max_steps": 100}),
                          "0", "3", cwd=tmp_path))
    assert out["start_step"] is None  # stopped in tracekit.run(...).__enter__
    assert out["tool_bodies"] == 0
    assert out["halted"]["level"] == "run" and out["halted"]["signal"] == "steps"
    assert out["halted"]["target"] == "run-tripped"


def test_resume_in_a_new_process_continues_steps_and_spend(
    guarded: Callable[..., Path], tmp_path: Path,
) -> None:
    root = guarded()
    for run_id in ("run-steps", "run-cost"):
        with tracekit.run(tenant="acme", run_id=run_id) as run:
            for i in range(3):
                run.model_output(f"step {i}", cost_usd=0.25)
                lookup(f"o{i}")
    tracekit.shutdown()  # the run state is saved in the control store
    steps = child("resume", str(root), "run-steps", json.dumps({"max_steps": 5}), "0", "10",
                  cwd=tmp_path)
    cost = child("resume", str(root), "run-cost", json.dumps({"max_cost_usd": 1.0}), "0.25",
                 "10", cwd=tmp_path)
    by_steps, by_cost = result_of(steps), result_of(cost)
    # 3 steps were taken: 2 more, then the 6th step trips max_steps=5
    assert by_steps["start_step"] == 3
    assert by_steps["steps_done"] == 2 and by_steps["tool_bodies"] == 2
    assert by_steps["halted"]["signal"] == "steps" and by_steps["halted"]["value"] == 6
    # $0.75 was spent: one more $0.25 step, then $1.25 trips max_cost_usd=1.0
    assert by_cost["start_step"] == 3
    assert by_cost["steps_done"] == 1 and by_cost["tool_bodies"] == 1
    assert by_cost["halted"]["signal"] == "cost"
    assert by_cost["halted"]["value"] == pytest.approx(1.25)


# == halts propagate from other processes ==========================================================
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_halt_from_another_process_stops_the_next_call(
    guarded: Callable[..., Path], tmp_path: Path, request: pytest.FixtureRequest, backend: str,
) -> None:
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        root = guarded(control=server.url)
        spec = server.url
    else:
        root = guarded()
        spec = "sqlite"
    with tracekit.run(tenant="acme") as run:
        assert refused(run) is None
        proc = child("halt", spec, str(root), flag_key("run", run.run_id), cwd=tmp_path)
        deadline = time.monotonic() + 60
        while (halt := refused(run)) is None and time.monotonic() < deadline:
            time.sleep(0.002)
        stopped_at = time.time()
    set_at = result_of(proc)["set_at"]
    assert halt is not None
    assert_halt(halt, "run", "operator", target=run.run_id)
    # loose on purpose (250 ms SQLite / 50 ms Redis are benchmarks, not tests)
    assert stopped_at - set_at < 2.0


# == fail closed ===================================================================================
def _outage(run: tracekit.Run, seconds: float) -> list[str]:
    """Guarded calls (tools and model outputs) for ``seconds``: what each one got."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for call in (lambda: run.call_tool("plain", plain), lambda: run.model_output("x")):
            try:
                call()
                got.append("ran")
            except tracekit.Halted as halt:
                got.append(halt.level)
        time.sleep(0.01)
    return got


def test_redis_killed_mid_run_fails_closed_and_halts_survive(
    guarded: Callable[..., Path], durable_redis: RedisServer,
) -> None:
    guarded(control=durable_redis.url, staleness_s=0.3, refresh_s=0.05)
    with tracekit.run(tenant="acme") as run, tracekit.run(tenant="acme") as halted:
        assert refused(run) is None and refused(halted) is None
        rt = PROCESS.guard_runtime()
        assert rt is not None
        rt.control.set_flag(flag_key("run", halted.run_id), now_info("before the outage"))
        assert wait_for(lambda: refused(halted))
        durable_redis.kill()
        first = wait_for(lambda: refused(run), timeout=0.3 + 0.05 + 1.0)
        assert first is not None and first.level == "store"
        got = _outage(run, 0.6)
        assert set(got) == {"store"}, got  # every guarded call during the outage
        assert refused(halted).level == "store"  # type: ignore[union-attr]
        durable_redis.start()  # back on the same port, with its data
        assert wait_for(lambda: refused(run) is None, timeout=5.0)
        halt = refused(halted)
        assert halt is not None and halt.level == "run" and halt.reason == "before the outage"


def test_a_redis_restart_without_persistence_fails_closed_until_an_operator_looks(
    guarded: Callable[..., Path], redis_server: RedisServer,
) -> None:
    guarded(control=redis_server.url, staleness_s=0.3, refresh_s=0.05)
    with tracekit.run(tenant="acme") as run, tracekit.run(tenant="acme") as halted:
        rt = PROCESS.guard_runtime()
        assert rt is not None
        rt.control.set_flag(flag_key("run", halted.run_id), now_info("before the outage"))
        assert wait_for(lambda: refused(halted))
        redis_server.kill()
        assert wait_for(lambda: refused(run), timeout=2.0)
        redis_server.start()  # back, but empty: the halt on `halted` is gone with the data
        time.sleep(0.5)
        for each in (run, halted):  # an empty store is never taken for a clean one
            halt = refused(each)
            assert halt is not None and halt.level == "store", halt
            assert "holds no tracekit state" in halt.reason
        RedisControl(redis_server.url).close()  # the operator re-initialises (tracekit status)
        assert wait_for(lambda: refused(run) is None, timeout=5.0)


def test_sqlite_file_removed_mid_run_fails_closed(guarded: Callable[..., Path]) -> None:
    root = guarded(staleness_s=0.3, refresh_s=0.05)
    with tracekit.run(tenant="acme") as run:
        assert refused(run) is None
        run.model_output("ok")
        os.remove(root / "control.db")
        first = wait_for(lambda: refused(run), timeout=0.3 + 0.05 + 1.0)
        assert first is not None and first.level == "store"
        got = _outage(run, 0.5)
        assert set(got) == {"store"}, got


def test_sqlite_locked_while_spending_fails_closed_and_halts_survive(
    guarded: Callable[..., Path],
) -> None:
    root = guarded(staleness_s=0.3, refresh_s=0.05)
    with tracekit.run(tenant="acme") as run, tracekit.run(tenant="acme") as halted:
        other = control_of(root)
        other.set_flag(flag_key("run", halted.run_id), now_info("before the outage"))
        other.close()
        assert wait_for(lambda: refused(halted))
        locker = sqlite3.connect(root / "control.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            run.model_output("spend", cost_usd=0.01)  # a write the guard must push
            first = wait_for(lambda: refused(run), timeout=0.3 + 0.05 + 2.0)
            assert first is not None and first.level == "store"
            got = _outage(run, 0.8)
            assert set(got) == {"store"}, got
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert wait_for(lambda: refused(run) is None, timeout=5.0)
        halt = refused(halted)
        assert halt is not None and halt.level == "run"


def test_sqlite_locked_mid_run_refuses_every_call(guarded: Callable[..., Path]) -> None:
    root = guarded(staleness_s=0.3, refresh_s=0.05)
    with tracekit.run(tenant="acme") as run:
        assert refused(run) is None
        locker = sqlite3.connect(root / "control.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            lookup("o1")  # the run has state to save; the store cannot take it
            first = wait_for(lambda: refused(run, "lookup"), timeout=0.3 + 0.05 + 2.0)
            assert first is not None and first.level == "store"
            got = []
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                halt = refused(run, "lookup")
                got.append("ran" if halt is None else halt.level)
                time.sleep(0.02)
            assert set(got) == {"store"}, got
        finally:
            locker.execute("ROLLBACK")
            locker.close()



# == a refresh thread that falls behind ============================================================
def test_a_refresh_thread_that_falls_behind_is_caught_up_by_the_call(
    guarded: Callable[..., Path],
) -> None:
    """The cache ages past the bound (the refresh thread waits 30 s here): the next call reads
    the flags itself, so it runs, and a halt set meanwhile refuses it."""
    root = guarded(staleness_s=0.2, refresh_s=30.0)
    with tracekit.run(tenant="acme") as run:
        time.sleep(0.3)
        assert refused(run) is None
        other = control_of(root)
        other.set_flag(flag_key("run", run.run_id), now_info("stop it"))
        other.close()
        assert refused(run) is None  # the cache is fresh: the halt shows with the next read
        time.sleep(0.3)
        halt = refused(run)
        assert halt is not None and halt.level == "run" and halt.reason == "stop it", halt


def test_a_busy_agent_that_starves_the_refresh_thread_is_not_refused(
    guarded: Callable[..., Path],
) -> None:
    """An agent whose thread releases the GIL briefly and takes it back (a syscall every few
    hundred µs, as an SDK's request does) can keep the refresh thread off the GIL for
    seconds: no call of it is refused as stale, and a halt still stops it within the bound."""
    root = guarded(staleness_s=0.3, refresh_s=0.05)
    got: list[tuple[float, str]] = []
    with tracekit.run(tenant="acme") as run:
        start = time.monotonic()
        halted_at = None
        while (now := time.monotonic() - start) < 1.6:
            for _ in range(3):
                os.urandom(8)  # releases the GIL, and takes it back at once
                sum(i * i for i in range(2000))  # a little work between two syscalls
            halt = refused(run)
            got.append((now, "ran" if halt is None else f"{halt.level}: {halt.reason}"))
            if halted_at is None and now > 0.8:
                other = control_of(root)
                other.set_flag(flag_key("run", run.run_id), now_info("stop it"))
                other.close()
                halted_at = time.monotonic() - start
    assert halted_at is not None
    before = {what for at, what in got if at < halted_at}
    after = [(at, what) for at, what in got if what != "ran"]
    assert before == {"ran"}, sorted(before)
    assert {what for _, what in after} == {"run: stop it"}, after[:3]
    assert after[0][0] - halted_at < 0.3 + 0.05 + 0.5

# == bad configuration =============================================================================
@pytest.mark.parametrize(("settings", "key"), [
    ({"max_steps": -1}, "max_steps"),
    ({"max_cost_usd": 0}, "max_cost_usd"),
    ({"max_stepz": 3}, "max_stepz"),
    ({"max_steps": "ten"}, "max_steps"),
    ({"tenant_tools": ["lookup"]}, "tenant_tools"),
    ({"new_destination": "maybe"}, "new_destination"),
])
def test_bad_guard_settings_name_the_key(
    settings: dict[str, Any], key: str, tmp_path: Path,
) -> None:
    with pytest.raises(ValidationError) as direct:
        tracekit.Guard(**settings)
    assert key in str(direct.value)
    with pytest.raises(ValueError) as info:
        tracekit.configure(store=tmp_path / "store", guard=settings)
    message = str(info.value)
    assert "\n" not in message and repr(key) in message
    assert "configure(guard=...)" in message


def test_a_boolean_is_the_wrong_type_for_a_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_steps"):
        tracekit.configure(store=tmp_path / "store", guard={"max_steps": True})


def test_pyproject_guard_table_is_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(textwrap.dedent("""
        [project]
        name = "agent"

        [tool.tracekit.guard]
        max_steps = 2
        refresh_s = 0.05
        staleness_s = 5.0
    """))
    monkeypatch.chdir(project)
    try:
        tracekit.configure(store=tmp_path / "store")
        guard = PROCESS.settings().guard
        assert guard is not None and guard.max_steps == 2
        with tracekit.run(tenant="acme") as run:
            run.model_output("1")
            run.model_output("2")
            with pytest.raises(tracekit.Halted) as info:
                run.model_output("3")
        assert_halt(info.value, "run", "steps", 3, 2)
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)


def test_pyproject_bad_key_names_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    pyproject = project / "pyproject.toml"
    pyproject.write_text("[tool.tracekit.guard]\nmax_steps = 2\nmax_stepz = 3\n")
    monkeypatch.chdir(project)
    with pytest.raises(ValueError) as info:
        tracekit.configure(store=tmp_path / "store")
    message = str(info.value)
    assert "\n" not in message
    assert str(pyproject) in message and "'max_stepz'" in message
    pyproject.write_text("[tool.tracekit.guard]\nmax_steps = -4\n")
    with pytest.raises(ValueError, match=r"pyproject\.toml.*'max_steps'"):
        tracekit.configure(store=tmp_path / "store")
