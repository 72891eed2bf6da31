"""A resumed run's detector windows: found again by digest, and a new call after the resume is
checked like any other (it once raised a KeyError in the repeat detector)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracekit

CALLS: list[str] = []


@tracekit.tool
def lookup(order_id: str) -> str:
    CALLS.append(order_id)
    return order_id


def test_a_new_call_after_a_resume_is_checked_and_the_old_window_kept(store: Path) -> None:
    CALLS.clear()
    guard = tracekit.Guard(max_repeats=2, max_steps_without_progress=50)
    tracekit.configure(store=store, guard=guard)
    with tracekit.run(tenant="acme", run_id="run_resumed"):
        lookup("o1")
        lookup("o1")
    tracekit.shutdown()  # another process would resume from the saved state
    tracekit.configure(store=store, guard=guard)
    with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="acme", run_id="run_resumed"):
        lookup("o2")  # never made before: passes (the resumed window of o1 is another call)
        lookup("o2")
        lookup("o1")  # the third o1 within the window: the resumed window counts
    assert info.value.signal == "repeats"
    assert CALLS == ["o1", "o1", "o2", "o2"]
