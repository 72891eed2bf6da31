"""The side-effect ledger: write-ahead rows, idempotent writes, failures replayed, fail closed.

Everything goes through real stores in tmp_path and is checked through SQL on
``tracekit.connect(store)`` (views ``ledger``, ``ledger_history`` and ``tool_calls``). Redis tests
start their own ``redis-server`` on a free loopback port and kill it themselves; the shared Redis
on 6379 is never touched. Child processes live in ``tests/ledger_children/agent.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from _redis import RedisServer

import tracekit
from tracekit._capture.state import PROCESS
from tracekit._ledger import effects as _effects
from tracekit.errors import DuplicateInFlight, IdempotencyConflict, ReplayedFailure

redis = pytest.importorskip("redis")

CHILD = Path(__file__).resolve().parent.parent / "ledger_children" / "agent.py"


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer | None]:
    """The control store: None for the embedded SQLite one, else a redis-server of our own."""
    monkeypatch.delenv("TRACEKIT_CONTROL", raising=False)
    if request.param == "sqlite":
        yield None
        return
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server.initialise()
    server.kill()


@pytest.fixture
def ledger_store(tmp_path: Path, backend: RedisServer | None) -> Iterator[Path]:
    """A store in tmp_path with the parametrised control store, no guard; shut down after."""
    root = tmp_path / "store"
    tracekit.configure(store=root, control=None if backend is None else backend.url,
                       guard=False)
    yield root
    tracekit.shutdown()


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A store in tmp_path with its control.db, no guard; shut down after."""
    monkeypatch.delenv("TRACEKIT_CONTROL", raising=False)
    root = tmp_path / "store"
    tracekit.configure(store=root, guard=False)
    yield root
    tracekit.shutdown()


