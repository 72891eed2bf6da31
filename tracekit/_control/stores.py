"""The control plane: halt flags, frozen tools, shared counters and trip history.

One small interface, two backends that pass the same test suite:

- ``SQLiteControl`` — ``control.db`` under the store root (the embedded default; WAL mode, safe
  across processes on one machine);
- ``RedisControl`` — ``redis://host:port/db`` for a fleet; every flag change is published so
  subscribers see a halt at once.

Flags are keyed ``halt:global``, ``halt:tenant:<t>``, ``halt:release:<id>``, ``halt:run:<id>`` and
``freeze:tool:<name>``; each carries who set it, when and why. Counters are summed per time bucket
(tenant spend per window, across every process). Every operation may raise ``ControlError``: the
guard turns that into a refusal (fail closed), never into a pass.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "CONTROL_VERSION",
    "ControlError",
    "ControlStore",
    "RedisControl",
    "SQLiteControl",
    "flag_key",
    "open_control",
]

#: version of the control store's layout; a store of another version is refused loudly
CONTROL_VERSION = 1
_LEVELS = ("global", "tenant", "release", "run", "tool")


class ControlError(RuntimeError):
    """The control store could not answer (down, locked, timed out, wrong version)."""


def flag_key(level: str, target: str | None = None) -> str:
    """The flag key of a halt (or, for level ``tool``, a freeze)."""
    if level not in _LEVELS:
        raise ValueError(f"unknown halt level {level!r}; use one of {', '.join(_LEVELS)}")
    if level == "global":
        return "halt:global"
    if not target:
        raise ValueError(f"halting a {level} needs its name")
    return f"freeze:tool:{target}" if level == "tool" else f"halt:{level}:{target}"


class ControlStore(Protocol):
    """What the guard needs from a control store."""

    url: str

    def check_alive(self) -> None: ...
    def set_flag(self, key: str, info: dict[str, Any]) -> None: ...
    def clear_flag(self, key: str) -> bool: ...
    def flags(self) -> dict[str, dict[str, Any]]: ...
    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None = None) -> None:
        ...
    def total(self, counter: str, since_bucket: int, until_bucket: int | None = None) -> float:
        ...
    def put(self, key: str, value: dict[str, Any]) -> None: ...
    def get(self, key: str) -> dict[str, Any] | None: ...
    def log_trip(self, trip: dict[str, Any]) -> None: ...
    def trips(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def acquire(self, name: str, holder: str, limit: int, expires: float, now: float) -> bool: ...
    def release(self, name: str, holder: str) -> None: ...
    def reserve(self, key: str, doc: dict[str, Any]) -> dict[str, Any] | None: ...
    def settle(self, key: str, doc: dict[str, Any]) -> None: ...
    def peek(self, key: str) -> dict[str, Any] | None: ...
    def replace_failed(self, key: str, entry_id: str, doc: dict[str, Any]) -> bool: ...
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS flags (key TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL, bucket INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (name, bucket)
);
CREATE TABLE IF NOT EXISTS docs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trips (id INTEGER PRIMARY KEY AUTOINCREMENT, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT NOT NULL, holder TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (name, holder)
);
"""


