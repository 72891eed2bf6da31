"""Agent replay: the real agent code runs again, its world served from an incident bundle.

The agents replayed here are module-level functions of this file, loaded by
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")`` (the test module is already in
``sys.modules`` under ``__name__``, whatever pytest's import mode). What they need to vary
between recording and replay (an argument, an order, an extra read) comes from ``KNOBS``; what
they saw comes back through ``outputs``; ``WORLD`` counts what their tools and models really did.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _replaying import bundle_events, export, replay

import tracekit
from tracekit import _demo
from tracekit._capture.clock import from_us as _from_us
from tracekit._demo import DEMO_GUARD

KNOBS: dict[str, Any] = {}
outputs: list[Any] = []
WORLD: dict[str, int] = {}
_LOCK = threading.Lock()
SECRET = "sk-live" + "Q7x" * 8  # a payments key: it must never reach the store or a bundle
OTHER_SECRET = "sk-live" + "Z9y" * 8


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


# -- a small support agent: a scripted model, a read tool and a write tool ------------------------
@tracekit.tool
def lookup(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "total": 120.0, "lookups": _bump("lookup")}


@tracekit.tool(writes=True, destination="payments", currency="USD")
def refund(order_id: str, amount: float, headers: dict[str, str], note: str) -> dict[str, Any]:
    n = _bump("refund")
    with Path(KNOBS["world_file"]).open("a") as world:  # a real write to the world
        world.write(f"refund {order_id} {amount}\n")
    return {"order_id": order_id, "amount": amount, "status": "issued", "n": n}


@tracekit.model(name="script-model", cost=lambda reply: reply["cost"])
def planner(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Look the order up, refund it, then answer."""
    _bump("planner")
    done = [m["name"] for m in messages if m["role"] == "tool"]
    order = messages[0]["order"]
    if "lookup" not in done:
        call: Any = ["lookup", {"order_id": order}]
    elif "refund" not in done:
        call = ["refund", {"order_id": order, "amount": messages[0]["amount"]}]
    else:
        call = None
    return {"call": call, "cost": 0.001}


@tracekit.entrypoint
def support(tenant: str, order_id: str, amount: float) -> None:
    with tracekit.run(tenant=tenant):
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": f"refund {order_id}", "order": order_id,
             "amount": amount}]
        while (reply := planner(messages))["call"] is not None:
            name, args = reply["call"]
            if name == "refund":  # the agent, not the model, holds the key
                args = {**args, "amount": KNOBS.get("amount", args["amount"]),
                        "headers": {"Authorization": f"Bearer {KNOBS.get('key', SECRET)}"},
                        "note": KNOBS.get("note", f"charge back with {KNOBS.get('key', SECRET)}")}
            result = {"lookup": lookup, "refund": refund}[name](**args)
            messages.append({"role": "tool", "name": name, "content": result})
        outputs.append([m["content"] for m in messages if m["role"] == "tool"])


@pytest.fixture
def support_bundle(store: Path, tmp_path: Path) -> Path:
    KNOBS["world_file"] = str(tmp_path / "world.txt")
    support("acme", "O-77", 120.0)
    assert WORLD == {"planner": 3, "lookup": 1, "refund": 1}
    return export(store, tmp_path, "support")


# -- 1. the demo runaway --------------------------------------------------------------------------
_AUDIT: list[str] | None = None  # socket audit events, while a test listens


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _AUDIT is not None and event.startswith("socket."):
        _AUDIT.append(event)


sys.addaudithook(_audit)


@pytest.fixture
def demo_bundle(store: Path, tmp_path: Path) -> Path:
    result = _demo.run_demo(store, guarded=False)
    runaway = result.runaway["run_id"]
    assert result.runaway["halt"] is None and result.runaway["refunds"] == 40
    return tracekit.export_incident([runaway], "runaway", tmp_path / "fixtures", store)