# -- helpers -------------------------------------------------------------------------------------
def sql(root: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``query`` over the store, after flushing what this process recorded."""
    assert tracekit.flush(30)
    con = tracekit.connect(root)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def statuses(root: Path, table: str, where: str = "true",
             params: list[Any] | None = None) -> Counter[str]:
    return Counter(dict(sql(root, f"SELECT status, count(*) FROM {table} WHERE {where} "
                                  "GROUP BY status", params)))


def history(root: Path, where: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """(entry_id, status, call_id, run_id) of ledger rows, oldest first."""
    return sql(root, f"SELECT entry_id, status, call_id, run_id FROM ledger_history "
                     f"WHERE {where} ORDER BY ts, CASE status WHEN 'reserved' THEN 0 ELSE 1 END",
               params)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- 1. a looping agent re-issuing the same refund ------------------------------------------------
def test_looping_refund_fires_once(ledger_store: Path) -> None:
    refunds: list[tuple[str, float]] = []

    @tracekit.tool(writes=True, destination=lambda **kw: f"stripe:{kw['customer']}",
                   amount=lambda **kw: kw["amount"], currency="USD", action="refund",
                   reversible=True)
    def refund(customer: str, amount: float) -> dict[str, Any]:
        refunds.append((customer, amount))
        return {"refund_id": f"re_{len(refunds)}", "customer": customer, "amount": amount}

    with tracekit.run(tenant="acme") as run:
        results = [refund("cus_42", 30.0) for _ in range(100)]

    assert refunds == [("cus_42", 30.0)]  # one charge
    first = {"refund_id": "re_1", "customer": "cus_42", "amount": 30.0}
    assert results == [first] * 100  # every call got the first outcome

    assert statuses(ledger_store, "ledger_history", "run_id = ?", [run.run_id]) == {
        "reserved": 1, "fired": 1, "suppressed_duplicate": 99}
    # the latest state of each entry: the one that fired, and 99 suppressed duplicates
    assert statuses(ledger_store, "ledger", "run_id = ?", [run.run_id]) == {
        "fired": 1, "suppressed_duplicate": 99}
    fired = sql(ledger_store, "SELECT call_id, tool, tenant, destination, action, amount, "
                              "currency, reversible, result FROM ledger WHERE status = 'fired'")
    assert len(fired) == 1
    call_id, tool, tenant, destination, action, amount, currency, reversible, result = fired[0]
    assert (call_id, tool, tenant, destination, action, amount, currency, reversible) == (
        "call_1", "refund", "acme", "stripe:cus_42", "refund", 30.0, "USD", True)
    assert json.loads(result) == first
    # every row names the same request under the same key
    assert sql(ledger_store, "SELECT count(DISTINCT idempotency_key), "
                             "count(DISTINCT request_hash), count(DISTINCT call_id) "
                             "FROM ledger_history") == [(1, 1, 100)]

    assert statuses(ledger_store, "tool_calls", "run_id = ?", [run.run_id]) == {
        "ok": 1, "duplicate": 99}
    dup_outputs = sql(ledger_store, "SELECT DISTINCT output, writes FROM tool_calls "
                                    "WHERE status = 'duplicate'")
    assert len(dup_outputs) == 1 and json.loads(dup_outputs[0][0]) == first
    assert dup_outputs[0][1] is True
    # the ledger joins the events by run_id and call_id: one entry per tool call
    joined = sql(ledger_store, "SELECT t.status, l.status FROM tool_calls t JOIN ledger l "
                               "USING (run_id, call_id)")
    assert Counter(joined) == {("ok", "fired"): 1, ("duplicate", "suppressed_duplicate"): 99}


def test_default_key_is_per_run_and_per_arguments(sqlite_store: Path) -> None:
    """No key given: the run, the tool and the canonical arguments."""
    body: list[Any] = []

    @tracekit.tool(writes=True)
    def refund(customer: str, amount: float) -> str:
        body.append((customer, amount))
        return f"re_{len(body)}"

    with tracekit.run(tenant="acme"):
        assert [refund("c1", 5.0), refund(customer="c1", amount=5.0), refund("c1", 6.0)] == [
            "re_1", "re_1", "re_2"]  # positional and keyword spellings are one request
    with tracekit.run(tenant="acme"):
        assert refund("c1", 5.0) == "re_3"  # another run: another key
    assert body == [("c1", 5.0), ("c1", 6.0), ("c1", 5.0)]
    assert statuses(sqlite_store, "ledger_history") == {
        "reserved": 3, "fired": 3, "suppressed_duplicate": 1}


def test_async_write_tool_fires_once(sqlite_store: Path) -> None:
    body: list[str] = []

    @tracekit.tool(writes=True, idempotency_key=lambda **kw: f"email:{kw['to']}")
    async def send_email(to: str) -> dict[str, str]:
        body.append(to)
        await asyncio.sleep(0)
        return {"sent_to": to}

    async def agent() -> list[dict[str, str]]:
        async with tracekit.run(tenant="acme"):
            return [await send_email("a@example.com") for _ in range(10)]

    assert asyncio.run(agent()) == [{"sent_to": "a@example.com"}] * 10
    assert body == ["a@example.com"]
    assert statuses(sqlite_store, "ledger_history") == {
        "reserved": 1, "fired": 1, "suppressed_duplicate": 9}
    assert statuses(sqlite_store, "tool_calls") == {"ok": 1, "duplicate": 9}


def test_read_tools_do_not_touch_the_ledger(sqlite_store: Path) -> None:
    @tracekit.tool
    def lookup(order_id: str) -> str:
        return "shipped"

    with tracekit.run(tenant="acme"):
        for _ in range(3):
            lookup("A-1")
    assert sql(sqlite_store, "SELECT count(*) FROM ledger_history") == [(0,)]
    assert statuses(sqlite_store, "tool_calls") == {"ok": 3}


# -- 2. four processes racing on one key -------------------------------------------------------
def test_four_processes_race_on_one_key(tmp_path: Path, backend: RedisServer | None) -> None:
    root, effects, go = tmp_path / "store", tmp_path / "effects.log", tmp_path / "go"
    control = "sqlite" if backend is None else backend.url
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "race", str(root), control, "order-1001-charge",
             str(effects), str(go), "0.3"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    try:
        for proc in procs:  # every child configured, its control store open
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line and "ready" in line, proc.communicate(timeout=30)[1]
        go.touch()  # released at once
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert len(lines(effects)) == 1, outcomes  # exactly one charge
    firer = int(lines(effects)[0])
    errors = [o for o in outcomes if "error" in o]
    assert errors == [], errors  # duplicates waited for the outcome (0.3 s < 5 s)
    expected = {"charged_by": firer, "customer": "cus_1", "amount": 25.0}
    assert [o["result"] for o in outcomes] == [expected] * 4

    runs = {o["pid"]: o["run_id"] for o in outcomes}
    assert statuses(root, "ledger_history") == {
        "reserved": 1, "fired": 1, "suppressed_duplicate": 3}
    assert sql(root, "SELECT run_id FROM ledger_history WHERE status IN ('reserved', 'fired') "
                     "GROUP BY run_id") == [(runs[firer],)]
    assert sql(root, "SELECT count(DISTINCT run_id) FROM ledger_history") == [(4,)]
    assert statuses(root, "tool_calls") == {"ok": 1, "duplicate": 3}


# -- 3. write-ahead ------------------------------------------------------------------------------
def test_reserved_row_is_durable_before_the_effect(sqlite_store: Path) -> None:
    seen: dict[str, Any] = {}

    @tracekit.tool(writes=True, idempotency_key="wa-1", destination="smtp:a@example.com")
    def send_email(to: str) -> str:
        run = tracekit.current_run()
        assert run is not None
        con = tracekit.connect(sqlite_store)  # a fresh reader: only what is on disk
        seen["rows"] = con.execute(
            "SELECT call_id, status, tool, destination FROM ledger_history WHERE run_id = ?",
            [run.run_id]).fetchall()
        con.close()
        seen["segments"] = [p.name for p in (sqlite_store / "segments").glob("ledger-*.arrows")]
        return "sent"

    with tracekit.run(tenant="acme") as run:
        send_email("a@example.com")  # the 1st call: call_1
        send_email("a@example.com")

    assert seen["rows"] == [("call_1", "reserved", "send_email", "smtp:a@example.com")]
    assert seen["segments"], "the reserved row was not in a ledger segment on disk"
    assert [(s, c) for _, s, c, _ in history(sqlite_store, "run_id = ?", [run.run_id])] == [
        ("reserved", "call_1"), ("fired", "call_1"), ("suppressed_duplicate", "call_2")]
    assert sql(sqlite_store, "SELECT call_id, status FROM tool_calls ORDER BY seq") == [
        ("call_1", "ok"), ("call_2", "duplicate")]


# -- 4. SIGKILL between reservation and outcome -------------------------------------------------
def test_sigkill_after_reservation_reads_as_may_have_fired(
        sqlite_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    effects = tmp_path / "effects.log"
    proc = subprocess.run(
        [sys.executable, str(CHILD), "crash", str(sqlite_store), "wire-77", str(effects)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    child_run = json.loads(proc.stdout.splitlines()[0])["run_id"]
    assert len(lines(effects)) == 1  # it did fire (the world changed), then died

    tracekit.recover(sqlite_store)
    latest = sql(sqlite_store, "SELECT status, tool, action, amount, currency, reversible, "
                               "destination, call_id FROM ledger WHERE run_id = ?", [child_run])
    assert latest == [("reserved", "wire", "wire", 99.0, "EUR", False, "bank:acct-9", "call_1")]
    assert [s for _, s, _, _ in history(sqlite_store, "run_id = ?", [child_run])] == ["reserved"]

    # a retry with the same key must not fire again: may have fired, so not run
    monkeypatch.setattr(_effects, "_PENDING_WAIT_S", 0.2)
    body: list[str] = []

    @tracekit.tool(writes=True, idempotency_key="wire-77")
    def wire(to: str, amount: float) -> dict[str, float]:
        body.append(to)
        return {"wired": amount}

    with tracekit.run(tenant="acme"), pytest.raises(DuplicateInFlight, match="may have fired"):
        wire("acct-9", 99.0)
    assert body == [] and len(lines(effects)) == 1
    assert sql(sqlite_store, "SELECT status FROM ledger WHERE run_id = ?", [child_run]) == [
        ("reserved",)]


# -- 5. conflicts, replayed failures, retryable failures ----------------------------------------
def test_same_key_different_arguments_conflicts(ledger_store: Path) -> None:
    body: list[float] = []

    @tracekit.tool(writes=True, idempotency_key="refund-7")
    def refund(customer: str, amount: float) -> str:
        body.append(amount)
        return "ok"

    with tracekit.run(tenant="acme") as run:
        assert refund("cus_1", 10.0) == "ok"
        with pytest.raises(IdempotencyConflict, match="different arguments"):
            refund("cus_1", 11.0)
    with tracekit.run(tenant="acme"), pytest.raises(IdempotencyConflict):
        refund("cus_2", 10.0)  # another run, same key: still the same request slot
    assert body == [10.0]

    rows = history(ledger_store, "run_id = ?", [run.run_id])
    assert [s for _, s, _, _ in rows] == ["reserved", "fired", "suppressed_duplicate"]
    conflict = sql(ledger_store, "SELECT result FROM ledger WHERE run_id = ? AND call_id = "
                                 "'call_2'", [run.run_id])
    assert json.loads(conflict[0][0]) == {"conflict": True}
    assert sql(ledger_store, "SELECT status, error LIKE 'IdempotencyConflict%' FROM tool_calls "
                             "WHERE run_id = ? ORDER BY seq", [run.run_id]) == [
        ("ok", None), ("error", True)]


def test_failed_effect_is_replayed_not_run_again(ledger_store: Path) -> None:
    attempts: list[str] = []

    @tracekit.tool(writes=True, idempotency_key=lambda **kw: f"pay:{kw['invoice']}")
    def pay(invoice: str) -> str:
        attempts.append(invoice)
        raise ValueError("card declined")

    with tracekit.run(tenant="acme") as run:
        with pytest.raises(ValueError, match="card declined"):
            pay("inv_1")
        with pytest.raises(ReplayedFailure, match="card declined"):
            pay("inv_1")
    with tracekit.run(tenant="acme"), pytest.raises(ReplayedFailure):
        pay("inv_1")  # another run retrying the same key
    assert attempts == ["inv_1"]

    rows = history(ledger_store, "run_id = ?", [run.run_id])
    assert [s for _, s, _, _ in rows] == ["reserved", "failed", "suppressed_duplicate"]
    assert rows[0][0] == rows[1][0]  # reserved and failed are one entry
    failed = json.loads(sql(ledger_store, "SELECT result FROM ledger_history WHERE status = "
                                          "'failed'")[0][0])
    assert failed == {"error": "ValueError: card declined", "retryable": False}
    assert statuses(ledger_store, "ledger_history") == {
        "reserved": 1, "failed": 1, "suppressed_duplicate": 2}


def test_retryable_failure_reserves_and_runs_again(ledger_store: Path) -> None:
    attempts: list[int] = []

    @tracekit.tool(writes=True, idempotency_key="transfer-9", retry_on=(TimeoutError,))
    def transfer(amount: float) -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("bank did not answer")
        return {"transfer": "tr_1", "amount": amount}

    with tracekit.run(tenant="acme") as run:
        with pytest.raises(TimeoutError):
            transfer(50.0)
        assert transfer(50.0) == {"transfer": "tr_1", "amount": 50.0}  # reserved again, ran
        assert transfer(50.0) == {"transfer": "tr_1", "amount": 50.0}  # now a duplicate
    assert len(attempts) == 2

    rows = history(ledger_store, "run_id = ?", [run.run_id])
    assert [(s, c) for _, s, c, _ in rows] == [
        ("reserved", "call_1"), ("failed", "call_1"), ("reserved", "call_2"),
        ("fired", "call_2"), ("suppressed_duplicate", "call_3")]
    first_entry, second_entry = rows[0][0], rows[2][0]
    assert rows[1][0] == first_entry and rows[3][0] == second_entry != first_entry
    failed = json.loads(sql(ledger_store, "SELECT result FROM ledger WHERE entry_id = ?",
                            [first_entry])[0][0])
    assert failed == {"error": "TimeoutError: bank did not answer", "retryable": True}
    assert sql(ledger_store, "SELECT entry_id, status FROM ledger WHERE status IN "
                             "('failed', 'fired') ORDER BY ts") == [
        (first_entry, "failed"), (second_entry, "fired")]


def test_error_not_declared_retryable_is_replayed(sqlite_store: Path) -> None:
    attempts: list[int] = []

    @tracekit.tool(writes=True, idempotency_key="transfer-10", retry_on=(TimeoutError,))
    def transfer(amount: float) -> str:
        attempts.append(1)
        raise PermissionError("account frozen")

    with tracekit.run(tenant="acme"):
        with pytest.raises(PermissionError):
            transfer(1.0)
        with pytest.raises(ReplayedFailure, match="account frozen"):
            transfer(1.0)
    assert attempts == [1]


def test_concurrent_retries_after_retryable_failure_fire_once(sqlite_store: Path) -> None:
    fired: list[str] = []

    @tracekit.tool(writes=True, idempotency_key="transfer-11", retry_on=(TimeoutError,))
    def transfer(amount: float) -> str:
        if not fired:
            fired.append("first attempt")
            raise TimeoutError("bank did not answer")
        fired.append(threading.current_thread().name)
        time.sleep(0.1)
        return "tr_ok"

    with tracekit.run(tenant="acme"), pytest.raises(TimeoutError):
        transfer(5.0)

    # two retriers, in two runs, both read the retryable failure before either takes the key
    control = PROCESS.ledger_control()
    both_read = threading.Barrier(2, timeout=2)
    settle = control.settle

    def slow_settle(key: str, doc: dict[str, Any]) -> None:
        if doc.get("status") == "reserved":  # the hand-over of a failed key to a retry
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait()
        settle(key, doc)

    control.settle = slow_settle  # type: ignore[method-assign]
    outcomes: list[Any] = []

    def retrier() -> None:
        with tracekit.run(tenant="acme"):
            try:
                outcomes.append(transfer(5.0))
            except Exception as exc:
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=retrier, name=f"retrier-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(fired) == 2, (fired, outcomes)  # the first attempt and one retry
    assert outcomes == ["tr_ok", "tr_ok"]


# -- 6. a control store that is down: fail closed -----------------------------------------------
def _transfer_tool(body: list[float]) -> Any:
    @tracekit.tool(writes=True)
    def transfer(amount: float) -> str:
        body.append(amount)
        return "ok"
    return transfer


def test_redis_down_mid_run_halts_the_write(tmp_path: Path, redis_server: RedisServer) -> None:
    root = tmp_path / "store"
    tracekit.configure(store=root, control=redis_server.url, guard=False)
    body: list[float] = []
    transfer = _transfer_tool(body)
    try:
        with tracekit.run(tenant="acme") as run:
            assert transfer(1.0) == "ok"
            redis_server.kill()
            with pytest.raises(tracekit.Halted) as caught:
                transfer(2.0)
            # the same request as before is not answered from memory either
            with pytest.raises(tracekit.Halted):
                transfer(1.0)
        assert caught.value.level == "store"
        assert body == [1.0]
        assert sql(root, "SELECT call_id, status FROM tool_calls WHERE run_id = ? ORDER BY seq",
                   [run.run_id]) == [("call_1", "ok"), ("call_2", "halted"),
                                     ("call_3", "halted")]
        assert statuses(root, "ledger_history") == {"reserved": 1, "fired": 1}
    finally:
        tracekit.shutdown()


def test_redis_down_before_first_write_halts(tmp_path: Path,
                                             redis_server: RedisServer) -> None:
    root = tmp_path / "store"
    redis_server.kill()
    tracekit.configure(store=root, control=redis_server.url, guard=False)
    body: list[float] = []
    transfer = _transfer_tool(body)
    try:
        with tracekit.run(tenant="acme"), pytest.raises(tracekit.Halted) as caught:
            transfer(1.0)
        assert caught.value.level == "store"
    finally:
        tracekit.shutdown()
        assert body == []


def test_redis_down_under_a_guard_halts_the_write(tmp_path: Path,
                                                  redis_server: RedisServer) -> None:
    root = tmp_path / "store"
    tracekit.configure(store=root, control=redis_server.url,
                       guard=tracekit.Guard(refresh_s=0.05, staleness_s=0.5))
    body: list[float] = []
    transfer = _transfer_tool(body)
    try:
        with tracekit.run(tenant="acme"):
            assert transfer(1.0) == "ok"
            redis_server.kill()
            with pytest.raises(tracekit.Halted) as caught:
                transfer(2.0)
        assert caught.value.level == "store"
        assert body == [1.0]
    finally:
        tracekit.shutdown()


def test_sqlite_control_removed_halts_the_write(sqlite_store: Path) -> None:
    body: list[float] = []
    transfer = _transfer_tool(body)
    with tracekit.run(tenant="acme"):
        assert transfer(1.0) == "ok"
        for name in ("control.db", "control.db-wal", "control.db-shm"):
            (sqlite_store / name).unlink(missing_ok=True)
        with pytest.raises(tracekit.Halted) as caught:
            transfer(2.0)
    assert caught.value.level == "store"
    assert body == [1.0]


# -- 7. secrets never reach the control store or the ledger -------------------------------------
SECRETS = (
    "sk-live0123456789abcdefXYZ",  # an API key pattern
    "hunter2-Pa55word-quux",  # a password, by assignment
    "plain-credential-under-api-key-0042",  # only its key name says it is secret
    "AKIAABCDEFGHIJKLMNOP",  # an AWS access key id
    "eyJhbGciOiJIUzI1NiJ9bearerpart",  # a bearer token
    "tok-in-destination-9f8e7d",  # a token in a destination URL
)


def _scan(data: bytes, where: str) -> None:
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret!r} leaked into {where}"


def test_secrets_never_reach_control_store_or_ledger(ledger_store: Path,
                                                     backend: RedisServer | None) -> None:
    @tracekit.tool(writes=True,
                   destination=lambda **kw: f"https://api.example.com/hook?token={SECRETS[5]}")
    def create_key(name: str) -> dict[str, Any]:
        return {"name": name, "api_key": SECRETS[2], "note": f"use {SECRETS[0]}",
                "auth": f"Bearer {SECRETS[4]}", "aws": SECRETS[3]}

    @tracekit.tool(writes=True, retry_on=(TimeoutError,))
    def login(user: str) -> str:
        raise ValueError(f"rejected password={SECRETS[1]} key {SECRETS[0]} aws {SECRETS[3]}")

    @tracekit.tool(writes=True, retry_on=(TimeoutError,))
    def rotate(user: str) -> str:
        raise TimeoutError(f"timed out; api_key={SECRETS[2]} Bearer {SECRETS[4]}")

    with tracekit.run(tenant="acme"):
        first = create_key("ci")
        assert first["api_key"] == SECRETS[2]  # the caller gets the real result
        create_key("ci")  # the duplicate: the stored result is replayed into the ledger
        for _ in range(2):
            with pytest.raises((ValueError, ReplayedFailure)):
                login("root")
        with pytest.raises(TimeoutError):
            rotate("root")
    assert statuses(ledger_store, "ledger_history") == {
        "reserved": 3, "fired": 1, "failed": 2, "suppressed_duplicate": 2}
    # the ledger through SQL: every text column of every row
    for row in sql(ledger_store, "SELECT * FROM ledger_history"):
        _scan(repr(row).encode(), "ledger_history")
    tracekit.shutdown()

    control_files = sorted(ledger_store.glob("control.db*"))
    ledger_files = sorted(p for p in ledger_store.rglob("*")
                          if p.is_file() and ("ledger" in p.name or "ledger" in p.parts))
    assert ledger_files, "no ledger files on disk"
    if backend is None:
        assert control_files, "no control.db"
    for path in control_files + ledger_files:
        _scan(path.read_bytes(), str(path))
    for path in ledger_files:  # Parquet is compressed: scan the decoded rows too
        if path.suffix == ".parquet":
            _scan(repr(pq.read_table(path).to_pylist()).encode(), str(path))
    if backend is not None:
        _scan(backend.dump(), "redis")
    if backend is None:
        con = sqlite3.connect(ledger_store / "control.db")
        dump = "\n".join(con.iterdump())
        con.close()
        _scan(dump.encode(), "control.db (dumped)")

