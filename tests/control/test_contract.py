"""The control store contract: every method of ``ControlStore``, one suite, three backends.

Each test runs on SQLite (a file in tmp_path), on Redis (one private ``redis-server`` per module,
started and killed here, a fresh key prefix per test; the shared Redis on 6379 is never touched)
and in memory. The last tests go through the public API: a guarded run's saved state survives a
reopen of the store, and a run resumed with the same run_id continues its budget.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _redis import RedisServer

import tracekit
from tracekit._base.vocab import HaltLevel
from tracekit._control.base import ControlStore, flag_key, level_of
from tracekit._control.memory import MemoryControl
from tracekit._control.redis import RedisControl
from tracekit._control.sqlite import SQLiteControl
from tracekit.errors import ControlError

redis = pytest.importorskip("redis")

BACKENDS = ["sqlite", "redis", "memory"]


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server of this module's own; each test keeps to its own key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@dataclass
class Backend:
    """A backend under test: ``control`` is the handle; ``reopen()`` a new handle on the same
    state (for memory: a new, empty store, since nothing is shared)."""

    name: str
    control: ControlStore
    reopen: Callable[[], ControlStore]
    persists: bool


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, private_redis: RedisServer
) -> Iterator[Backend]:
    opened: list[ControlStore] = []

    def track(control: ControlStore) -> ControlStore:
        opened.append(control)
        return control

    if request.param == "sqlite":
        path = tmp_path / "control.db"

        def reopen() -> ControlStore:
            return track(SQLiteControl(path))
    elif request.param == "redis":
        prefix = f"contract:{uuid.uuid4().hex}:"

        def reopen() -> ControlStore:
            return track(RedisControl(private_redis.url, prefix=prefix))
    else:

        def reopen() -> ControlStore:
            return track(MemoryControl())

    yield Backend(request.param, reopen(), reopen, request.param != "memory")
    for control in opened:
        with contextlib.suppress(Exception):
            control.close()


# -- flags -----------------------------------------------------------------------------------
INFO_RUN = {
    "reason": "runaway refunds ✓ — 退款",
    "by": "oncall",
    "at": 1700000000.5,
    "nested": {"signal": "repeats", "value": 4, "window": [1.5, 2.25, None], "ok": True},
    "empty": {},
}


def test_flags_set_clear_round_trip(backend: Backend) -> None:
    control = backend.control
    assert control.flags() == {}
    control.set_flag("halt:run:r1", INFO_RUN)
    control.set_flag("halt:global", {"reason": "incident 42", "by": "alice", "at": 1.0})
    control.set_flag("freeze:tool:refund", {"reason": "bad deploy"})
    assert control.flags() == {
        "halt:run:r1": INFO_RUN,
        "halt:global": {"reason": "incident 42", "by": "alice", "at": 1.0},
        "freeze:tool:refund": {"reason": "bad deploy"},
    }
    control.set_flag("halt:global", {"reason": "incident 43"})  # set again: replaced whole
    assert control.flags()["halt:global"] == {"reason": "incident 43"}
    assert control.clear_flag("halt:global") is True
    assert control.clear_flag("halt:global") is False  # already cleared
    assert control.clear_flag("halt:tenant:never-set") is False
    assert control.flags() == {
        "halt:run:r1": INFO_RUN,
        "freeze:tool:refund": {"reason": "bad deploy"},
    }
    assert control.clear_flag("halt:run:r1") is True
    assert control.clear_flag("freeze:tool:refund") is True
    assert control.flags() == {}


def test_flag_info_is_kept_whole_as_json(backend: Backend) -> None:
    """What comes back is the JSON of what went in, on every backend: a later change to the
    caller's dict (or to a dict read back) changes nothing in the store; tuples read back as
    lists and keys as strings."""
    control = backend.control
    info: dict[str, Any] = {"reason": "x", "nested": {"n": 1}, "pair": (1, 2), "ids": {7: "a"}}
    control.set_flag("halt:global", info)
    info["nested"]["n"] = 99
    info["reason"] = "changed"
    read = control.flags()
    assert read == {"halt:global": {"reason": "x", "nested": {"n": 1}, "pair": [1, 2],
                                    "ids": {"7": "a"}}}
    read["halt:global"]["nested"]["n"] = -1
    assert control.flags()["halt:global"]["nested"] == {"n": 1}


@pytest.mark.parametrize(("level", "target", "key"), [
    (HaltLevel.GLOBAL, None, "halt:global"),
    (HaltLevel.TENANT, "acme", "halt:tenant:acme"),
    (HaltLevel.RELEASE, "3f2a9c", "halt:release:3f2a9c"),
    (HaltLevel.RUN, "run_1", "halt:run:run_1"),
    (HaltLevel.TOOL, "refund", "freeze:tool:refund"),
])
def test_flag_key_levels_are_separate_flags(
    backend: Backend, level: str, target: str | None, key: str
) -> None:
    control = backend.control
    assert flag_key(level, target) == key
    assert level_of(key) == level
    every = {
        flag_key(HaltLevel.GLOBAL),
        flag_key(HaltLevel.TENANT, "acme"),
        flag_key(HaltLevel.RELEASE, "3f2a9c"),
        flag_key(HaltLevel.RUN, "run_1"),
        flag_key(HaltLevel.TOOL, "refund"),
    }
    assert len(every) == 5
    for each in sorted(every):
        control.set_flag(each, {"reason": each})
    assert control.clear_flag(key) is True
    assert set(control.flags()) == every - {key}  # clearing one level leaves the others
    assert all(info == {"reason": k} for k, info in control.flags().items())


# -- trips -----------------------------------------------------------------------------------
def test_trips_newest_first_and_limit_honoured(backend: Backend) -> None:
    control = backend.control
    assert control.trips() == []
    for i in range(25):
        control.log_trip({"key": f"halt:run:r{i}", "signal": "steps", "value": i, "at": i + 0.5})
    newest_first = [{"key": f"halt:run:r{i}", "signal": "steps", "value": i, "at": i + 0.5}
                    for i in reversed(range(25))]
    assert control.trips() == newest_first[:20]  # the default limit
    assert control.trips(limit=3) == newest_first[:3]
    assert control.trips(limit=1) == newest_first[:1]
    assert control.trips(limit=100) == newest_first
    assert control.trips(limit=0) == []
    assert control.trips(limit=-1) == []


def test_trips_keep_the_newest_thousand(backend: Backend) -> None:
    control = backend.control
    for i in range(1005):
        control.log_trip({"i": i})
    kept = control.trips(limit=5000)
    assert len(kept) == 1000
    assert kept[0] == {"i": 1004} and kept[-1] == {"i": 5}


# -- counters and windows ------------------------------------------------------------------------
def test_add_accumulates_per_bucket(backend: Backend) -> None:
    control = backend.control
    control.add("spend:acme", 10, 1.5)
    control.add("spend:acme", 10, 2.0)
    control.add("spend:acme", 10, 0.25, ttl_s=3600)
    control.add("spend:acme", 11, 4.0)
    assert control.total("spend:acme", 10, 10) == 3.75  # halves and quarters: exact
    assert control.total("spend:acme", 11, 11) == 4.0
    assert control.total("spend:acme", 12, 12) == 0.0
    assert isinstance(control.total("spend:acme", 10, 10), float)


def test_total_sums_exactly_the_buckets_in_the_window(backend: Backend) -> None:
    control = backend.control
    amounts = {b: 2.0 ** (b % 7) / 4 for b in range(-3, 16)}  # distinct powers of two: exact
    for bucket, amount in amounts.items():
        control.add("spend:acme", bucket, amount)

    def expected(since: int, until: int | None) -> float:
        return sum(a for b, a in amounts.items() if since <= b and (until is None or b <= until))

    for since, until in [(5, 9), (5, 5), (-3, 15), (-10, 100), (0, 0), (14, 20), (16, 30),
                         (9, 5), (-3, -1), (3, None), (15, None), (16, None), (-100, None)]:
        assert control.total("spend:acme", since, until) == expected(since, until), (since, until)
    assert control.total("spend:acme", 0) == expected(0, None)  # until defaults to None


def test_a_wide_window_is_read_quickly(backend: Backend) -> None:
    """A window millions of buckets wide costs what its stored buckets cost, not its width.
    (Redis read one key per bucket of the window: 3 M buckets took 9 s, 10**10 ran out of
    memory; the span here is kept small enough that a regression fails, not crashes.)"""
    control = backend.control
    top = 3_000_000
    control.add("spend:acme", 7, 1.0)
    control.add("spend:acme", top, 2.0)
    started = time.monotonic()
    assert control.total("spend:acme", 0, top) == 3.0
    assert control.total("spend:acme", 8, top) == 2.0
    assert control.total("spend:acme", 0, top - 1) == 1.0
    assert control.total("spend:acme", -top, 6) == 0.0
    assert time.monotonic() - started < 2.0


def test_counters_do_not_mix(backend: Backend) -> None:
    """Names that are prefixes of each other, or hold glob characters, are separate counters."""
    control = backend.control
    names = {"spend": 1.0, "spend:acme": 2.0, "spend:acme:eu": 4.0, "spend:acm": 8.0,
             "spend:*": 16.0, "spend:[ab]": 32.0, "spend:a": 64.0, "spend:b": 128.0,
             "spend:acme:3": 256.0}
    for name, amount in names.items():
        control.add(name, 3, amount)
        control.add(name, 4, amount)
    for name, amount in names.items():
        assert control.total(name, 0) == 2 * amount, name
        assert control.total(name, 3, None) == 2 * amount, name
        assert control.total(name, 0, 3) == amount, name
        assert control.total(name, 4, 4) == amount, name
    assert control.total("nobody", 0) == 0.0
    assert control.total("spend:ac", 0) == 0.0


def test_float_amounts(backend: Backend) -> None:
    control = backend.control
    for _ in range(10):
        control.add("cost:r1", 1, 0.1)
    control.add("cost:r1", 2, 1e-9)
    control.add("cost:r1", 2, -0.35)
    control.add("cost:r1", 3, 3)  # an int amount is fine too
    assert control.total("cost:r1", 1, 1) == pytest.approx(1.0, abs=1e-9)
    assert control.total("cost:r1", 2, 2) == pytest.approx(-0.35 + 1e-9, abs=1e-12)
    assert control.total("cost:r1", 0) == pytest.approx(3.65 + 1e-9, abs=1e-9)
    assert control.total("cost:r1", 3, 3) == 3.0


# -- documents -----------------------------------------------------------------------------------
def test_documents_put_get_overwrite_missing(backend: Backend) -> None:
    control = backend.control
    assert control.get("run:r1") is None
    doc = {"steps": 3, "cost": 0.75, "calls": [1.0, 2.5], "tenant": "acme ✓", "ok": True,
           "none": None, "nested": {"a": [{"b": 1}]}}
    control.put("run:r1", doc)
    assert control.get("run:r1") == doc
    control.put("run:r1", {"steps": 4})  # overwritten whole, not merged
    assert control.get("run:r1") == {"steps": 4}
    assert control.get("run:r2") is None
    control.put("run:r2", {})
    assert control.get("run:r2") == {}
    assert control.get("run:r1") == {"steps": 4}


def test_documents_are_copies(backend: Backend) -> None:
    control = backend.control
    doc: dict[str, Any] = {"calls": [1, 2], "pair": (3, 4)}
    control.put("run:r1", doc)
    doc["calls"].append(3)
    read = control.get("run:r1")
    assert read == {"calls": [1, 2], "pair": [3, 4]}
    assert read is not None
    read["calls"].append(9)
    assert control.get("run:r1") == {"calls": [1, 2], "pair": [3, 4]}


def test_documents_flags_and_idempotency_keys_are_separate(backend: Backend) -> None:
    control = backend.control
    control.put("k", {"doc": 1})
    control.set_flag("k", {"flag": 2})
    assert control.reserve("k", {"idem": 3}) is None  # not taken by the doc or the flag
    assert control.get("k") == {"doc": 1}
    assert control.flags() == {"k": {"flag": 2}}
    assert control.peek("k") == {"idem": 3}


# -- leases --------------------------------------------------------------------------------------
def test_leases_up_to_the_limit_renew_expire_and_release(backend: Backend) -> None:
    control = backend.control
    assert control.acquire("runs:acme", "a", 2, expires=100.0, now=0.0) is True
    assert control.acquire("runs:acme", "b", 2, expires=100.0, now=0.0) is True
    assert control.acquire("runs:acme", "c", 2, expires=100.0, now=1.0) is False  # full
    assert control.acquire("runs:globex", "c", 2, expires=100.0, now=1.0) is True  # other name
    # renewing a holder always succeeds, even full, and moves its expiry to 300
    assert control.acquire("runs:acme", "a", 2, expires=300.0, now=50.0) is True
    assert control.acquire("runs:acme", "c", 2, expires=400.0, now=100.0) is False  # b holds
    # at 150 b's lease (100) has expired, a's (300) has not: c takes b's slot, b is refused
    assert control.acquire("runs:acme", "c", 2, expires=400.0, now=150.0) is True
    assert control.acquire("runs:acme", "b", 2, expires=400.0, now=150.0) is False
    # releasing frees a slot; releasing a holder (or a name) that holds nothing is harmless
    control.release("runs:acme", "c")
    control.release("runs:acme", "c")
    control.release("runs:acme", "nobody")
    control.release("runs:never", "a")
    assert control.acquire("runs:acme", "b", 2, expires=400.0, now=150.0) is True
    assert control.acquire("runs:acme", "d", 2, expires=400.0, now=150.0) is False
    # past every expiry, every slot is free again
    assert control.acquire("runs:acme", "d", 2, expires=1000.0, now=500.0) is True
    assert control.acquire("runs:acme", "e", 2, expires=1000.0, now=500.0) is True
    assert control.acquire("runs:acme", "f", 2, expires=1000.0, now=500.0) is False


def test_a_lease_holds_until_its_expiry_inclusive(backend: Backend) -> None:
    control = backend.control
    assert control.acquire("runs:acme", "a", 1, expires=10.0, now=0.0) is True
    assert control.acquire("runs:acme", "b", 1, expires=20.0, now=10.0) is False  # a at 10
    assert control.acquire("runs:acme", "b", 1, expires=20.0, now=10.5) is True  # a expired
    assert control.acquire("runs:acme", "a", 1, expires=30.0, now=10.5) is False


def test_lease_limits(backend: Backend) -> None:
    control = backend.control
    assert control.acquire("none", "a", 0, expires=10.0, now=0.0) is False
    assert all(control.acquire("five", f"h{i}", 5, expires=10.0, now=0.0) for i in range(5))
    assert control.acquire("five", "h5", 5, expires=10.0, now=0.0) is False
    # a lower limit refuses newcomers but never drops a holder that renews
    assert control.acquire("five", "h0", 1, expires=20.0, now=1.0) is True
    assert control.acquire("five", "h6", 6, expires=20.0, now=1.0) is True


# -- idempotency -------------------------------------------------------------------------------
RESERVED = {"entry_id": "fx_1", "request_hash": "h1", "status": "reserved", "at": 1.5}


def test_reserve_peek_settle(backend: Backend) -> None:
    control = backend.control
    assert control.peek("refund:42") is None
    assert control.reserve("refund:42", RESERVED) is None  # the first caller takes it
    second = {"entry_id": "fx_2", "request_hash": "h1", "status": "reserved", "at": 2.0}
    assert control.reserve("refund:42", second) == RESERVED  # the next sees the holder's doc
    assert control.reserve("refund:42", second) == RESERVED  # and keeps seeing it
    assert control.peek("refund:42") == RESERVED
    fired = {**RESERVED, "status": "fired", "result": '{"ok": true}'}
    control.settle("refund:42", fired)  # settle overwrites
    assert control.peek("refund:42") == fired
    assert control.reserve("refund:42", second) == fired
    control.settle("refund:43", {"status": "done"})  # settling a key nobody reserved takes it
    assert control.reserve("refund:43", RESERVED) == {"status": "done"}
    assert control.peek("refund:44") is None


def test_replace_failed_hands_a_failed_key_to_one_retry(backend: Backend) -> None:
    control = backend.control
    retry = {"entry_id": "fx_2", "request_hash": "h1", "status": "reserved"}
    assert control.replace_failed("nobody", "fx_1", retry) is False  # nothing held
    assert control.peek("nobody") is None
    assert control.reserve("refund:42", RESERVED) is None
    assert control.replace_failed("refund:42", "fx_1", retry) is False  # not failed: in flight
    control.settle("refund:42", {**RESERVED, "status": "fired"})
    assert control.replace_failed("refund:42", "fx_1", retry) is False  # fired: never retried
    failed = {**RESERVED, "status": "failed", "error": "Timeout", "retryable": True}
    control.settle("refund:42", failed)
    assert control.replace_failed("refund:42", "fx_9", retry) is False  # another attempt's id
    assert control.peek("refund:42") == failed
    assert control.replace_failed("refund:42", "fx_1", retry) is True
    assert control.peek("refund:42") == retry
    other = {"entry_id": "fx_3", "request_hash": "h1", "status": "reserved"}
    assert control.replace_failed("refund:42", "fx_1", other) is False  # only once
    assert control.peek("refund:42") == retry
    # the retry fails too: the next retry names the retry's entry_id, not the first one's
    control.settle("refund:42", {**retry, "status": "failed"})
    assert control.replace_failed("refund:42", "fx_1", other) is False
    assert control.replace_failed("refund:42", "fx_2", other) is True
    assert control.peek("refund:42") == other


def test_replace_failed_among_racing_retries_has_one_winner(backend: Backend) -> None:
    control = backend.control
    control.settle("refund:42", {**RESERVED, "status": "failed"})
    results = _race(backend, 8, lambda c, i: c.replace_failed(
        "refund:42", "fx_1", {"entry_id": f"fx_r{i}", "status": "reserved"}))
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1
    assert control.peek("refund:42") == {"entry_id": f"fx_r{winners[0]}", "status": "reserved"}


def test_concurrent_reserve_has_exactly_one_winner(backend: Backend) -> None:
    results = _race(backend, 8, lambda c, i: c.reserve("refund:42", {"entry_id": f"fx_{i}"}))
    winners = [i for i, held in results.items() if held is None]
    assert len(winners) == 1
    doc = {"entry_id": f"fx_{winners[0]}"}
    assert all(held == doc for i, held in results.items() if i != winners[0])
    assert backend.control.peek("refund:42") == doc


def test_concurrent_reserve_of_empty_docs_has_exactly_one_winner(backend: Backend) -> None:
    """Equal documents (``{}``) from every caller: still one winner, the rest see ``{}``."""
    results = _race(backend, 6, lambda c, i: c.reserve("k", {}))
    assert sorted(map(str, results.values())) == ["None"] + ["{}"] * 5


def _race(backend: Backend, n: int, call: Callable[[ControlStore, int], Any]) -> dict[int, Any]:
    """``call`` from ``n`` threads released at once; each thread has a handle of its own where
    the backend has more than one (SQLite, Redis), else they share the one store."""
    handles = [backend.reopen() if backend.persists else backend.control for _ in range(n)]
    barrier = threading.Barrier(n)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = call(handles[i], i)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(results) == n
    return results


# -- check_alive and close -------------------------------------------------------------------------
def test_check_alive_and_close(backend: Backend) -> None:
    control = backend.control
    control.check_alive()  # raises ControlError unless alive
    control.set_flag("halt:global", {"reason": "x"})
    control.put("run:r1", {"steps": 2})
    control.add("spend:acme", 1, 0.5)
    assert control.reserve("k", {"entry_id": "fx_1"}) is None
    assert control.acquire("runs:acme", "a", 1, expires=100.0, now=0.0) is True
    control.log_trip({"key": "halt:run:r1"})
    control.check_alive()  # raises ControlError unless alive
    control.close()
    control.close()  # closing twice is harmless
    again = backend.reopen()
    again.check_alive()
    if backend.persists:  # a new handle on the same store sees everything
        assert again.flags() == {"halt:global": {"reason": "x"}}
        assert again.get("run:r1") == {"steps": 2}
        assert again.total("spend:acme", 0) == 0.5
        assert again.reserve("k", {"entry_id": "fx_2"}) == {"entry_id": "fx_1"}
        assert again.acquire("runs:acme", "b", 1, expires=100.0, now=1.0) is False
        assert again.trips() == [{"key": "halt:run:r1"}]
    else:  # memory: one process, one store, nothing shared
        assert again.flags() == {} and again.get("run:r1") is None
        assert again.total("spend:acme", 0) == 0.0
        assert again.reserve("k", {"entry_id": "fx_2"}) is None
        assert again.acquire("runs:acme", "b", 1, expires=100.0, now=1.0) is True
        assert again.trips() == []


def test_check_alive_fails_on_a_broken_store(backend: Backend) -> None:
    """SQLite whose file is gone, Redis whose tracekit state is gone: ControlError (the guard
    fails closed on it). Memory cannot lose its state: even closed, it still answers."""
    control = backend.control
    control.check_alive()
    if isinstance(control, SQLiteControl):
        control.path.unlink()
    elif isinstance(control, RedisControl):
        control.client.delete(f"{control.prefix}version")
    else:
        assert isinstance(control, MemoryControl)
        control.set_flag("halt:global", {"reason": "x"})
        control.close()
        control.check_alive()
        assert control.flags() == {"halt:global": {"reason": "x"}}
        return
    with pytest.raises(ControlError):
        control.check_alive()
    if isinstance(control, RedisControl):  # and the guard's way of opening it refuses it
        with pytest.raises(ControlError, match="holds no tracekit state"):
            RedisControl(control.url, prefix=control.prefix, create=False)


# -- resume through the public API --------------------------------------------------------------
@pytest.fixture
def spec(
    request: pytest.FixtureRequest, private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str | None]:
    """The ``control=`` spec of each backend for ``tracekit.configure`` (None: the default,
    SQLite under the store); Redis is this module's server, emptied and initialised."""
    monkeypatch.delenv("TRACEKIT_CONTROL", raising=False)
    if request.param == "redis":
        client = redis.Redis.from_url(private_redis.url)
        client.flushall()  # the module's own server: the public API uses the default prefix
        client.close()
        private_redis.initialise()
    try:
        yield {"sqlite": None, "redis": private_redis.url, "memory": "memory:"}[request.param]
    finally:
        tracekit.shutdown()


