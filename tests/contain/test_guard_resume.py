"""Resume against a real crash, a replaced control store, and no secrets in the control plane."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit

SECRET = "sk-live-" + "Z9" * 12


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "store"
    tracekit.shutdown()


def _crash_after(root: Path, steps: int, guard: str) -> None:
    """A child records ``steps`` steps, flushes, and is SIGKILLed before the guard saves."""
    code = (
        "import os, signal, tracekit\n"
        f"tracekit.configure(store={str(root)!r}, guard=tracekit.Guard({guard}, refresh_s=30))\n"
        "@tracekit.tool\n"
        "def think(n): return n\n"
        "run = tracekit.run(tenant='acme', run_id='r-crash').__enter__()\n"
        f"for i in range({steps}):\n"
        "    run.model_output('thinking', cost_usd=0.1)\n"
        "    think(i)\n"
        "assert tracekit.flush()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr


def test_a_killed_runs_budget_continues_from_its_durable_trace(root: Path) -> None:
    _crash_after(root, 6, "max_steps=8, max_cost_usd=5")
    tracekit.configure(store=root, guard=tracekit.Guard(max_steps=8, max_cost_usd=5))
    with pytest.raises(tracekit.Halted) as info, \
            tracekit.run(tenant="acme", run_id="r-crash") as run:
        assert run.step == 6  # not 0: the trace is ahead of the last saved state
        for _ in range(5):
            run.model_output("more")
    assert info.value.signal == "steps" and run.step == 9
    tracekit.flush()
    con = tracekit.connect(root)
    seqs = con.execute("SELECT seq FROM events WHERE run_id = 'r-crash'").fetchall()
    assert len(seqs) == len(set(seqs))  # seq continues: no number is used twice


def test_a_resumed_runs_no_progress_count_continues(root: Path) -> None:
    _crash_after(root, 4, "max_steps_without_progress=6")
    tracekit.configure(store=root, guard=tracekit.Guard(max_steps_without_progress=6))

    @tracekit.tool
    def think(n: int) -> int:
        return n

    with pytest.raises(tracekit.Halted) as info, \
            tracekit.run(tenant="acme", run_id="r-crash") as run:
        for i in range(12):  # the same calls as before the crash: no change of state
            run.model_output("again")
            think(i % 4)
    # the last change of state was step 4, before the crash: 6 more idle steps and it trips
    assert info.value.signal == "no_progress" and run.step == 11


def test_a_replaced_control_store_is_refused(root: Path) -> None:
    tracekit.configure(store=root, guard=tracekit.Guard(staleness_s=0.3, refresh_s=0.05))
    with tracekit.run(tenant="acme") as run:
        run.model_output("fine")
        (root / "control.db").unlink()
        # the on-call, in another shell, makes a new store and halts the fleet in it
        subprocess.run([sys.executable, "-m", "tracekit", "halt", "global", "--reason", "x",
                        "--init", "--store", str(root)], check=True, timeout=60)
        import time

        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                run.model_output("still going?")
            except tracekit.Halted as halt:
                assert halt.level in ("store", "global")
                break
            time.sleep(0.02)
        else:
            pytest.fail("the guard kept answering from the removed control store")


def test_no_secret_reaches_the_control_store(root: Path) -> None:
    tracekit.configure(store=root, guard=tracekit.Guard(
        max_repeats=2, max_steps_without_progress=50, new_destination="alert"))

    @tracekit.tool(writes=True, destination=lambda url, body: url)
    def post(url: str, body: str) -> str:
        return "ok"

    with pytest.raises(tracekit.Halted), tracekit.run(tenant="acme") as run:
        for _ in range(3):
            run.model_output("posting")
            post(f"https://hooks.example/?token={SECRET}", f"Authorization: Bearer {SECRET}")
    tracekit.shutdown()
    data = (root / "control.db").read_bytes()
    for extra in root.glob("control.db-*"):
        data += extra.read_bytes()
    assert SECRET.encode() not in data