def test_demo_runaway_agent_replay_matches_policy_replay(demo_bundle: Path) -> None:
    policy = tracekit.replay(demo_bundle, guard=DEMO_GUARD)
    agent = tracekit.replay(demo_bundle, guard=DEMO_GUARD,
                            entrypoint="tracekit._demo:handle_ticket")
    assert policy.contained and policy.mode == "policy"
    assert agent.contained and agent.mode == "agent", agent.describe()
    assert (agent.run_id, agent.step, agent.signal, agent.level) == (
        policy.run_id, policy.step, policy.signal, policy.level) == (
        policy.run_id, 5, "repeats", "run")
    assert len(agent.effects) == len(policy.effects) == 1
    assert agent.effects == policy.effects
    assert agent.spend_usd == policy.spend_usd > 0
    assert agent.note is None

    loose = tracekit.replay(demo_bundle, guard=tracekit.Guard(),
                            entrypoint="tracekit._demo:handle_ticket")
    loose_policy = tracekit.replay(demo_bundle, guard=tracekit.Guard())
    assert not loose.contained and loose.note is None
    assert loose.ended_by_itself and loose.step == 41  # it ran out by itself, 41 steps in
    assert "NOT contained" in loose.describe()
    assert len(loose.effects) == len(loose_policy.effects) == 1
    assert loose.spend_usd == loose_policy.spend_usd > 0.1


def test_demo_agent_replay_opens_no_socket(demo_bundle: Path) -> None:
    global _AUDIT
    seen: list[str] = []
    probe = socket.socket()  # the hook does hear socket events
    probe.close()
    _AUDIT = seen
    try:
        verdict = tracekit.replay(demo_bundle, guard=DEMO_GUARD,
                                  entrypoint="tracekit._demo:handle_ticket")
        probe = socket.socket()
        probe.close()
    finally:
        _AUDIT = None
    assert verdict.contained
    assert seen == ["socket.__new__"], seen  # only the probe made after the replay


@pytest.fixture
def halted_demo_bundle(store: Path, tmp_path: Path) -> Iterator[Path]:
    """The demo recorded under DEMO_GUARD: its runaway was halted at step 5."""
    result = _demo.run_demo(store, guarded=True)
    assert result.runaway["halt"]["signal"] == "repeats"
    yield tracekit.export_incident([result.runaway["run_id"]], "halted", tmp_path / "fixtures",
                                   store)
    tracekit.configure(store=store, guard=False)


def test_a_halted_recording_is_contained_again_and_goes_on_without_the_bound(
        halted_demo_bundle: Path) -> None:
    agent = tracekit.replay(halted_demo_bundle, guard=DEMO_GUARD,
                            entrypoint="tracekit._demo:handle_ticket")
    assert agent.contained and (agent.step, agent.signal) == (5, "repeats")
    assert len(agent.effects) == 1
    loose = tracekit.replay(halted_demo_bundle, guard=tracekit.Guard(),
                            entrypoint="tracekit._demo:handle_ticket")
    assert not loose.contained
    assert loose.note is not None and loose.note.endswith("tool_call issue_refund at step 5")


def test_policy_replay_agrees_with_agent_replay_on_a_halted_recording(
        halted_demo_bundle: Path) -> None:
    agent = tracekit.replay(halted_demo_bundle, guard=DEMO_GUARD,
                            entrypoint="tracekit._demo:handle_ticket")
    policy = tracekit.replay(halted_demo_bundle, guard=DEMO_GUARD)
    assert policy.contained, policy.describe()
    assert (policy.step, policy.signal) == (agent.step, agent.signal) == (5, "repeats")


# -- 2. write tools never touch the world ---------------------------------------------------------
def test_tools_and_model_run_when_recording_but_not_in_replay(support_bundle: Path,
                                                              tmp_path: Path) -> None:
    world_file = tmp_path / "world.txt"
    assert world_file.read_text() == "refund O-77 120.0\n"
    recorded = outputs.pop()
    verdict = replay(support_bundle, support)
    assert WORLD == {"planner": 3, "lookup": 1, "refund": 1}  # nothing ran again
    assert world_file.read_text() == "refund O-77 120.0\n"
    assert outputs == [recorded]  # the agent saw the recorded results
    assert not verdict.contained and verdict.note is None
    assert [e["tool"] for e in verdict.effects] == ["refund"]
    assert verdict.spend_usd == pytest.approx(0.003)


