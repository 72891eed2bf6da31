"""Agent replay's call matching: which recorded call serves which, in whatever order threads run.

Parallel sub-agents started in another order, threads that never get one recorded call twice,
parallel model calls in threads, an app-chosen run id not in the recording.

As in test_agent_replay.py, the agents are module-level functions of this file, replayed with
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")``. ``KNOBS`` varies an agent
between recording and replay, ``outputs`` carries back what it saw, ``WORLD`` counts what its
tools and models really did.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from _replaying import bundle_events, export, replay

import tracekit
from tracekit._capture import run as _run

KNOBS: dict[str, Any] = {}
outputs: list[Any] = []
WORLD: dict[str, int] = {}
_LOCK = threading.Lock()
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


# -- the read tool the agents call -----------------------------------------------------------------
@tracekit.tool
def echo_tool(x: int) -> int:
    return x


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
