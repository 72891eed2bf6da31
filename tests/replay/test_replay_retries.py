"""Agent replay of recorded failures: a model call or a tool that raised raises again, so the
agent's retry runs as it did.

A model call that timed out, then a retry; a tool that failed with TimeoutError.

As in test_agent_replay.py, the agents are module-level functions of this file, replayed with
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")``. ``outputs`` carries back what it
saw, ``WORLD`` counts what its tools and models really did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _replaying import bundle_events, export, replay

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