# -- 3. divergence --------------------------------------------------------------------------------
def test_a_changed_tool_argument_diverges_with_a_readable_diff(support_bundle: Path) -> None:
    KNOBS["amount"] = 99.5
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(support_bundle, support)
    err = caught.value
    message = str(err)
    recorded_run = next(e["run_id"] for e in bundle_events(support_bundle))
    assert (err.run_id, err.step, err.kind) == (recorded_run, 2, "tool_call")
    assert not isinstance(err, tracekit.RecordingEnds)
    assert f"in run {recorded_run} at step 2: tool_call refund" in message
    assert "args.amount (recorded 120.0, actual 99.5)" in message
    assert "nearest" in message
    assert ("refund at step 2: matched tool, step, args.headers, args.note, args.order_id; "
            "differed args.amount") in message
    assert "--- recorded refund at step 2" in message and "+++ actual" in message
    assert '-  "amount": 120.0,' in message and '+  "amount": 99.5,' in message
    assert json.loads(err.actual)["amount"] == 99.5
    assert json.loads(err.recorded)["amount"] == 120.0
    assert WORLD["refund"] == 1


def test_a_divergence_message_does_not_reveal_a_redacted_secret(support_bundle: Path) -> None:
    KNOBS["amount"] = 99.5
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(support_bundle, support)
    assert SECRET not in str(caught.value)


# -- 4. parallel calls ----------------------------------------------------------------------------
ITEMS = ["a", "b", "c", "d", "e"]


def _order(items: list[str]) -> list[str]:
    rotate = KNOBS.get("rotate", 0)
    order = [KNOBS.get("rename", {}).get(i, i) for i in items[rotate:] + items[:rotate]]
    return order[::-1] if KNOBS.get("reverse") else order


@tracekit.tool
async def afetch(item: str) -> dict[str, Any]:
    n = _bump("afetch")
    await asyncio.sleep(0.002 * (len(ITEMS) - n))  # the first to start finishes last
    return {"item": item, "n": n}


@tracekit.entrypoint
async def gather_agent(items: list[str]) -> None:
    async with tracekit.run(tenant="par") as run:
        run.model_output("fan out", cost_usd=0.0)  # the calls all happen at step 1
        order = _order(items)
        results = await asyncio.gather(*(afetch(item) for item in order))
        outputs.append((order, dict(zip(order, results, strict=True))))


@tracekit.tool
def tfetch(item: str) -> dict[str, Any]:
    return {"item": item, "n": _bump("tfetch")}


@tracekit.entrypoint
def thread_agent(items: list[str]) -> None:
    with tracekit.run(tenant="thr") as run:
        run.model_output("fan out", cost_usd=0.0)
        order = _order(items)
        with ThreadPoolExecutor(max_workers=len(order)) as pool:
            futures = [pool.submit(contextvars.copy_context().run, tfetch, item)
                       for item in order]
            results = [f.result() for f in futures]
        outputs.append((order, dict(zip(order, results, strict=True))))


@pytest.mark.parametrize("agent", [gather_agent, thread_agent])
def test_parallel_calls_replay_in_another_order(store: Path, tmp_path: Path,
                                                agent: Callable[..., Any]) -> None:
    entry = agent(ITEMS)
    if asyncio.iscoroutine(entry):
        asyncio.run(entry)
    [(recorded_order, recorded)] = outputs
    assert recorded_order == ITEMS
    assert {k: v["item"] for k, v in recorded.items()} == {i: i for i in ITEMS}
    bundle = export(store, tmp_path, "parallel")
    calls = [e for e in bundle_events(bundle) if e["kind"] == "tool_call"]
    assert {e["step"] for e in calls} == {1} and len(calls) == len(ITEMS)
    counted = dict(WORLD)

    for knobs in ({"reverse": True}, {"rotate": 2}):
        outputs.clear()
        KNOBS.clear()
        KNOBS.update(knobs)
        verdict = replay(bundle, agent)
        [(order, served)] = outputs
        assert order != ITEMS and sorted(order) == ITEMS
        assert served == recorded  # each call got the result recorded for its own item
        assert not verdict.contained and verdict.note is None
    assert counted == WORLD  # and no tool ran


