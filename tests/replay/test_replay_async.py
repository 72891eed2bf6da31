"""Agent replay of async code: an async ``@tracekit.model``, an async entry point replayed from
inside a running event loop.

The recorded answer comes back, not a coroutine, and the process is as it was after.

As in test_agent_replay.py, the agents are module-level functions of this file, replayed with
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")``. ``outputs`` carries back what it
saw, ``WORLD`` counts what its tools and models really did.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _replaying import bundle_events, export, replay, replay_state

import tracekit

outputs: list[Any] = []
WORLD: dict[str, int] = {}
_LOCK = threading.Lock()


@pytest.fixture(autouse=True)
def _fresh_agents() -> Iterator[None]:
    outputs.clear()
    WORLD.clear()
    yield
    outputs.clear()
    WORLD.clear()


def _bump(counter: str) -> int:
    with _LOCK:
        WORLD[counter] = WORLD.get(counter, 0) + 1
        return WORLD[counter]


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
