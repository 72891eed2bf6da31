"""Agent replay of clock reads: extra ``tracekit.now()`` reads past the end of the recording, and
before a recorded call.

Past the end, the verdict stands with a note; before a recorded call, the replay diverges.

As in test_agent_replay.py, the agents are module-level functions of this file, replayed with
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")``. ``KNOBS`` varies an agent
between recording and replay, ``WORLD`` counts what its tools and models really did.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _replaying import export, replay

import tracekit

KNOBS: dict[str, Any] = {}
WORLD: dict[str, int] = {}
_LOCK = threading.Lock()


@pytest.fixture(autouse=True)
def _fresh_agents() -> Iterator[None]:
    KNOBS.clear()
    WORLD.clear()
    yield
    KNOBS.clear()
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