def test_a_divergence_lists_the_nearest_recorded_calls(store: Path, tmp_path: Path) -> None:
    asyncio.run(gather_agent(ITEMS))
    bundle = export(store, tmp_path, "parallel")
    KNOBS["rename"] = {"c": "x"}  # a, b, x, d, e: a and b match, x does not
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(bundle, gather_agent)
    message = str(caught.value)
    assert caught.value.kind == "tool_call" and caught.value.step == 1
    assert 'tool_call afetch with {"item":"x"} is not in the recording' in message
    assert "found 3 recorded tool_call event(s) not yet replayed" in message
    near = [line.strip() for line in message.splitlines() if line.startswith("    afetch at")]
    assert near == [f'afetch at step 1: matched tool, step; differed args.item (recorded "{i}", '
                    'actual "x")' for i in "cde"]
    assert '-  "item": "c"' in message and '+  "item": "x"' in message


# -- 5. the clock and the dice --------------------------------------------------------------------
@tracekit.entrypoint
def dice_agent(player: str) -> None:
    with tracekit.run(tenant="dice"):
        when = tracekit.now()
        roll = tracekit.random()
        for kind in KNOBS.get("extra", ()):
            tracekit.now() if kind == "clock" else tracekit.random()
        outputs.append({"player": player, "when": when.isoformat(), "roll": roll,
                        "side": "heads" if roll < 0.5 else "tails"})


def test_clock_and_random_are_recorded_and_served(store: Path, tmp_path: Path) -> None:
    dice_agent("ada")
    [recorded] = outputs
    bundle = export(store, tmp_path, "dice")
    draws = {e["kind"]: e["output"] for e in bundle_events(bundle)
             if e["kind"] in ("clock", "random")}
    assert float(draws["random"]) == recorded["roll"]
    assert _from_us(int(draws["clock"])).isoformat() == recorded["when"]

    replay(bundle, dice_agent)
    assert outputs == [recorded, recorded]

    for extra in (["clock"], ["random"]):  # with nothing left to replay: past the end
        KNOBS["extra"] = extra
        verdict = replay(bundle, dice_agent)
        assert not verdict.contained
        assert "more times than the recording" in (verdict.note or "")


@tracekit.tool
def look(item: str) -> str:
    return item


@tracekit.entrypoint
def clock_agent() -> None:
    with tracekit.run(tenant="dice") as run:
        for kind in KNOBS.get("extra", ()):
            tracekit.now() if kind == "clock" else tracekit.random()
        tracekit.now()
        run.progress("looked at the clock")
        look("a")


def test_a_clock_read_the_recording_does_not_have_diverges(store: Path, tmp_path: Path) -> None:
    clock_agent()
    bundle = export(store, tmp_path, "clock")
    assert not replay(bundle, clock_agent).contained  # replays as recorded
    for extra in (["clock"], ["random"]):  # an extra read before a recorded call
        KNOBS["extra"] = extra
        with pytest.raises(tracekit.ReplayDivergence) as err:
            replay(bundle, clock_agent)
        assert err.value.kind in ("clock", "random", "tool_call")
        assert not isinstance(err.value, tracekit.RecordingEnds)


# -- 6. a tool outside any run --------------------------------------------------------------------
@tracekit.tool
def notify(text: str) -> str:
    _bump("notify")
    return "sent"


@tracekit.entrypoint
def leaky_agent(order_id: str) -> None:
    with tracekit.run(tenant="leak"):
        outputs.append(lookup(order_id))
    notify(f"{order_id} looked up")  # after the run: never recorded


