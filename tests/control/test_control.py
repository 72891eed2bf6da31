"""The control store's own tests beside the contract suite (``test_contract.py``): flags,
counters, documents and trips on every backend (SQLite in tmp_path, a private Redis, memory);
versions, broken and hung stores and adds from many processes on the two shared backends.

Redis tests start their own ``redis-server`` on a free loopback port and kill it at teardown;
the shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _redis import RedisServer

from tracekit._control.backends import open_control
from tracekit._control.base import CONTROL_VERSION, flag_key
from tracekit._control.memory import MemoryControl
from tracekit._control.redis import RedisControl
from tracekit._control.sqlite import SQLiteControl
from tracekit.errors import ControlError

redis = pytest.importorskip("redis")

CHILD = Path(__file__).parent.parent / "guard_children" / "agent.py"


# -- the backends, behind one fixture --------------------------------------------------------------
@dataclass
class Backend:
    name: str
    spec: str
    control: Any
    tmp: Path
    server: RedisServer | None = None

    @property
    def shared(self) -> bool:
        """Another handle sees this one's state (SQLite, Redis; not memory)."""
        return self.name != "memory"

    def open(self) -> Any:
        return open_control(self.spec, self.tmp)

    def break_it(self) -> None:
        """Take the store away: remove the SQLite file, or kill redis-server."""
        if self.server is not None:
            self.server.kill()
        else:
            os.remove(self.tmp / "control.db")

    def set_version(self, version: str) -> None:
        if self.server is not None:
            client = redis.Redis.from_url(self.spec)
            client.set("tracekit:version", version)
            client.close()
        else:
            con = sqlite3.connect(self.tmp / "control.db")
            with con:
                con.execute("UPDATE meta SET value = ? WHERE name = 'version'", (version,))
            con.close()


