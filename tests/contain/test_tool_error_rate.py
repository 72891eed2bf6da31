"""The tool-error-rate detector: a run hammering a tool that keeps failing is halted, in a live
run, in policy replay and in agent replay alike, and a resumed run keeps its window."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _replaying import export, replay
from pydantic import ValidationError

import tracekit
from tracekit._contain.settings import DETECTORS
from tracekit._replay.feed import decisions
from tracekit._replay.suggest import TUNABLES, suggest
from tracekit.testing import Recording

BOUND = {"max_tool_error_rate": 0.5, "tool_error_min_calls": 4, "tool_error_window_s": 60.0}
CALLS: list[int] = []


class Upstream503(RuntimeError):
    pass


@tracekit.tool
def fetch_invoice(i: int) -> dict[str, Any]:
    CALLS.append(i)
    if i % 4:  # three of every four calls fail
        raise Upstream503(f"invoice service unavailable ({i})")
    return {"invoice": i}


@tracekit.entrypoint
def flaky_agent(tenant: str, calls: int = 12) -> None:
    with tracekit.run(tenant=tenant) as run:
        for i in range(calls):
            run.model_output(f"try invoice {i}", cost_usd=0.001)
            try:
                fetch_invoice(i)
            except Upstream503 as exc:
                run.error(exc)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CALLS.clear()


def guard_events(store: Path, run_id: str) -> list[dict[str, Any]]:
    rows = Recording(store).rows("SELECT name, status, attrs FROM events WHERE run_id = ? AND "
                                 "kind = 'guard' ORDER BY seq", [run_id])
    return [{**r, "attrs": json.loads(r["attrs"])} for r in rows]


def test_it_is_registered_after_the_rates() -> None:
    names = [d.__name__ for d in DETECTORS]
    assert names.index("ToolErrorRate") > names.index("WriteRate")
    assert "max_tool_error_rate" in {t.field for t in TUNABLES}
    with pytest.raises(ValidationError):
        tracekit.Guard(max_tool_error_rate=1.5)
    with pytest.raises(ValidationError):
        tracekit.Guard(max_tool_error_rate=0.5, tool_error_min_calls=0)


def test_a_failing_tool_halts_the_run_at_the_next_call(store: Path) -> None:
    tracekit.configure(store=store, guard=tracekit.Guard(**BOUND))
    with pytest.raises(tracekit.Halted) as info:
        flaky_agent("acme")
    halt = info.value
    assert (halt.level, halt.signal, halt.threshold) == ("run", "tool_error_rate", 0.5)
    assert halt.value == pytest.approx(3 / 4)  # calls 0..3: 1, 2 and 3 failed
    assert CALLS == [0, 1, 2, 3]  # the fifth call was refused before it ran
    tracekit.flush()
    [run_id] = [r["run_id"] for r in Recording(store).runs()]
    [event] = guard_events(store, run_id)
    assert event["name"] == "fetch_invoice" and event["status"] == "halted"
    assert event["attrs"]["signal"] == "tool_error_rate"
    assert tracekit.status(store=store).halts[0]["key"] == f"halt:run:{run_id}"


def test_below_the_minimum_count_or_the_rate_it_does_not_trip(store: Path) -> None:
    tracekit.configure(store=store, guard=tracekit.Guard(
        max_tool_error_rate=0.8, tool_error_min_calls=4))
    flaky_agent("acme", calls=12)  # 75 % fail: under 80 %
    assert len(CALLS) == 12
    tracekit.configure(store=store, guard=tracekit.Guard(
        max_tool_error_rate=0.5, tool_error_min_calls=20))
    flaky_agent("acme", calls=12)  # never 20 results in the window
    assert len(CALLS) == 24


def test_old_failures_leave_the_window(store: Path) -> None:
    now = [1000.0]
    tracekit.configure(store=store, clock=lambda: now[0], guard=tracekit.Guard(
        max_tool_error_rate=0.5, tool_error_min_calls=3, tool_error_window_s=10.0))
    with tracekit.run(tenant="acme"):
        for i in (1, 2, 3):  # three failures...
            with pytest.raises(Upstream503):
                fetch_invoice(i)
        now[0] += 11.0  # ...older than the window
        for i in (0, 4, 8, 12):
            fetch_invoice(i)
    assert CALLS == [1, 2, 3, 0, 4, 8, 12]


def test_a_resumed_run_keeps_its_window(store: Path) -> None:
    tracekit.configure(store=store, guard=tracekit.Guard(**BOUND))
    with tracekit.run(tenant="acme", run_id="run_flaky") as run:
        for i in (1, 2, 3, 0):
            try:
                fetch_invoice(i)
            except Upstream503 as exc:
                run.error(exc)
    tracekit.shutdown()  # the state is saved; a new process would resume from it
    tracekit.configure(store=store, guard=tracekit.Guard(**BOUND))
    with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="acme", run_id="run_flaky"):
        fetch_invoice(4)
    assert info.value.signal == "tool_error_rate"
    assert CALLS == [1, 2, 3, 0]


def test_policy_and_agent_replay_halt_where_the_live_run_did(store: Path,
                                                            tmp_path: Path) -> None:
    tracekit.configure(store=store, guard=False)
    flaky_agent("acme")  # recorded unguarded: all twelve calls ran
    assert len(CALLS) == 12
    bundle = export(store, tmp_path, "flaky")
    guard = tracekit.Guard(**BOUND)
    policy = tracekit.replay(bundle, guard=guard)
    agent = replay(bundle, flaky_agent, guard)
    assert policy.contained and agent.contained, (policy.describe(), agent.describe())
    assert policy.signal == agent.signal == "tool_error_rate"
    assert policy.step == agent.step == 5  # the fifth model output, then its call is refused
    assert not tracekit.replay(bundle, guard=tracekit.Guard()).contained
    assert len(CALLS) == 12  # replay ran no tool


def test_suggest_bounds_finds_a_rate_that_contains_it(store: Path, tmp_path: Path) -> None:
    tracekit.configure(store=store, guard=False)
    flaky_agent("acme")
    bundle = export(store, tmp_path, "flaky-suggest")
    import pyarrow.parquet as pq

    rows = decisions(pq.read_table(bundle / "events.parquet"))
    [tunable] = [t for t in TUNABLES if t.field == "max_tool_error_rate"]
    found = suggest(tunable, rows, [], [])
    assert found.tightest is not None and found.tightest.value < 0.75
    assert all(t.step is None for t in found.trials if t.value >= 0.75)