def test_a_tool_outside_any_run_diverges_in_replay(store: Path, tmp_path: Path) -> None:
    leaky_agent("O-1")
    assert WORLD == {"lookup": 1, "notify": 1}
    bundle = export(store, tmp_path, "leak")
    with pytest.raises(tracekit.ReplayDivergence, match="notify was called outside any run") as err:
        replay(bundle, leaky_agent)
    assert err.value.kind == "tool_call"
    assert WORLD == {"lookup": 1, "notify": 1}  # neither body ran
    assert outputs[1] == outputs[0]


# -- 7. secrets -----------------------------------------------------------------------------------
def test_redacted_arguments_match_in_replay_and_never_reach_the_bundle(
        support_bundle: Path) -> None:
    [call] = [e for e in bundle_events(support_bundle)
              if e["kind"] == "tool_call" and e["name"] == "refund"]
    args = json.loads(call["args"])
    assert args["headers"] == {"Authorization": "[REDACTED]"}
    assert args["note"] == "charge back with [REDACTED]"
    for path in support_bundle.iterdir():
        data = path.read_bytes()
        assert SECRET.encode() not in data and SECRET[7:19].encode() not in data, path.name

    verdict = replay(support_bundle, support)  # the same agent with the real key: matches
    assert not verdict.contained and [e["tool"] for e in verdict.effects] == ["refund"]
    KNOBS["key"] = OTHER_SECRET  # a redacted value is a wildcard, in whole or in part
    replay(support_bundle, support)
    assert len(outputs) == 3 and outputs[1] == outputs[2] == outputs[0]

    KNOBS["note"] = f"charge forward with {SECRET}"  # the clear part of a value still counts
    with pytest.raises(tracekit.ReplayDivergence, match=r"args\.note") as err:
        replay(support_bundle, support)
    assert err.value.step == 2


# -- 8. no network --------------------------------------------------------------------------------
@tracekit.entrypoint
def net_agent(port: int) -> None:
    with tracekit.run(tenant="net"):
        lookup("O-5")
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            outputs.append(conn.getpeername()[1])


def test_a_raw_connection_in_agent_replay_is_refused(store: Path, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        net_agent(port)  # recording: the connection is real
        accepted, _ = server.accept()
        accepted.close()
        bundle = export(store, tmp_path, "net")
        with pytest.raises(tracekit.ReplayDivergence) as err:
            replay(bundle, net_agent)
        assert err.value.kind == "network"
        assert "opened a network connection" in str(err.value)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing reached the listener
            server.accept()
    assert outputs == [port]
    assert WORLD == {"lookup": 1}


# -- 9. past the end of the recording -------------------------------------------------------------
@tracekit.model(name="loop-model", cost=lambda reply: reply["cost"])
def loop_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"call": ["lookup", {"order_id": messages[0]["order"]}], "cost": 0.01}


@tracekit.entrypoint
def looping_agent(order_id: str) -> None:
    with tracekit.run(tenant="loop"):
        messages = [{"role": "user", "content": "find it", "order": order_id}]
        for _ in range(KNOBS.get("turns", 2)):
            _, args = loop_model(messages)["call"]
            lookup(**args)
        outputs.append("done")


def test_going_past_the_recording_is_an_uncontained_verdict(store: Path, tmp_path: Path) -> None:
    looping_agent("O-9")
    bundle = export(store, tmp_path, "loop")
    KNOBS["turns"] = 6  # today's agent loops longer than the recording
    verdict = replay(bundle, looping_agent)
    assert not verdict.contained and verdict.mode == "agent"
    assert verdict.note is not None and "past the end of the recording" in verdict.note
    assert verdict.note.endswith("prompt at step 2")  # the third model call
    assert verdict.note in verdict.describe() and "NOT contained" in verdict.describe()
    assert verdict.spend_usd == pytest.approx(0.02)
    assert outputs == ["done"]  # only the recording's: the replay stopped at the third model call
    assert WORLD == {"lookup": 2}