@pytest.mark.parametrize("spec", BACKENDS, indirect=True)
def test_a_guarded_runs_saved_state_survives_a_reopen(spec: str | None, tmp_path: Path) -> None:
    root = tmp_path / "store"
    tracekit.configure(store=root, guard=tracekit.Guard(max_steps=10), control=spec)
    with tracekit.run(tenant="t", run_id="r1") as run:
        run.model_output("x", cost_usd=0.25)
        run.model_output("x", cost_usd=0.5)
    tracekit.shutdown()
    if spec is None:
        reopened: ControlStore = SQLiteControl(root / "control.db")
    elif spec.startswith("redis://"):
        reopened = RedisControl(spec, create=False)
    else:
        reopened = MemoryControl()
    try:
        saved = reopened.get("run:r1")
        if spec == "memory:":  # nothing outlives the process's store
            assert saved is None
            return
        assert saved is not None
        assert saved["steps"] == 2
        assert saved["tenant"] == "t"
        assert saved["cost"] == pytest.approx(0.75)
    finally:
        reopened.close()


@pytest.mark.parametrize("spec", BACKENDS, indirect=True)
def test_a_resumed_run_continues_its_budget(spec: str | None, tmp_path: Path) -> None:
    tracekit.configure(store=tmp_path / "store", guard=tracekit.Guard(max_steps=3), control=spec)
    with tracekit.run(tenant="t", run_id="r1") as run:
        run.model_output("x")
        run.model_output("x")
    assert run.step == 2
    done_in_second_block = 0
    with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="t", run_id="r1") as again:
        assert again.step == 2  # resumed where the first block stopped, not at 0
        for _ in range(3):
            again.model_output("x")
            done_in_second_block += 1
    assert info.value.signal == "steps"
    assert again.step == 4  # the total passed the bound of 3 ...
    assert done_in_second_block == 1  # ... after 2 steps in this block, below the bound alone