def _made(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> Backend:
    if name == "sqlite":
        control: Any = SQLiteControl(tmp_path / "control.db")
        return Backend("sqlite", f"sqlite:{tmp_path / 'control.db'}", control, tmp_path)
    if name == "memory":
        return Backend("memory", MemoryControl.url, MemoryControl(), tmp_path)
    server = request.getfixturevalue("redis_server")
    return Backend("redis", server.url, RedisControl(server.url), tmp_path, server)


@pytest.fixture(params=["sqlite", "redis", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every backend."""
    made = _made(request, request.param, tmp_path)
    yield made
    with contextlib.suppress(Exception):
        made.control.close()


@pytest.fixture(params=["sqlite", "redis"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The backends many processes share (a file, a server): they can be broken, versioned,
    reopened."""
    made = _made(request, request.param, tmp_path)
    yield made
    with contextlib.suppress(Exception):
        made.control.close()


# -- flags -----------------------------------------------------------------------------------------
def test_flags_set_clear_list_keep_their_info(backend: Backend) -> None:
    control = backend.control
    assert control.flags() == {}
    info_run = {"reason": "runaway refunds ✓", "by": "oncall", "at": 1700000000.5,
                "nested": {"signal": "repeats", "value": 4}}
    info_global = {"reason": "incident 42", "by": "alice", "at": 1700000001.0}
    control.set_flag("halt:run:r1", info_run)
    control.set_flag("halt:global", info_global)
    control.set_flag("freeze:tool:refund", {"reason": "bad deploy"})
    assert control.flags() == {"halt:run:r1": info_run, "halt:global": info_global,
                               "freeze:tool:refund": {"reason": "bad deploy"}}
    # setting again replaces the info
    control.set_flag("halt:global", {"reason": "incident 43"})
    assert control.flags()["halt:global"] == {"reason": "incident 43"}
    assert control.clear_flag("halt:global") is True
    assert control.clear_flag("halt:global") is False
    assert control.clear_flag("halt:never-set") is False
    assert control.flags() == {"halt:run:r1": info_run,
                               "freeze:tool:refund": {"reason": "bad deploy"}}
    # a second handle on the same store sees the same flags (memory: a new store, empty)
    other = backend.open()
    try:
        assert other.flags() == (control.flags() if backend.shared else {})
    finally:
        other.close()


# -- counters ----------------------------------------------------------------------------------
def test_counters_add_and_total_by_bucket(backend: Backend) -> None:
    control = backend.control
    control.add("spend:acme", 9, 100.0)
    control.add("spend:acme", 10, 1.5)
    control.add("spend:acme", 10, 2.0)
    control.add("spend:acme", 11, 0.25)
    control.add("spend:globex", 11, 7.0)
    assert control.total("spend:acme", 10) == pytest.approx(3.75)  # only buckets >= 10
    assert control.total("spend:acme", 11) == pytest.approx(0.25)
    assert control.total("spend:acme", 9) == pytest.approx(103.75)
    assert control.total("spend:acme", 0) == pytest.approx(103.75)
    assert control.total("spend:acme", 12) == 0.0
    assert control.total("spend:globex", 0) == pytest.approx(7.0)
    assert control.total("spend:nobody", 0) == 0.0


# -- docs ------------------------------------------------------------------------------------------
def test_put_get_docs(backend: Backend) -> None:
    control = backend.control
    assert control.get("run:r1") is None
    doc = {"steps": 3, "cost": 0.75, "calls": [1.0, 2.5], "tenant": "acme", "ok": True}
    control.put("run:r1", doc)
    assert control.get("run:r1") == doc
    control.put("run:r1", {"steps": 4})
    assert control.get("run:r1") == {"steps": 4}
    assert control.get("run:r2") is None


# -- trips -----------------------------------------------------------------------------------------
def test_trips_newest_first_with_limit(backend: Backend) -> None:
    control = backend.control
    assert control.trips() == []
    for i in range(5):
        control.log_trip({"key": f"halt:run:r{i}", "signal": "steps", "value": i})
    assert [t["key"] for t in control.trips()] == [f"halt:run:r{i}" for i in (4, 3, 2, 1, 0)]
    assert control.trips(limit=2) == [
        {"key": "halt:run:r4", "signal": "steps", "value": 4},
        {"key": "halt:run:r3", "signal": "steps", "value": 3},
    ]


# -- versions --------------------------------------------------------------------------------------
def test_a_store_of_another_version_is_refused_loudly(shared_backend: Backend) -> None:
    shared_backend.control.set_flag("halt:global", {"reason": "x"})
    shared_backend.set_version("99")
    with pytest.raises(ControlError, match="99") as info:
        shared_backend.open()
    assert "version" in str(info.value)
    assert str(CONTROL_VERSION) in str(info.value)


def test_a_fresh_store_is_stamped_with_this_version(shared_backend: Backend) -> None:
    shared_backend.control.close()
    shared_backend.control = shared_backend.open()  # reopening a store of this version is fine
    assert shared_backend.control.flags() == {}


# -- errors surface as ControlError ----------------------------------------------------------------
OPERATIONS = [
    ("set_flag", ("halt:global", {"reason": "x"})),
    ("clear_flag", ("halt:global",)),
    ("flags", ()),
    ("add", ("spend:acme", 1, 1.0)),
    ("total", ("spend:acme", 0)),
    ("put", ("run:r1", {"steps": 1})),
    ("get", ("run:r1",)),
    ("log_trip", ({"key": "halt:global"},)),
    ("trips", ()),
]


def test_a_broken_store_raises_control_error_within_the_timeout(shared_backend: Backend) -> None:
    control = shared_backend.control
    control.set_flag("halt:run:r1", {"reason": "x"})  # the store worked
    shared_backend.break_it()
    for name, args in OPERATIONS:
        started = time.monotonic()
        with pytest.raises(ControlError):
            getattr(control, name)(*args)
        assert time.monotonic() - started < 2.0, name  # 0.25 s timeout, generous bound
    if shared_backend.server is not None:  # (a removed SQLite file is simply a new, empty store)
        with pytest.raises(ControlError):
            shared_backend.open()


def test_a_hung_redis_raises_control_error_within_the_timeout(
    redis_server: RedisServer,
) -> None:
    control = RedisControl(redis_server.url, timeout_s=0.25)
    assert control.flags() == {}
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)  # alive, but answers nothing
    try:
        for name, args in OPERATIONS[:3]:
            started = time.monotonic()
            with pytest.raises(ControlError):
                getattr(control, name)(*args)
            assert time.monotonic() - started < 2.0, name
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
        control.close()


def test_sqlite_store_in_a_missing_folder_is_a_control_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="does not exist"):
        SQLiteControl(tmp_path / "nope" / "control.db")


def test_open_control_specs(tmp_path: Path) -> None:
    default = open_control(None, tmp_path / "root")
    assert isinstance(default, SQLiteControl)
    assert default.path == tmp_path / "root" / "control.db"
    default.close()
    named = open_control(f"sqlite:{tmp_path / 'other.db'}", tmp_path)
    assert isinstance(named, SQLiteControl) and named.path == tmp_path / "other.db"
    named.close()
    with pytest.raises(ValueError, match="mongodb"):
        open_control("mongodb://x", tmp_path)


# -- many processes at once ----------------------------------------------------------------------
PROCESSES = 4
ADDS = 150


def test_concurrent_adds_from_four_processes_sum_exactly(shared_backend: Backend) -> None:
    go = shared_backend.tmp / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "add", shared_backend.spec, "spend:acme", str(ADDS), "0.5",
             str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=shared_backend.tmp,
        )
        for _ in range(PROCESSES)
    ]
    time.sleep(0.3)
    go.touch()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"done": ADDS}
    # 0.5 is exact in binary: the sum must be exact, every add counted once
    assert shared_backend.control.total("spend:acme", 0) == PROCESSES * ADDS * 0.5
    assert shared_backend.control.total("spend:acme", 2) == PROCESSES * (ADDS // 3) * 0.5


# -- flag keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("level", "target", "key"), [
    ("global", None, "halt:global"),
    ("global", "ignored", "halt:global"),
    ("tenant", "acme", "halt:tenant:acme"),
    ("release", "3f2a9c", "halt:release:3f2a9c"),
    ("run", "run_1", "halt:run:run_1"),
    ("tool", "refund", "freeze:tool:refund"),
])
def test_flag_key(level: str, target: str | None, key: str) -> None:
    assert flag_key(level, target) == key


@pytest.mark.parametrize(("level", "target", "match"), [
    ("fleet", None, "unknown halt level 'fleet'"),
    ("store", "x", "unknown halt level"),
    ("tenant", None, "needs its name"),
    ("run", "", "needs its name"),
    ("tool", None, "needs its name"),
])
def test_flag_key_rejects(level: str, target: str | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        flag_key(level, target)