def test_a_step_bound_contains_an_agent_that_goes_past_the_recording(store: Path,
                                                                      tmp_path: Path) -> None:
    looping_agent("O-9")
    bundle = export(store, tmp_path, "loop")
    KNOBS["turns"] = 6
    bounded = replay(bundle, looping_agent, guard=tracekit.Guard(max_steps=2))
    assert bounded.contained, bounded.describe()
    assert (bounded.signal, bounded.step) == ("steps", 3)


def test_a_run_the_guard_halted_goes_on_under_a_looser_guard(store: Path, tmp_path: Path) -> None:
    tracekit.configure(store=store, guard=tracekit.Guard(max_steps=2))
    KNOBS["turns"] = 6
    try:
        with pytest.raises(tracekit.Halted):
            looping_agent("O-9")
    finally:
        tracekit.configure(store=store, guard=False)
    bundle = export(store, tmp_path, "halted")
    assert WORLD == {"lookup": 2}
    again = replay(bundle, looping_agent, guard=tracekit.Guard(max_steps=2))
    assert again.contained and (again.signal, again.step) == ("steps", 3)
    loose = replay(bundle, looping_agent)
    assert not loose.contained and "past the end of the recording" in (loose.note or "")
    assert WORLD == {"lookup": 2}


# -- 10. a model answer decoded -------------------------------------------------------------------
@dataclass
class Answer:
    text: str
    cost: float


@tracekit.model(name="typed-model", decode=lambda value: Answer(**value),
                cost=lambda answer: answer.cost)
def typed_model(messages: list[dict[str, str]]) -> Answer:
    return Answer(text=f"answer number {_bump('typed')}", cost=0.004)


@tracekit.entrypoint
def typed_agent(question: str) -> None:
    with tracekit.run(tenant="typed"):
        answer = typed_model([{"role": "user", "content": question}])
        outputs.append((type(answer).__name__, answer.text))


def test_a_model_answer_is_decoded_in_replay_and_the_model_not_called(store: Path,
                                                                      tmp_path: Path) -> None:
    typed_agent("why?")
    bundle = export(store, tmp_path, "typed")
    verdict = replay(bundle, typed_agent)
    assert outputs == [("Answer", "answer number 1"), ("Answer", "answer number 1")]
    assert WORLD == {"typed": 1}
    assert verdict.spend_usd == pytest.approx(0.004)  # the cost read from the decoded answer


# -- 11. a tool that failed -----------------------------------------------------------------------
@tracekit.tool(writes=True, destination="cards")
def charge(card: str, amount: float) -> dict[str, Any]:
    _bump("charge")
    raise ValueError(f"card {card} declined for {amount}")


@tracekit.entrypoint
def billing_agent(card: str) -> None:
    with tracekit.run(tenant="bill"):
        try:
            charge(card, 10.0)
        except ValueError as exc:  # the agent's own handler runs in replay too
            outputs.append((type(exc).__name__, str(exc),
                            isinstance(exc, tracekit.ReplayedToolError)))
            if KNOBS.get("reraise"):
                raise


def test_a_tool_that_failed_fails_again_with_the_recorded_error(store: Path,
                                                                tmp_path: Path) -> None:
    billing_agent("C-42")
    bundle = export(store, tmp_path, "billing")
    verdict = replay(bundle, billing_agent)
    assert outputs[0] == ("ValueError", "card C-42 declined for 10.0", False)
    # replayed with its recorded type (and message): the agent's except ValueError catches it
    assert outputs[1] == ("ValueError", "card C-42 declined for 10.0", True)
    assert verdict.effects == [] and not verdict.contained
    KNOBS["reraise"] = True
    with pytest.raises(ValueError, match="card C-42 declined") as err:
        replay(bundle, billing_agent)
    assert isinstance(err.value, tracekit.ReplayedToolError)
    assert WORLD == {"charge": 1}
