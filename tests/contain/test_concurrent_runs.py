"""The concurrency cap: a run over it is refused, its slot comes back when the run ends, and a
crashed worker's slot comes back when its lease expires (a real SQLite control store)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "store"
    tracekit.shutdown()


def test_concurrency_cap_refuses_the_extra_run_and_frees_its_slot(guarded: Path) -> None:
    tracekit.configure(store=guarded, guard=tracekit.Guard(max_concurrent_runs=2))
    with tracekit.run(tenant="acme"), tracekit.run(tenant="acme"):
        with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="acme"):
            pass
        assert info.value.signal == "concurrent_runs" and info.value.threshold == 2
        with tracekit.run(tenant="globex"):  # another tenant has its own slots
            pass
    with tracekit.run(tenant="acme"), tracekit.run(tenant="acme"):  # both slots came back
        pass


def test_a_crashed_workers_slot_comes_back_when_its_lease_expires(guarded: Path) -> None:
    code = (
        "import os, tracekit\n"
        f"tracekit.configure(store={str(guarded)!r}, "
        "guard=tracekit.Guard(max_concurrent_runs=1, lease_s=1.0))\n"
        "run = tracekit.run(tenant='acme').__enter__()\n"
        "print('holding', flush=True)\n"
        "os._exit(0)  # dies holding the slot\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert "holding" in out.stdout
    tracekit.configure(store=guarded, guard=tracekit.Guard(max_concurrent_runs=1, lease_s=1.0))
    with pytest.raises(tracekit.Halted), tracekit.run(tenant="acme"):
        pass
    time.sleep(1.2)
    with tracekit.run(tenant="acme"):
        pass
