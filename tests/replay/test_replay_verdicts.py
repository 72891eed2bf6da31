"""Agent replay's verdicts: contained where policy replay is, and a divergence however the agent
handles it.

A divergence the agent's ``except Exception`` swallows, an effect right before the halt, an
agent that catches the halt and escalates, a call its bounds refused, a new call mid-run, an
entry point that calls ``sys.exit(0)``.

As in test_agent_replay.py, the agents are module-level functions of this file, replayed with
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")``. ``KNOBS`` varies an agent
between recording and replay, ``outputs`` carries back what it saw, ``WORLD`` counts what its
tools and models really did.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _replaying import bundle_events, export, replay, replay_state

import tracekit

KNOBS: dict[str, Any] = {}
outputs: list[Any] = []
WORLD: dict[str, int] = {}
_LOCK = threading.Lock()


@pytest.fixture(autouse=True)
def _fresh_agents() -> Iterator[None]:
    KNOBS.clear()
    outputs.clear()
    WORLD.clear()
    yield
    KNOBS.clear()
    outputs.clear()
    WORLD.clear()


def _bump(counter: str) -> int:
    with _LOCK:
        WORLD[counter] = WORLD.get(counter, 0) + 1
        return WORLD[counter]


@pytest.fixture
def configured_guard(store: Path) -> Iterator[Callable[[tracekit.Guard], None]]:
    """Record under a guard of the test's choosing; the store's own settings after."""
    def configure(guard: tracekit.Guard) -> None:
        tracekit.configure(store=store, guard=guard)

    yield configure
    tracekit.configure(store=store, guard=False)


# -- the write tool the agents call ----------------------------------------------------------------
@tracekit.tool(writes=True, destination="pay")
def pay_refund(order_id: str, amount: int) -> dict[str, Any]:
    _bump("pay_refund")
    return {"ok": True}


# -- t1: a divergence the agent's `except Exception` swallows still fails the replay -------------
@tracekit.model(name="m", cost=lambda reply: 0.01)
def refund_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    done = sum(1 for m in messages if m["role"] == "tool")
    return {"call": {"order_id": f"o{done}", "amount": 5} if done < 3 else None}


@tracekit.entrypoint
def swallowing_agent(tenant: str) -> None:
    with tracekit.run(tenant=tenant):
        messages: list[dict[str, Any]] = [{"role": "user", "content": "refund o1"}]
        while (reply := refund_model(messages))["call"]:
            args = {**reply["call"], "amount": KNOBS.get("amount", reply["call"]["amount"])}
            try:
                result: Any = pay_refund(**args)
            except Exception as exc:  # the agent treats any failure as a tool error
                result = {"error": str(exc)[:40]}
            messages.append({"role": "tool", "content": result})
        outputs.append(len(messages))


def test_a_divergence_the_agent_swallows_still_fails_the_replay(store: Path,
                                                                tmp_path: Path) -> None:
    swallowing_agent("acme")
    bundle = export(store, tmp_path, "swallow")
    same = replay(bundle, swallowing_agent)
    assert not same.contained and same.note is None and len(same.effects) == 3
    before = replay_state()
    KNOBS["amount"] = 7
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(bundle, swallowing_agent)
    assert not isinstance(caught.value, tracekit.RecordingEnds)
    assert caught.value.kind == "tool_call"
    assert "pay_refund" in str(caught.value) and "args.amount" in str(caught.value)
    assert replay_state() == before
    assert WORLD == {"pay_refund": 3}


# -- t2: an effect whose result is directly followed by the halt is counted -----------------------
@tracekit.model(name="m", cost=lambda reply: 0.01)
def batch_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"calls": [["o1", 5], ["o2", 6]] if len(messages) == 1 else []}


@tracekit.entrypoint
def batch_agent(tenant: str) -> None:
    with tracekit.run(tenant=tenant):
        messages: list[dict[str, Any]] = [{"role": "user", "content": "x"}]
        while (reply := batch_model(messages))["calls"]:
            for order_id, amount in reply["calls"]:
                pay_refund(order_id=order_id, amount=amount)
            messages.append({"role": "tool", "content": "done"})


def test_an_effect_right_before_the_halt_counts_in_agent_and_policy_replay(
        store: Path, tmp_path: Path) -> None:
    batch_agent("acme")
    bundle = export(store, tmp_path, "batch")
    guard = tracekit.Guard(max_writes_per_minute=1)
    policy = tracekit.replay(bundle, guard=guard)
    agent = replay(bundle, batch_agent, guard)
    assert policy.contained and agent.contained, agent.describe()
    assert (agent.run_id, agent.step, agent.signal) == (policy.run_id, policy.step, policy.signal)
    assert agent.signal == "writes_per_minute"
    assert len(agent.effects) == len(policy.effects) == 1
    assert agent.effects == policy.effects
    assert agent.effects[0]["tool"] == "pay_refund"
    assert agent.spend_usd == policy.spend_usd


# -- t3: an agent that catches Halted and escalates is contained ----------------------------------
@tracekit.tool(writes=True, destination="mail")
def escalate(reason: str) -> dict[str, Any]:
    _bump("escalate")
    return {"ok": True}


@tracekit.model(name="m", cost=lambda reply: 0.01)
def pending_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"call": "o1" if len(messages) < 8 else None}


@tracekit.entrypoint
def escalating_agent(tenant: str) -> None:
    with tracekit.run(tenant=tenant):
        messages: list[dict[str, Any]] = [{"role": "user", "content": "x"}]
        try:
            while (reply := pending_model(messages))["call"]:
                pay_refund(order_id=reply["call"], amount=len(messages))
                messages.append({"role": "tool", "content": "done"})
        except tracekit.Halted:
            escalate(reason="guard stopped the run")  # hand off to a human


def test_an_agent_that_catches_the_halt_and_escalates_is_contained(store: Path,
                                                                   tmp_path: Path) -> None:
    escalating_agent("acme")
    bundle = export(store, tmp_path, "escalate")
    guard = tracekit.Guard(max_steps=3)
    policy = tracekit.replay(bundle, guard=guard)
    before = replay_state()
    agent = replay(bundle, escalating_agent, guard)  # no ReplayDivergence for the escalate
    assert agent.contained and agent.mode == "agent", agent.describe()
    assert (agent.step, agent.signal) == (policy.step, policy.signal) == (4, "steps")
    assert len(agent.effects) == len(policy.effects) == 3
    assert agent.note is None
    assert replay_state() == before
    assert WORLD == {"pay_refund": 7}  # recorded: seven refunds, no escalation; none in replay


# -- t4: a call the tool's bounds refused in production is refused again -------------------------
@tracekit.tool(writes=True, destination="pay", bounds={"amount": (0, 100)})
def bounded_refund(order_id: str, amount: int) -> dict[str, Any]:
    _bump("bounded_refund")
    return {"status": "ok"}


@tracekit.entrypoint
def bounded_agent(tenant: str) -> None:
    with tracekit.run(tenant=tenant) as run:
        try:
            bounded_refund(order_id="o1", amount=500)
        except tracekit.Halted as halt:
            run.error(halt)
        bounded_refund(order_id="o1", amount=50)


def test_a_call_refused_by_its_bounds_is_contained_again_in_both_replays(
        store: Path, tmp_path: Path, configured_guard: Callable[[tracekit.Guard], None]) -> None:
    configured_guard(tracekit.Guard())
    bounded_agent("acme")
    assert WORLD == {"bounded_refund": 1}  # the 500 was refused, the 50 went through
    bundle = export(store, tmp_path, "bounds")
    refused = [e for e in bundle_events(bundle) if e["kind"] == "guard"]
    assert [e["status"] for e in refused] == ["refused"]
    policy = tracekit.replay(bundle, guard=tracekit.Guard())
    agent = replay(bundle, bounded_agent)
    assert policy.contained, policy.describe()
    assert agent.contained, agent.describe()
    assert (agent.step, agent.signal) == (policy.step, policy.signal) == (0, "scope")
    assert agent.effects == policy.effects == []
    assert WORLD == {"bounded_refund": 1}


# -- t15: a new call mid-run is a divergence ------------------------------------------------------
@tracekit.tool
def find_order(o: str) -> dict[str, Any]:
    return {"o": o}


@tracekit.tool(writes=True, destination="wire-transfer")
def wire(amount: int) -> dict[str, Any]:
    _bump("wire")
    return {"ok": True}


@tracekit.model(name="m")
def closing_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"content": "done"}


@tracekit.entrypoint
def new_call_agent(tenant: str) -> None:
    with tracekit.run(tenant=tenant):
        find_order(o="o1")
        if KNOBS.get("extra"):
            wire(amount=10_000)  # new in today's code: not in the recording
        closing_model([{"role": "user", "content": "x"}])


@pytest.fixture
def new_call_bundle(store: Path, tmp_path: Path) -> Path:
    new_call_agent("acme")
    bundle = export(store, tmp_path, "new-call")
    KNOBS["extra"] = True
    return bundle


def test_a_new_call_mid_run_is_a_divergence_not_the_end_of_the_recording(
        new_call_bundle: Path) -> None:
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(new_call_bundle, new_call_agent)
    assert not isinstance(caught.value, tracekit.RecordingEnds)
    assert (caught.value.kind, caught.value.step) == ("tool_call", 0)
    assert "wire" in str(caught.value)
    assert "other recorded call(s) were not" in str(caught.value)
    assert WORLD == {}


def test_a_new_call_todays_guard_refuses_is_contained(new_call_bundle: Path) -> None:
    """The guard's check comes first: a call it refuses would never have happened."""
    verdict = replay(new_call_bundle, new_call_agent, tracekit.Guard(new_destination="halt"))
    assert verdict.contained and verdict.signal == "new_destination", verdict.describe()
    assert verdict.effects == [] and WORLD == {}


# -- t19: an entry point that calls sys.exit(0) ---------------------------------------------------
@tracekit.entrypoint
def exiting_agent(tenant: str = "acme") -> None:
    with tracekit.run(tenant=tenant):
        for i in range(4):
            pay_refund(order_id=f"o{i}", amount=i)
    sys.exit(0)


def test_an_entry_point_that_exits_gets_a_normal_verdict(store: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        exiting_agent()
    bundle = export(store, tmp_path, "exit")
    loose = replay(bundle, exiting_agent)
    assert not loose.contained and loose.note is None
    assert [e["tool"] for e in loose.effects] == ["pay_refund"] * 4
    bounded = replay(bundle, exiting_agent, tracekit.Guard(max_writes_per_minute=2))
    assert bounded.contained and bounded.signal == "writes_per_minute"
    assert len(bounded.effects) == 2
    assert WORLD == {"pay_refund": 4}