class SQLiteControl:
    """The embedded control store: one SQLite file, shared by every process on the machine."""

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 0.25) -> None:
        self.path = Path(path)
        self.url = f"sqlite:{self.path}"
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._con = self._run(self._open)
        self._identity = self._run(self._file_identity)

    def _file_identity(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_dev, st.st_ino

    def _open(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            raise ControlError(f"control store folder {self.path.parent} does not exist")
        con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None,
                              check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(_SCHEMA)
        con.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (str(CONTROL_VERSION),))
        (version,) = con.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
        if version != str(CONTROL_VERSION):
            raise ControlError(
                f"{self.path} is control store version {version}; this tracekit reads version "
                f"{CONTROL_VERSION}: upgrade tracekit"
            )
        return con

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            with self._lock:
                return fn(*args)
        except ControlError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise ControlError(f"control store {self.path}: {exc}") from exc

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        def go() -> list[Any]:
            try:  # removed or replaced under us: never answer from a ghost file
                same = self._file_identity() == self._identity
            except FileNotFoundError:
                same = False
            if not same:
                raise ControlError(f"control store {self.path} was removed or replaced")
            return self._con.execute(sql, tuple(params)).fetchall()
        return self._run(go)  # type: ignore[no-any-return]

    def check_alive(self) -> None:
        """Raise ControlError unless the store is there and still tracekit's."""
        self._exec("SELECT 1 FROM meta WHERE name = 'version'")

    def set_flag(self, key: str, info: dict[str, Any]) -> None:
        self._exec("INSERT OR REPLACE INTO flags VALUES (?, ?)", (key, json.dumps(info)))

    def clear_flag(self, key: str) -> bool:
        return bool(self._exec("DELETE FROM flags WHERE key = ? RETURNING key", (key,)))

    def flags(self) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self._exec("SELECT key, info FROM flags")}

    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None = None) -> None:
        self._exec(
            "INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT (name, bucket) "
            "DO UPDATE SET value = value + excluded.value", (counter, bucket, amount),
        )

    def total(self, counter: str, since_bucket: int, until_bucket: int | None = None) -> float:
        rows = self._exec("SELECT coalesce(sum(value), 0) FROM counters WHERE name = ? "
                          "AND bucket >= ? AND bucket <= ?",
                          (counter, since_bucket, 2**62 if until_bucket is None else until_bucket))
        return float(rows[0][0])

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._exec("INSERT OR REPLACE INTO docs VALUES (?, ?)", (key, json.dumps(value)))

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT value FROM docs WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def log_trip(self, trip: dict[str, Any]) -> None:
        self._exec("INSERT INTO trips (info) VALUES (?)", (json.dumps(trip),))

    def trips(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._exec("SELECT info FROM trips ORDER BY id DESC LIMIT ?", (limit,))
        return [json.loads(r[0]) for r in rows]

    def acquire(self, name: str, holder: str, limit: int, expires: float, now: float) -> bool:
        """Take (or renew) one of ``limit`` slots of ``name`` until ``expires``; False if full."""
        def go() -> bool:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM leases WHERE name = ? AND expires < ?", (name, now))
                held = con.execute("SELECT 1 FROM leases WHERE name = ? AND holder = ?",
                                   (name, holder)).fetchone()
                (count,) = con.execute("SELECT count(*) FROM leases WHERE name = ?",
                                       (name,)).fetchone()
                ok = held is not None or count < limit
                if ok:
                    con.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                                (name, holder, expires))
                con.execute("COMMIT")
                return ok
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return self._run(go)  # type: ignore[no-any-return]

    def release(self, name: str, holder: str) -> None:
        self._exec("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def reserve(self, key: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Take ``key`` atomically: None if this call took it, else the holder's document."""
        taken = self._exec("INSERT INTO idempotency VALUES (?, ?) ON CONFLICT (key) DO NOTHING "
                           "RETURNING key", (key, json.dumps(doc)))
        if taken:
            return None
        rows = self._exec("SELECT doc FROM idempotency WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def settle(self, key: str, doc: dict[str, Any]) -> None:
        """Record the outcome under ``key`` (or hand the key to a retry)."""
        self._exec("INSERT OR REPLACE INTO idempotency VALUES (?, ?)", (key, json.dumps(doc)))

    def peek(self, key: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT doc FROM idempotency WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def replace_failed(self, key: str, entry_id: str, doc: dict[str, Any]) -> bool:
        """Atomically hand a key whose attempt ``entry_id`` failed to a retry; False if another
        retry got there first."""
        return bool(self._exec(
            "UPDATE idempotency SET doc = ? WHERE key = ? AND "
            "json_extract(doc, '$.entry_id') = ? AND json_extract(doc, '$.status') = 'failed' "
            "RETURNING key", (json.dumps(doc), key, entry_id)))

    def close(self) -> None:
        with self._lock:
            self._con.close()


class RedisControl:
    """The fleet control store on Redis; flag changes are published on ``<prefix>flags``."""

    def __init__(self, url: str, timeout_s: float = 0.25, prefix: str = "tracekit:",
                 create: bool = True) -> None:
        try:
            import redis
        except ImportError:
            raise ControlError(
                "control=redis://... needs the redis client: pip install 'tracekit[redis]'"
            ) from None
        self.url = url
        self.prefix = prefix
        self.channel = f"{prefix}flags"
        self._redis_errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            decode_responses=True,
        )
        if create and self._run(self.client.setnx, f"{prefix}version", CONTROL_VERSION):
            return
        self.check_alive()

    def check_alive(self) -> None:
        """Raise ControlError unless the store answers and still holds tracekit's state.

        A Redis restarted without persistence comes back empty: every halt set before is
        gone. A guard never takes an empty store for a clean one (that would fail open): it
        refuses until an operator looks (``tracekit status --control URL`` re-initialises).
        """
        version = self._run(self.client.get, f"{self.prefix}version")
        if version is None:
            raise ControlError(
                f"{self.url} holds no tracekit state (new, or restarted without persistence: "
                "halts set before are gone); check and re-set halts, then initialise it with "
                f"`tracekit status --init --control {self.url}`"
            )
        self._check_version(version)

    def _check_version(self, version: Any) -> None:
        if str(version) != str(CONTROL_VERSION):
            raise ControlError(f"{self.url} holds control store version {version}; tracekit "
                               f"reads version {CONTROL_VERSION}: upgrade tracekit")

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._redis_errors as exc:
            raise ControlError(f"control store {self.url}: {exc}") from exc

    def set_flag(self, key: str, info: dict[str, Any]) -> None:
        pipe = self.client.pipeline()
        pipe.hset(f"{self.prefix}flags", key, json.dumps(info))
        pipe.publish(self.channel, key)
        self._run(pipe.execute)

    def clear_flag(self, key: str) -> bool:
        pipe = self.client.pipeline()
        pipe.hdel(f"{self.prefix}flags", key)
        pipe.publish(self.channel, key)
        removed, _ = self._run(pipe.execute)
        return bool(removed)

    def flags(self) -> dict[str, dict[str, Any]]:
        raw = self._run(self.client.hgetall, f"{self.prefix}flags")
        return {k: json.loads(v) for k, v in raw.items()}

    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None = None) -> None:
        """One key per bucket, so a window's total reads only its own buckets; a windowed
        counter's buckets expire (``ttl_s``) instead of piling up."""
        key = f"{self.prefix}counter:{counter}:{bucket}"
        pipe = self.client.pipeline()
        pipe.incrbyfloat(key, amount)
        if ttl_s is not None:
            pipe.expire(key, max(1, int(ttl_s)))
        self._run(pipe.execute)

    def total(self, counter: str, since_bucket: int, until_bucket: int | None = None) -> float:
        base = f"{self.prefix}counter:{counter}:"
        if until_bucket is not None:
            keys = [f"{base}{b}" for b in range(since_bucket, until_bucket + 1)]
            return sum(float(v) for v in self._run(self.client.mget, keys) if v is not None)
        keys = [k for k in self._run(list, self.client.scan_iter(f"{base}*", count=1000))
                if int(k[len(base):]) >= since_bucket]  # no upper bound: the slow way
        return sum(float(v) for v in self._run(self.client.mget, keys) if v) if keys else 0.0

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._run(self.client.set, f"{self.prefix}doc:{key}", json.dumps(value))

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._run(self.client.get, f"{self.prefix}doc:{key}")
        return None if raw is None else json.loads(raw)

    def log_trip(self, trip: dict[str, Any]) -> None:
        pipe = self.client.pipeline()
        pipe.lpush(f"{self.prefix}trips", json.dumps(trip))
        pipe.ltrim(f"{self.prefix}trips", 0, 999)
        self._run(pipe.execute)

    def trips(self, limit: int = 20) -> list[dict[str, Any]]:
        raw = self._run(self.client.lrange, f"{self.prefix}trips", 0, limit - 1)
        return [json.loads(r) for r in raw]

    _ACQUIRE = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
    if redis.call('ZSCORE', KEYS[1], ARGV[1]) or
       redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
        return 1
    end
    return 0
    """

    def acquire(self, name: str, holder: str, limit: int, expires: float, now: float) -> bool:
        """Take (or renew) one of ``limit`` slots of ``name`` until ``expires``; False if full."""
        key = f"{self.prefix}lease:{name}"
        got = self._run(self.client.eval, self._ACQUIRE, 1, key, holder, limit, expires, now)
        return bool(got)

    def release(self, name: str, holder: str) -> None:
        self._run(self.client.zrem, f"{self.prefix}lease:{name}", holder)

    def reserve(self, key: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Take ``key`` atomically (SET NX): None if this call took it, else the holder's doc."""
        full = f"{self.prefix}idem:{key}"
        if self._run(self.client.set, full, json.dumps(doc), None, None, True):
            return None
        raw = self._run(self.client.get, full)
        return None if raw is None else json.loads(raw)

    def settle(self, key: str, doc: dict[str, Any]) -> None:
        self._run(self.client.set, f"{self.prefix}idem:{key}", json.dumps(doc))

    def peek(self, key: str) -> dict[str, Any] | None:
        raw = self._run(self.client.get, f"{self.prefix}idem:{key}")
        return None if raw is None else json.loads(raw)

    _REPLACE_FAILED = """
    local raw = redis.call('GET', KEYS[1])
    if not raw then return 0 end
    local doc = cjson.decode(raw)
    if doc['entry_id'] == ARGV[1] and doc['status'] == 'failed' then
        redis.call('SET', KEYS[1], ARGV[2])
        return 1
    end
    return 0
    """

    def replace_failed(self, key: str, entry_id: str, doc: dict[str, Any]) -> bool:
        """Atomically hand a key whose attempt ``entry_id`` failed to a retry; False if another
        retry got there first."""
        got = self._run(self.client.eval, self._REPLACE_FAILED, 1, f"{self.prefix}idem:{key}",
                        entry_id, json.dumps(doc))
        return bool(got)

    def subscribe(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        """Call ``on_change`` whenever a flag changes, until ``stop`` is set (blocks)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            self._run(pubsub.subscribe, self.channel)
            while not stop.is_set():
                message = self._run(pubsub.get_message, True, 0.2)
                if message is not None:
                    on_change()
        finally:
            pubsub.close()

    def close(self) -> None:
        self.client.close()


def open_control(spec: str | None, store_root: Path, timeout_s: float = 0.25,
                 create: bool = True) -> ControlStore:
    """``sqlite`` (default: control.db under the store root), ``sqlite:PATH`` or ``redis://...``.

    ``create=False`` (the guard's way) refuses a Redis store that holds no tracekit state.
    """
    if spec is None or spec == "sqlite" or spec.startswith("sqlite:"):
        path = store_root / "control.db" if spec in (None, "sqlite") else Path(spec[7:])
        if not create and not path.exists():
            raise ControlError(f"no control store at {path}: check --store / TRACEKIT_HOME "
                               "(or pass --init to create one here)")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # a removed store's journal must not be replayed into a new one
                for orphan in (Path(f"{path}-wal"), Path(f"{path}-shm")):
                    orphan.unlink(missing_ok=True)
        return SQLiteControl(path, timeout_s)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisControl(spec, timeout_s, create=create)
    raise ValueError(f"control={spec!r} is not a control store; use 'sqlite' or 'redis://host:port/db'")


def now_info(reason: str, by: str | None = None, **extra: Any) -> dict[str, Any]:
    """The record kept with a flag: when, by whom, why."""
    who = by or os.environ.get("TRACEKIT_OPERATOR") or _login()
    return {"reason": reason, "by": who, "at": time.time(), **extra}


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
