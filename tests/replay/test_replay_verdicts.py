"""Agent replay, second round: the reviewer's findings, each a test.

As in test_agent_replay.py, the agents are module-level functions of this file, replayed with
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")``. ``KNOBS`` varies an agent
between recording and replay, ``outputs`` carries back what it saw and ``WORLD`` counts what
its tools and models really did. HTTP goes to a server on 127.0.0.1 run by this process.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from _replaying import bundle_events, export, replay

import tracekit
import tracekit.http
from tracekit._capture import run as _run
from tracekit._capture.state import PROCESS
from tracekit.testing import Recording

KNOBS: dict[str, Any] = {}
outputs: list[Any] = []
WORLD: dict[str, int] = {}
_LOCK = threading.Lock()
MARKER = "[REDACTED]"

# credentials that match none of the redactor's value patterns: only tracekit's own scrubbing
# (query parameter names, secret headers, entry point ``secrets=``) can keep them out
QUERY_KEY = "Pk13-chatkey-7be3c6d9"
QUERY_TOKEN = "Wt64-othertoken-0a9f2e81"
BEARER = "Zx81-bearer-4c1e9b7f"
ENTRY_KEY = "3f9a1c7e2b8d4a6f9e0c1b2a3d4e5f60"  # a hex key: no pattern knows it is one
SECRET = "sk-live" + "Q7x" * 8  # a key the redactor's patterns do catch


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


def replay_state() -> dict[str, Any]:
    """What an agent replay sets aside while it runs: all of it back once it is over."""
    return {"replay": PROCESS.replay, "pinned": PROCESS.pinned,
            "settings": PROCESS._settings, "recorder": PROCESS.sink,
            "runtime": PROCESS.runtime, "connect": socket.socket.connect,
            "getaddrinfo": socket.getaddrinfo,
            "httpx": (httpx.HTTPTransport.handle_request, httpx.Client._send_single_request)}


@pytest.fixture
def configured_guard(store: Path) -> Iterator[Callable[[tracekit.Guard], None]]:
    """Record under a guard of the test's choosing; the store's own settings after."""
    def configure(guard: tracekit.Guard) -> None:
        tracekit.configure(store=store, guard=guard)

    yield configure
    tracekit.configure(store=store, guard=False)


# -- the loopback server --------------------------------------------------------------------------
class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"echo": json.loads(body or b"null")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- t1: a divergence the agent's `except Exception` swallows still fails the replay -------------
@tracekit.tool(writes=True, destination="pay")
def pay_refund(order_id: str, amount: int) -> dict[str, Any]:
    _bump("pay_refund")
    return {"ok": True}


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


# -- t5: parallel sub-agents started in another order ---------------------------------------------
@tracekit.tool
def research(topic: str) -> dict[str, Any]:
    return {"topic": topic, "n": _bump("research")}


def _sub(parent: _run.Run, topic: str, labelled: bool, wait: threading.Event | None,
         started: threading.Event) -> None:
    if wait is not None:  # start strictly after the sub-agent before it
        assert wait.wait(5)
    attrs = {"topic": topic} if labelled else {}
    with tracekit.run(tenant=parent.tenant, parent=parent, **attrs):
        started.set()
        outputs.append(research(topic=topic))


@tracekit.entrypoint
def fan_out_agent(tenant: str, labelled: bool) -> None:
    topics = KNOBS.get("order", ["a", "b"])
    with tracekit.run(tenant=tenant) as run, ThreadPoolExecutor(len(topics)) as pool:
        events = [threading.Event() for _ in topics]
        futures = [pool.submit(contextvars.copy_context().run, _sub, run, topic, labelled,
                               events[i - 1] if i else None, events[i])
                   for i, topic in enumerate(topics)]
        for future in futures:
            future.result()


def _fan_out_in_another_order(store: Path, tmp_path: Path, labelled: bool) -> None:
    fan_out_agent("acme", labelled)
    recorded = sorted(outputs, key=lambda r: r["topic"])
    bundle = export(store, tmp_path, "fan-out")
    outputs.clear()
    KNOBS["order"] = ["b", "a"]  # thread scheduling started the sub-agents the other way round
    verdict = replay(bundle, fan_out_agent)
    assert not verdict.contained and verdict.note is None
    assert sorted(outputs, key=lambda r: r["topic"]) == recorded
    assert WORLD == {"research": 2}


def test_parallel_sub_agents_with_attributes_replay_in_another_order(store: Path,
                                                                     tmp_path: Path) -> None:
    _fan_out_in_another_order(store, tmp_path, labelled=True)


def test_parallel_sub_agents_without_attributes_replay_in_another_order(
        store: Path, tmp_path: Path) -> None:
    _fan_out_in_another_order(store, tmp_path, labelled=False)


# -- t6: an async @tracekit.model ----------------------------------------------------------------
@tracekit.model(name="async-m", cost=lambda reply: 0.002)
async def async_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"content": f"hi number {_bump('async_model')}"}


@tracekit.entrypoint
async def async_model_agent(tenant: str) -> None:
    async with tracekit.run(tenant=tenant):
        reply = await async_model([{"role": "user", "content": "x"}])
        outputs.append(reply)


def test_an_async_model_is_recorded_and_replayed(store: Path, tmp_path: Path) -> None:
    asyncio.run(async_model_agent("acme"))
    assert outputs == [{"content": "hi number 1"}]
    bundle = export(store, tmp_path, "async-model")
    events = {e["kind"]: e for e in bundle_events(bundle)}
    assert json.loads(events["prompt"]["args"]) == [{"role": "user", "content": "x"}]
    assert json.loads(events["model_output"]["output"]) == {"content": "hi number 1"}
    verdict = replay(bundle, async_model_agent)
    assert outputs == [{"content": "hi number 1"}] * 2  # the recorded answer, not a coroutine
    assert WORLD == {"async_model": 1}
    assert not verdict.contained and verdict.note is None
    assert verdict.spend_usd == pytest.approx(0.002)


# -- t7: a model call that raised, then a retry ---------------------------------------------------
@tracekit.model(name="flaky-m")
def flaky_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    if _bump("flaky_model") == 1:
        raise TimeoutError("model timed out")
    return {"content": "hi"}


@tracekit.tool
def note(text: str) -> str:
    _bump("note")
    return text


@tracekit.entrypoint
def retrying_model_agent(tenant: str) -> None:
    with tracekit.run(tenant=tenant):
        for _ in range(3):
            try:
                reply = flaky_model([{"role": "user", "content": "x"}])
                break
            except TimeoutError as exc:
                outputs.append(("retry", type(exc).__name__, str(exc)))
        outputs.append(reply)
        note(text=reply["content"])


def test_a_model_call_that_raised_is_raised_again_and_the_retry_replays(
        store: Path, tmp_path: Path) -> None:
    retrying_model_agent("acme")
    recorded = list(outputs)
    assert recorded == [("retry", "TimeoutError", "model timed out"), {"content": "hi"}]
    bundle = export(store, tmp_path, "model-retry")
    [error] = [e for e in bundle_events(bundle) if e["kind"] == "error"]
    assert error["call_id"] is not None and "model timed out" in error["error"]
    outputs.clear()
    verdict = replay(bundle, retrying_model_agent)
    assert outputs == recorded
    assert not verdict.contained and verdict.note is None
    assert WORLD == {"flaky_model": 2, "note": 1}


# -- t8: a tool that failed with TimeoutError ------------------------------------------------------
@tracekit.tool
def slow_fetch(x: int) -> int:
    if _bump("slow_fetch") == 1:
        raise TimeoutError("slow upstream")
    return x


@tracekit.entrypoint
def retrying_tool_agent(tenant: str) -> None:
    with tracekit.run(tenant=tenant):
        for _ in range(3):
            try:
                outputs.append(slow_fetch(x=1))
                return
            except TimeoutError as exc:
                outputs.append((type(exc).__name__, str(exc),
                                isinstance(exc, tracekit.ReplayedToolError)))


def test_a_tool_timeout_is_raised_again_as_a_timeout_so_the_retry_runs(
        store: Path, tmp_path: Path) -> None:
    retrying_tool_agent("acme")
    assert outputs == [("TimeoutError", "slow upstream", False), 1]
    bundle = export(store, tmp_path, "tool-retry")
    outputs.clear()
    verdict = replay(bundle, retrying_tool_agent)
    assert outputs == [("TimeoutError", "slow upstream", True), 1]
    assert not verdict.contained and verdict.note is None
    assert WORLD == {"slow_fetch": 2}


# -- t9, t10: HTTP bodies are matched, and a divergence shows no secret ----------------------------
@tracekit.entrypoint
def http_agent(base: str) -> None:
    with httpx.Client(transport=tracekit.http.HTTPXTransport(), timeout=10) as client, \
            tracekit.run(tenant="web"):
        # the model is called over HTTP: the prompt is the POST body
        prompt = KNOBS.get("prompt", "refund o1")
        answer = client.post(f"{base}/v1/chat?api_key={QUERY_KEY}",
                             json={"messages": [prompt]}).json()
        outputs.append(answer)
        if KNOBS.get("other"):
            client.get(f"{base}/v2/other?access_token={QUERY_TOKEN}",
                       headers={"Authorization": f"Bearer {BEARER}"})
        pay_refund(order_id="o1", amount=1)


@pytest.fixture
def http_bundle(store: Path, tmp_path: Path, server: str) -> Path:
    http_agent(server)
    assert outputs == [{"echo": {"messages": ["refund o1"]}}]
    return export(store, tmp_path, "http")


def test_an_http_request_body_that_differs_diverges(http_bundle: Path) -> None:
    outputs.clear()
    replay(http_bundle, http_agent)  # the same prompt: served from the cassette
    assert outputs == [{"echo": {"messages": ["refund o1"]}}]
    KNOBS["prompt"] = "refund o1 AND o2 AND o3 twice"
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(http_bundle, http_agent)
    assert caught.value.kind == "http"
    assert "refund o1 AND o2" in str(caught.value)  # the body is what differs
    assert len(outputs) == 1  # the changed prompt got no answer
    assert WORLD == {"pay_refund": 1}


def _other_request_divergence(http_bundle: Path) -> str:
    KNOBS["other"] = True  # a request the recording does not have, with secrets of its own
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(http_bundle, http_agent)
    assert caught.value.kind == "http"
    return str(caught.value)


def test_an_http_divergence_message_shows_the_urls_scrubbed(http_bundle: Path) -> None:
    message = _other_request_divergence(http_bundle)
    assert "/v2/other?access_token=[REDACTED]" in message  # the request vcrpy could not serve
    assert "/v1/chat?api_key=[REDACTED]" in message  # the closest recorded one
    assert BEARER not in message and QUERY_KEY not in message


def test_an_http_divergence_message_does_not_contain_the_query_secret(
        http_bundle: Path) -> None:
    message = _other_request_divergence(http_bundle)
    assert QUERY_TOKEN not in message


# -- t11: whatever way a replay ends, the process is as it was ------------------------------------
@tracekit.entrypoint
def crashing_agent(base: str) -> None:
    with tracekit.run(tenant="web"):
        raise KeyError("the agent's own bug")


def test_a_replay_that_raises_leaves_the_process_as_it_was(store: Path, http_bundle: Path,
                                                           server: str) -> None:
    tracekit.flush()
    count = "SELECT count(*) AS n FROM events"
    recorded = Recording(store).rows(count)
    before = replay_state()
    with pytest.raises(KeyError):
        tracekit.replay(http_bundle, guard=tracekit.Guard(),
                        entrypoint=f"{__name__}:crashing_agent")
    assert replay_state() == before
    KNOBS["prompt"] = "something else"
    with pytest.raises(tracekit.ReplayDivergence):
        replay(http_bundle, http_agent)
    assert replay_state() == before
    assert httpx.get(f"{server}/after").status_code == 200  # vcrpy and the socket guard gone
    tracekit.flush()
    assert Recording(store).rows(count) == recorded  # nothing of the replays in the store
    with tracekit.run(tenant="after"):
        pass
    tracekit.flush()
    assert Recording(store).rows("SELECT tenant FROM runs WHERE tenant = 'after'")


# -- t12: configure() inside the entry point is undone after replay -------------------------------
@tracekit.tool
def echo_tool(x: int) -> int:
    return x


@tracekit.entrypoint
def configuring_agent(tenant: str) -> None:
    if "prod_store" in KNOBS:  # the app's startup, in its entry point
        tracekit.configure(store=KNOBS["prod_store"], release={"model": "prod"})
    with tracekit.run(tenant=tenant):
        echo_tool(x=1)


def test_configure_in_the_entry_point_is_undone_after_replay(store: Path,
                                                             tmp_path: Path) -> None:
    configuring_agent("acme")
    bundle = export(store, tmp_path, "configure")
    prod = tmp_path / "prod-store"
    KNOBS["prod_store"] = str(prod)
    before = replay_state()
    verdict = replay(bundle, configuring_agent)
    assert not verdict.contained and verdict.note is None
    assert replay_state() == before
    assert PROCESS.settings().store == store
    assert PROCESS.settings().release.model != "prod"
    assert not prod.exists()
    with tracekit.run(tenant="after"):
        pass
    tracekit.flush()
    assert Recording(store).rows("SELECT tenant FROM runs WHERE tenant = 'after'")
    assert not prod.exists()


# -- t13, t14: threads never get one recorded call twice ------------------------------------------
@tracekit.tool
def same_work(i: int, headers: dict[str, str], rows: list[int]) -> dict[str, Any]:
    return {"i": i, "n": _bump("same_work")}


def _worker(calls: int) -> None:
    # every call has the same key; the redacted header makes matching slow (JSON compared
    # value by value), which widens the window in which two threads could take one call
    headers = {"Authorization": f"Bearer {SECRET}"}
    for _ in range(calls):
        outputs.append(same_work(i=0, headers=headers, rows=list(range(64)))["n"])


def _sub_worker(parent: _run.Run, calls: int) -> None:
    with tracekit.run(tenant=parent.tenant, parent=parent):
        _worker(calls)


@tracekit.entrypoint
def threaded_agent(tenant: str, subs: bool) -> None:
    with tracekit.run(tenant=tenant) as run, ThreadPoolExecutor(8) as pool:
        if subs:  # 16 sub-agents, each its own run
            jobs = [pool.submit(contextvars.copy_context().run, _sub_worker, run, 3)
                    for _ in range(16)]
        else:  # 8 threads in one run, the same call over and over
            jobs = [pool.submit(contextvars.copy_context().run, _worker, 12) for _ in range(8)]
        for job in jobs:
            job.result()


@pytest.fixture
def switch_often() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.parametrize("subs", [False, True], ids=["one-run", "sub-agents"])
def test_threads_never_get_one_recorded_call_twice(store: Path, tmp_path: Path, subs: bool,
                                                   switch_often: None) -> None:
    threaded_agent("acme", subs)
    total = len(outputs)
    assert sorted(outputs) == list(range(1, total + 1))
    bundle = export(store, tmp_path, "threads")
    for _ in range(3):
        outputs.clear()
        verdict = replay(bundle, threaded_agent)
        assert not verdict.contained and verdict.note is None
        # every recorded result served exactly once: none twice, none left over
        assert sorted(outputs) == list(range(1, total + 1))
    assert {"same_work": total} == WORLD


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


# -- t16: parallel model calls in threads ---------------------------------------------------------
@tracekit.model(name="m")
def summarise(messages: list[dict[str, Any]]) -> dict[str, Any]:
    _bump("summarise")
    threading.Event().wait(0.05)  # a real model takes a while: the calls overlap
    return {"content": "summary of " + messages[0]["content"]}


@tracekit.entrypoint
def parallel_model_agent(tenant: str) -> None:
    docs = KNOBS.get("docs", ["doc A", "doc B"])
    with tracekit.run(tenant=tenant), ThreadPoolExecutor(len(docs)) as pool:
        futures = [pool.submit(contextvars.copy_context().run, summarise,
                               [{"role": "user", "content": doc}]) for doc in docs]
        outputs.append(sorted(f.result()["content"] for f in futures))


def test_parallel_model_calls_in_threads_replay(store: Path, tmp_path: Path) -> None:
    parallel_model_agent("acme")
    bundle = export(store, tmp_path, "parallel-models")
    prompts = [e for e in bundle_events(bundle) if e["kind"] == "prompt"]
    assert len(prompts) == 2
    for docs in (["doc A", "doc B"], ["doc B", "doc A"]):
        KNOBS["docs"] = docs
        verdict = replay(bundle, parallel_model_agent)
        assert not verdict.contained and verdict.note is None
    assert outputs == [["summary of doc A", "summary of doc B"]] * 3
    assert WORLD == {"summarise": 2}


# -- t17: a URL-encoded query secret never reaches the stored error --------------------------------
def test_an_url_encoded_query_secret_never_reaches_the_stored_error(store: Path) -> None:
    signature = "Zm9vYmFy%2BYmF6%2FcXV4%3D"  # an Azure SAS signature, as sent
    url = f"http://127.0.0.1:{closed_port()}/blob?sv=2022&sig={signature}&sp=r"
    with tracekit.run(tenant="acme"), pytest.raises(requests.ConnectionError), \
            tracekit.http.instrument_requests(requests.Session()) as session:
        session.get(url, timeout=5)
    tracekit.flush()
    [event] = Recording(store).rows("SELECT args, error FROM events WHERE kind = 'http'")
    assert event["error"] and "ConnectionError" in event["error"]
    assert "sig=[REDACTED]" in event["error"]
    for text in (event["args"], event["error"]):
        assert "Zm9vYmFy" not in text and "cXV4" not in text


# -- t18: an async entry point replayed from inside a running event loop -------------------------
@tracekit.tool
async def async_tool(x: int) -> int:
    _bump("async_tool")
    return x


@tracekit.entrypoint
async def async_entry_agent(tenant: str) -> None:
    async with tracekit.run(tenant=tenant):
        outputs.append(await async_tool(x=1))


def test_an_async_entry_point_replays_from_inside_a_running_loop(store: Path,
                                                                 tmp_path: Path) -> None:
    asyncio.run(async_entry_agent("acme"))
    bundle = export(store, tmp_path, "async-entry")
    before = replay_state()

    async def evaluate() -> tracekit.Verdict:  # a pytest-asyncio test, a service running evals
        return replay(bundle, async_entry_agent)

    verdict = asyncio.run(evaluate())
    assert not verdict.contained and verdict.note is None and verdict.mode == "agent"
    assert outputs == [1, 1]
    assert WORLD == {"async_tool": 1}
    assert replay_state() == before


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


# -- t20: an app-chosen run id that is not in the recording ---------------------------------------
@tracekit.entrypoint
def named_run_agent(tenant: str) -> None:
    ticket = f"ticket-{_bump('ticket')}"  # the app names its runs: a new name each time
    with tracekit.run(tenant=tenant, run_id=ticket):
        outputs.append(echo_tool(x=1))


def test_an_app_chosen_run_id_not_in_the_recording_matches_by_tenant(
        store: Path, tmp_path: Path) -> None:
    named_run_agent("acme")
    bundle = export(store, tmp_path, "named")
    assert {e["run_id"] for e in bundle_events(bundle)} == {"ticket-1"}
    verdict = replay(bundle, named_run_agent)  # the replay asks for ticket-2
    assert not verdict.contained and verdict.note is None
    assert verdict.run_id is None and outputs == [1, 1]


# -- t21: @tracekit.entrypoint(secrets=...) -------------------------------------------------------
@tracekit.entrypoint(secrets=("openai_key",))
def keyed_agent(tenant: str, openai_key: str) -> None:
    with tracekit.run(tenant=tenant):
        outputs.append(openai_key)


def test_an_entry_point_secret_argument_is_recorded_redacted(store: Path,
                                                             tmp_path: Path) -> None:
    keyed_agent("acme", ENTRY_KEY)
    tracekit.flush()
    [entry] = Recording(store).rows("SELECT name, args FROM events WHERE kind = 'entry'")
    assert entry["name"] == f"{__name__}:keyed_agent"
    assert json.loads(entry["args"]) == {"tenant": "acme", "openai_key": MARKER}
    bundle = export(store, tmp_path, "keyed")
    for path in bundle.iterdir():
        assert ENTRY_KEY.encode() not in path.read_bytes(), path.name
    verdict = replay(bundle, keyed_agent)  # the replay gets the marker in its place
    assert not verdict.contained and outputs == [ENTRY_KEY, MARKER]


# -- t22: extra clock reads past the end of the recording, and before a recorded call -------------
@tracekit.tool
def step_tool(i: int) -> int:
    _bump("step_tool")
    return i


@tracekit.model(name="m", cost=lambda reply: 0.001)
def go_model(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"go": True}


@tracekit.entrypoint
def clocked_agent(tenant: str) -> None:
    with tracekit.run(tenant=tenant):
        i = 0
        while go_model([{"role": "user", "content": str(i)}])["go"]:
            if i == 0 and KNOBS.get("extra_read"):
                tracekit.now()  # a read the recording does not have, before t(0)
            tracekit.now()  # a timestamp for the log line
            step_tool(i=i)
            i += 1


@pytest.fixture
def halted_clock_bundle(store: Path, tmp_path: Path,
                        configured_guard: Callable[[tracekit.Guard], None]) -> Path:
    configured_guard(tracekit.Guard(max_steps=3))
    with pytest.raises(tracekit.Halted):
        clocked_agent("acme")
    return export(store, tmp_path, "clocked")


def test_clock_reads_past_the_end_of_a_replayed_run_are_not_contained_with_a_note(
        halted_clock_bundle: Path) -> None:
    again = replay(halted_clock_bundle, clocked_agent, tracekit.Guard(max_steps=3))
    assert again.contained and (again.signal, again.step) == ("steps", 4)
    loose = replay(halted_clock_bundle, clocked_agent, tracekit.Guard(max_steps=10))
    assert not loose.contained and loose.mode == "agent"
    assert "tracekit.now() was called more times than the recording has" in (loose.note or "")
    policy = tracekit.replay(halted_clock_bundle, guard=tracekit.Guard(max_steps=10))
    assert not policy.contained


def test_an_extra_clock_read_before_a_recorded_call_diverges(halted_clock_bundle: Path) -> None:
    KNOBS["extra_read"] = True
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(halted_clock_bundle, clocked_agent, tracekit.Guard(max_steps=10))
    assert not isinstance(caught.value, tracekit.RecordingEnds)
    assert caught.value.kind == "clock" and caught.value.step == 1
