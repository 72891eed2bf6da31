"""Concurrency leases and first-seen destinations, against a real SQLite control store."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit
from tracekit._capture.state import PROCESS


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


@tracekit.tool(writes=True, destination=lambda to, body: to.split("@", 1)[1])
def send_email(to: str, body: str) -> str:
    return "sent"


def test_new_destination_alert_records_and_lets_the_write_through(guarded: Path) -> None:
    tracekit.configure(store=guarded, guard=tracekit.Guard(new_destination="alert"))
    with tracekit.run(tenant="acme"):
        assert send_email("a@example.com", "hi") == "sent"
        assert send_email("b@example.com", "hi") == "sent"  # same destination: no alert
        assert send_email("c@elsewhere.test", "hi") == "sent"
    tracekit.flush()
    con = tracekit.connect(guarded)
    alerts = con.execute("SELECT error FROM events WHERE kind = 'guard' AND status = 'alert' "
                         "ORDER BY seq").fetchall()
    assert [a[0].split("'")[1] for a in alerts] == ["example.com", "elsewhere.test"]
    assert con.execute("SELECT count(*) FROM tool_calls WHERE tool = 'send_email'").fetchone() \
        == (3,)
    trips = PROCESS.guard_runtime().control.trips()
    assert {t["destination"] for t in trips} == {"example.com", "elsewhere.test"}


def test_new_destination_halt_stops_the_write_before_it_runs(guarded: Path) -> None:
    tracekit.configure(store=guarded, guard=tracekit.Guard(new_destination="halt"))
    sent: list[str] = []

    @tracekit.tool(writes=True, destination="payments.example")
    def charge(amount: float) -> None:
        sent.append("charge")

    with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="acme"):
        charge(5.0)
    assert info.value.signal == "new_destination" and sent == []
    # the destination is now known for the tenant: once the run halt is lifted, it flows
    with tracekit.run(tenant="acme"):
        charge(5.0)
    assert sent == ["charge"]
