"""The embedded control store: one SQLite file (WAL), shared by every process on the machine."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .base import CONTROL_VERSION, ControlError
from .breakglass import BreakGlass

__all__ = ["SQLiteControl"]

_KEEP_TRIPS = 1000  # the newest trips kept (as the Redis and memory backends keep)
#: stamped in the file's header (``PRAGMA application_id``): a file without it is not ours
APPLICATION_ID = 0x74726B31  # "trk1"
_MAGIC = b"SQLite format 3\x00"

_REPAIR = (
    "every guarded call is refused; `tracekit halt` still reaches every worker through "
    "the break-glass file beside it (see the README: a damaged control store)"
)

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


class _Headers:
    """One read-only descriptor per store file per process, to read its header raw.

    Closing *any* descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    own connections' included, so a descriptor is opened once per file and closed only after the
    last handle in the process on that file has closed its connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[int, int], list[int]] = {}  # identity -> [descriptor, handles]

    def hold(self, path: Path) -> tuple[int, int]:
        with self._lock:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino)
            entry = self._held.get(key)
            if entry is None:
                entry = self._held[key] = [os.open(path, os.O_RDONLY | os.O_CLOEXEC), 0]
            entry[1] += 1
            return key

    def read(self, key: tuple[int, int]) -> bytes:
        return os.pread(self._held[key][0], 100, 0)

    def release(self, key: tuple[int, int]) -> None:
        with self._lock:
            entry = self._held[key]
            entry[1] -= 1
            if entry[1] == 0:
                os.close(self._held.pop(key)[0])


_HEADERS = _Headers()


