"""First-seen destinations: a write to a destination new for the tenant is alerted on or
halted before it runs (a real SQLite control store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit
from tracekit._capture.state import PROCESS


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "store"
    tracekit.shutdown()


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
