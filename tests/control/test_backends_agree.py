"""The three control-store backends agree: a Hypothesis state machine applies one random
sequence of operations to a SQLite, a Redis and a memory store at once and, after every step,
asserts that all three gave the same answer (floats within a tolerance).

Redis is a private ``redis-server`` started and killed by this module (a fresh key prefix per
example); the shared Redis on 6379 is never touched. No example database is written.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from _redis import RedisServer
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tracekit._control.base import ControlStore
from tracekit._control.memory import MemoryControl
from tracekit._control.redis import RedisControl
from tracekit._control.sqlite import SQLiteControl

pytest.importorskip("redis")

# -- what the operations are made of: few names, so that operations meet on the same keys ------
TEXT = st.text(max_size=6)
KEYS = (
    st.sampled_from(["halt:global", "halt:tenant:acme", "freeze:tool:pay", "k", "k:1", "é"])
    | TEXT
)
COUNTERS = st.sampled_from(["spend", "spend:acme", "spend:acme:eu", "spend:*", "c[1]", "c?"])
BUCKETS = st.integers(-3, 12)
AMOUNTS = st.sampled_from([0.1, 0.5, 1.0, -0.25, 3]) | st.floats(
    -1000, 1000, allow_nan=False, allow_infinity=False
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
DOCS = st.dictionaries(TEXT, JSON, max_size=3)
ENTRY_IDS = st.sampled_from(["fx_1", "fx_2", "fx_é", "fx_😀", ""])
STATUSES = st.sampled_from(["reserved", "failed", "fired", "done", "FAILED"])
LEDGER_DOCS = st.fixed_dictionaries(
    {"entry_id": ENTRY_IDS | st.integers(0, 2), "status": STATUSES},
    optional={"request_hash": TEXT, "retryable": st.booleans(), "extra": JSON},
)
IDEM_DOCS = LEDGER_DOCS | DOCS
IDEM_KEYS = st.sampled_from(["refund:1", "refund:2", "pay:é"])
LEASES = st.sampled_from(["runs:acme", "runs:globex"])
HOLDERS = st.sampled_from(["r1", "r2", "r3", "r4"])


def _same(a: Any, b: Any) -> bool:
    """Equal, floats within a tolerance: sums of the same amounts in another order, and Redis
    keeps a counter in fixed point (INCRBYFLOAT: 17 decimals, so 1e-308 reads back as 0)."""
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):  # (outcome, answer)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


class Backends(RuleBasedStateMachine):
    """One operation, three stores; every answer compared."""

    redis_url: ClassVar[str] = ""
    workdir: ClassVar[Path] = Path()

    def __init__(self) -> None:
        super().__init__()
        example = uuid.uuid4().hex
        self.path = self.workdir / f"{example}.db"
        self.stores: dict[str, ControlStore] = {
            "sqlite": SQLiteControl(self.path),
            "redis": RedisControl(self.redis_url, prefix=f"agree:{example}:"),
            "memory": MemoryControl(),
        }
        self.now = 1000.0

    def teardown(self) -> None:
        for store in self.stores.values():
            with contextlib.suppress(Exception):
                store.close()
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            path.unlink(missing_ok=True)

    def call(self, method: str, *args: Any) -> Any:
        """``method(*args)`` on every store; all three must answer alike (or fail alike)."""
        answers: dict[str, Any] = {}
        for name, store in self.stores.items():
            try:
                answers[name] = ("ok", getattr(store, method)(*args))
            except Exception as exc:  # a backend that raises where another answers disagrees
                answers[name] = ("raised", type(exc).__name__, str(exc))
        first = answers["sqlite"]
        assert all(_same(answer, first) for answer in answers.values()), (
            f"{method}{args!r}: {answers}"
        )
        return first[1] if first[0] == "ok" else None

    # -- flags and trips --------------------------------------------------------------------
    @rule(key=KEYS, info=DOCS)
    def set_flag(self, key: str, info: dict[str, Any]) -> None:
        self.call("set_flag", key, info)

    @rule(key=KEYS)
    def clear_flag(self, key: str) -> None:
        self.call("clear_flag", key)

    @rule(trip=DOCS)
    def log_trip(self, trip: dict[str, Any]) -> None:
        self.call("log_trip", trip)

    @rule(limit=st.integers(-1, 30))
    def trips(self, limit: int) -> None:
        self.call("trips", limit)

    @invariant()
    def same_flags(self) -> None:
        self.call("flags")

    # -- counters ---------------------------------------------------------------------------
    @rule(
        counter=COUNTERS,
        bucket=BUCKETS,
        amount=AMOUNTS,
        ttl_s=st.none() | st.just(3600.0),
    )
    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None) -> None:
        self.call("add", counter, bucket, amount, ttl_s)

    @rule(
        counter=COUNTERS,
        since=st.integers(-5, 14) | st.just(-5000),
        until=st.none() | st.integers(-5, 14) | st.just(5000),
    )
    def total(self, counter: str, since: int, until: int | None) -> None:
        self.call("total", counter, since, until)

    # -- documents --------------------------------------------------------------------------
    @rule(key=KEYS, value=DOCS)
    def put(self, key: str, value: dict[str, Any]) -> None:
        self.call("put", key, value)

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        self.call("get", key)

    # -- leases, on a clock that only moves forward -----------------------------------------
    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule(
        name=LEASES,
        holder=HOLDERS,
        limit=st.integers(0, 3),
        ttl=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0]),
    )
    def acquire(self, name: str, holder: str, limit: int, ttl: float) -> None:
        self.call("acquire", name, holder, limit, self.now + ttl, self.now)

    @rule(
        name=LEASES,
        first=HOLDERS,
        second=HOLDERS,
        limit=st.sampled_from([1, 1, 2]),
        ttl=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
        dt=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    )
    def contend(
        self, name: str, first: str, second: str, limit: int, ttl: float, dt: float
    ) -> None:
        """Two holders for the last slot, the second one ``dt`` later: often right at the
        first one's expiry, where a lease still holds."""
        self.call("acquire", name, first, limit, self.now + ttl, self.now)
        self.now += dt
        self.call("acquire", name, second, limit, self.now + ttl, self.now)

    @rule(name=LEASES, holder=HOLDERS)
    def release(self, name: str, holder: str) -> None:
        self.call("release", name, holder)

    # -- idempotency ------------------------------------------------------------------------
    @rule(key=IDEM_KEYS, doc=IDEM_DOCS)
    def reserve(self, key: str, doc: dict[str, Any]) -> None:
        self.call("reserve", key, doc)

    @rule(key=IDEM_KEYS, doc=IDEM_DOCS)
    def settle(self, key: str, doc: dict[str, Any]) -> None:
        self.call("settle", key, doc)

    @rule(key=IDEM_KEYS)
    def peek(self, key: str) -> None:
        self.call("peek", key)

    @rule(key=IDEM_KEYS, entry_id=ENTRY_IDS, doc=IDEM_DOCS)
    def replace_failed(self, key: str, entry_id: str, doc: dict[str, Any]) -> None:
        self.call("replace_failed", key, entry_id, doc)

    @rule(key=IDEM_KEYS)
    def retry_what_failed(self, key: str) -> None:
        """A retry that names the held attempt, as the ledger does: mostly reaches the path
        where the key is handed over."""
        held = self.call("peek", key)
        entry_id = held.get("entry_id") if isinstance(held, dict) else None
        if isinstance(entry_id, str):
            self.call("settle", key, {**held, "status": "failed"})
            assert self.call("replace_failed", key, entry_id, {"entry_id": "fx_retry"}) is True
            assert self.call("replace_failed", key, entry_id, {"entry_id": "fx_late"}) is False


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("agree-redis"))
    server.start()
    yield server
    server.kill()


def test_sqlite_redis_and_memory_agree(private_redis: RedisServer, tmp_path: Path) -> None:
    Backends.redis_url = private_redis.url
    Backends.workdir = tmp_path
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        Backends,
        settings=settings(
            max_examples=60, stateful_step_count=40, deadline=None, database=None
        ),
    )