class SQLiteControl:
    """The embedded control store: one SQLite file, shared by every process on the machine."""

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 0.25) -> None:
        self.path = Path(path)
        self.url = f"sqlite:{self.path}"
        self.timeout_s = timeout_s
        self.break_glass = BreakGlass(self.path)
        self._lock = threading.Lock()
        self._closed = False
        self._identity = self._run(self._hold)
        try:
            self._con = self._run(self._open)
        except ControlError:
            _HEADERS.release(self._identity)
            raise
        # a store made before the stamp may keep running unstamped (its checkpoint blocked by
        # another process's reader); every store made now is stamped, and checked for it
        self._stamped = self._stamp() == APPLICATION_ID

    def _hold(self) -> tuple[int, int]:
        if not self.path.parent.is_dir():
            raise ControlError(f"control store folder {self.path.parent} does not exist")
        if not self.path.exists():
            self._create()
        return _HEADERS.hold(self.path)

    def _create(self) -> None:
        """Make the store whole beside its place and link it in: no process ever opens a half
        made store, so a store that is short or unstamped is damaged, never new."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            con.execute("INSERT INTO meta VALUES ('version', ?)", (str(CONTROL_VERSION),))
        finally:
            con.close()
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass  # another process made it first: this one opens theirs
        finally:
            tmp.unlink(missing_ok=True)

    def _file_identity(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_dev, st.st_ino

    def _open(self) -> sqlite3.Connection:
        self._verify_file(legacy=True)
        con = sqlite3.connect(
            self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
        )
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        self._check_version(con)
        if self._stamp() != APPLICATION_ID:  # made before the stamp: stamped now
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the stamp in the file itself
        return con

    def _check_version(self, con: sqlite3.Connection) -> None:
        try:
            row = con.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ControlError(f"control store {self.path} is damaged ({exc}): {_REPAIR}") from None
        if row is None:
            raise ControlError(f"control store {self.path} is damaged (no version): {_REPAIR}")
        if row[0] != str(CONTROL_VERSION):
            raise ControlError(
                f"{self.path} is control store version {row[0]}; this tracekit reads version "
                f"{CONTROL_VERSION}: upgrade tracekit"
            )

    def _stamp(self) -> int:
        header = _HEADERS.read(self._identity)
        return int.from_bytes(header[68:72], "big") if len(header) == 100 else -1

    def _verify_file(self, legacy: bool = False) -> None:
        """The file is an SQLite database stamped as tracekit's (checked on the file itself,
        not through SQLite's cache: truncated, overwritten or replaced, it is refused)."""
        header = _HEADERS.read(self._identity)
        if len(header) < 100 or not header.startswith(_MAGIC):
            what = "truncated" if len(header) < 100 else "its header is not SQLite's"
            raise ControlError(f"control store {self.path} is damaged ({what}): {_REPAIR}")
        stamp = int.from_bytes(header[68:72], "big")
        if stamp != APPLICATION_ID and not (legacy and stamp == 0):
            raise ControlError(
                f"control store {self.path} is damaged (not tracekit's: "
                f"application id {stamp:#x}): {_REPAIR}"
            )

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
            self._verify_file(legacy=not self._stamped)
            rows: list[Any] = self._con.execute(sql, tuple(params)).fetchall()
            return rows

        rows: list[Any] = self._run(go)
        return rows

    def check_alive(self) -> None:
        """Raise ControlError unless the store is there, undamaged and still tracekit's. The
        page cache is dropped first, so the reads after it (the flags) come from the file:
        pages overwritten behind SQLite's back read as damage, not as the cached flags."""
        self._exec("PRAGMA shrink_memory")
        rows = self._exec("SELECT value FROM meta WHERE name = 'version'")
        if not rows or rows[0][0] != str(CONTROL_VERSION):
            raise ControlError(f"control store {self.path} is damaged (no version): {_REPAIR}")

    def set_flag(self, key: str, info: dict[str, Any]) -> None:
        self._exec("INSERT OR REPLACE INTO flags VALUES (?, ?)", (key, json.dumps(info)))

    def clear_flag(self, key: str) -> bool:
        return bool(self._exec("DELETE FROM flags WHERE key = ? RETURNING key", (key,)))

    def flags(self) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self._exec("SELECT key, info FROM flags")}

    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None = None) -> None:
        self._exec(
            "INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT (name, bucket) "
            "DO UPDATE SET value = value + excluded.value",
            (counter, bucket, amount),
        )

    def total(self, counter: str, since_bucket: int, until_bucket: int | None = None) -> float:
        """The sum of the buckets in [since, until] (no upper bound when ``until`` is None)."""
        if until_bucket is None:
            rows = self._exec(
                "SELECT coalesce(sum(value), 0) FROM counters WHERE name = ? AND bucket >= ?",
                (counter, since_bucket),
            )
        else:
            rows = self._exec(
                "SELECT coalesce(sum(value), 0) FROM counters WHERE name = ? "
                "AND bucket >= ? AND bucket <= ?",
                (counter, since_bucket, until_bucket),
            )
        return float(rows[0][0])

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._exec("INSERT OR REPLACE INTO docs VALUES (?, ?)", (key, json.dumps(value)))

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT value FROM docs WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def log_trip(self, trip: dict[str, Any]) -> None:
        """Keep the trip; like the other backends, only the newest ``_KEEP_TRIPS`` are kept."""
        rows = self._exec("INSERT INTO trips (info) VALUES (?) RETURNING id", (json.dumps(trip),))
        self._exec("DELETE FROM trips WHERE id <= ?", (rows[0][0] - _KEEP_TRIPS,))

    def trips(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._exec("SELECT info FROM trips ORDER BY id DESC LIMIT ?", (max(limit, 0),))
        return [json.loads(r[0]) for r in rows]

    def acquire(self, name: str, holder: str, limit: int, expires: float, now: float) -> bool:
        """Take (or renew) one of ``limit`` slots of ``name`` until ``expires``; False if full."""

        def go() -> bool:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM leases WHERE name = ? AND expires < ?", (name, now))
                held = con.execute(
                    "SELECT 1 FROM leases WHERE name = ? AND holder = ?", (name, holder)
                ).fetchone()
                (count,) = con.execute(
                    "SELECT count(*) FROM leases WHERE name = ?", (name,)
                ).fetchone()
                ok = held is not None or count < limit
                if ok:
                    con.execute(
                        "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (name, holder, expires)
                    )
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
        taken = self._exec(
            "INSERT INTO idempotency VALUES (?, ?) ON CONFLICT (key) DO NOTHING RETURNING key",
            (key, json.dumps(doc)),
        )
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
        return bool(
            self._exec(
                "UPDATE idempotency SET doc = ? WHERE key = ? AND "
                "json_extract(doc, '$.entry_id') = ? AND json_extract(doc, '$.status') = 'failed' "
                "RETURNING key",
                (json.dumps(doc), key, entry_id),
            )
        )

    def close(self) -> None:
        with self._lock:
            self._con.close()
            if not self._closed:
                self._closed = True
                _HEADERS.release(self._identity)
