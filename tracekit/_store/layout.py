"""The data plane on disk: write-ahead segments, compaction into hive-partitioned Parquet, recovery.

Layout under the store root (see DESIGN.md):

    events/date=YYYY-MM-DD/part-<writer>-<n>.parquet
    segments/<writer>-<n>.arrows      a live writer holds an exclusive flock on its segment

A segment is an Arrow IPC stream, appended one record batch per flush and fsynced. When a
segment is compacted its rows are sorted by (run_id, seq) and written per date partition to a
temporary file that is fsynced and renamed; the names depend only on the segment, so compacting
the same segment twice (a crash between rename and unlink) rewrites the same files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._base.schema import SORT_KEYS, TABLES
from ..errors import ForeignFile, TracekitWarning

__all__ = [
    "ForeignFile",
    "SegmentWriter",
    "Store",
    "TracekitWarning",
    "load_segment",
    "read_segment",
    "resolve_root",
    "split_by_day",
]

ROW_GROUP_SIZE = 64 * 1024
#: low-cardinality columns worth dictionary encoding (ids, payloads and times are not)
DICTIONARY_COLUMNS = frozenset({
    "run_id", "parent_run_id", "root_run_id", "tenant", "kind", "name", "status",
    "release_id", "model_version", "prompt_version", "tools_version", "args", "output", "attrs",
    "tool", "destination", "action", "currency",
})
_US_PER_DAY = 86_400_000_000
_PART_RE = re.compile(r"^part-[A-Za-z0-9_.-]+\.parquet$")
_SEGMENT_SUFFIX = ".arrows"


def resolve_root(store: str | os.PathLike[str] | None = None) -> Path:
    """The store root: ``store`` if given, else ``$TRACEKIT_HOME``, else ``./.tracekit``."""
    if store is not None and str(store) != "":
        return Path(store).expanduser()
    env = os.environ.get("TRACEKIT_HOME")
    return Path(env).expanduser() if env else Path(".tracekit")


def day_name(day: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since 1970-01-01, UTC)."""
    return (datetime(1970, 1, 1) + timedelta(days=day)).strftime("%Y-%m-%d")


def split_by_day(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """The table's rows grouped by the UTC day of ``ts``: [(YYYY-MM-DD, rows)]."""
    if table.num_rows == 0:
        return []
    days = pc.divide(pc.cast(table["ts"], pa.int64()), _US_PER_DAY)
    unique = pc.unique(days).to_pylist()
    if len(unique) == 1:  # the common case: no filtering, no copy
        return [(day_name(unique[0]), table)]
    return [(day_name(d), table.filter(pc.equal(days, d))) for d in sorted(unique)]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def skip_warning(path: Path, why: str) -> None:
    warnings.warn(
        f"skipped {path}: {why}; left in place for inspection", TracekitWarning, stacklevel=3
    )


@dataclass(frozen=True)
class Store:
    """Paths and file operations of one store root."""

    root: Path

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def segments_dir(self) -> Path:
        return self.root / "segments"

    def exists(self) -> bool:
        return self.events_dir.is_dir() or self.segments_dir.is_dir()


    def ensure(self) -> None:
        self.events_dir.mkdir(parents=True, exist_ok=True)
        self.segments_dir.mkdir(parents=True, exist_ok=True)

    def segment_path(self, writer: str, n: int, table: str = "events") -> Path:
        prefix = "" if table == "events" else f"{table}-"
        return self.segments_dir / f"{prefix}{writer}-{n:06d}{_SEGMENT_SUFFIX}"

    def segment_paths(self, table: str | None = None) -> list[Path]:
        """Segments on disk, of one table if named."""
        if not self.segments_dir.is_dir():
            return []
        return sorted(
            p for p in self.segments_dir.iterdir()
            if p.suffix == _SEGMENT_SUFFIX and (table is None or table_of(p) == table)
        )

    def parquet_paths(self, table: str = "events") -> list[Path]:
        """Every finished Parquet part of ``table`` (temporary files are not listed)."""
        base = self.root / table
        if not base.is_dir():
            return []
        return sorted(
            p for part in base.iterdir() if part.is_dir() and part.name.startswith("date=")
            for p in part.iterdir() if _PART_RE.match(p.name)
        )

    def readable_parquet_paths(self, table: str = "events") -> list[Path]:
        """Parquet parts whose footer reads; any other is named in one warning and skipped."""
        good = []
        for path in self.parquet_paths(table):
            try:
                meta = pq.read_metadata(path)
                if meta.schema.to_arrow_schema().get_field_index("run_id") < 0:
                    raise ValueError("not a tracekit table (no run_id column)")
            except Exception as exc:
                skip_warning(path, f"not a readable Parquet file ({_short(exc)})")
                continue
            good.append(path)
        return good

    def write_partitions(self, table: pa.Table, stem: str, kind: str = "events") -> list[Path]:
        """Sort ``table`` by (run_id, seq) and write one Parquet part per UTC date, atomically."""
        if table.num_rows == 0:
            return []
        table = table.sort_by(SORT_KEYS[kind])
        return [
            self._write_atomic(part, self.root / kind / f"date={day}", stem)
            for day, part in split_by_day(table)
        ]

    def _write_atomic(self, table: pa.Table, directory: Path, stem: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"part-{stem}.parquet"
        tmp = directory / f".tmp-part-{stem}-{os.getpid()}.parquet"
        with open(tmp, "wb") as fh:
            pq.write_table(
                table, fh, compression="zstd", row_group_size=ROW_GROUP_SIZE,
                use_dictionary=[c for c in table.column_names if c in DICTIONARY_COLUMNS],
                write_statistics=True,
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(directory)
        return final

    def compact_segment(self, path: Path) -> int | None:
        """Compact one segment into Parquet and remove it; returns the rows kept.

        The caller holds the segment's lock. A foreign file is left in place (None).
        """
        table = load_segment(path)
        if table is None:
            return None
        stem = path.name[: -len(_SEGMENT_SUFFIX)]
        kind = table_of(path)
        self._remove_temporaries(kind, f".tmp-part-{stem}-*.parquet")  # a compaction that died
        self.write_partitions(table, stem, kind)
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return table.num_rows

    def _remove_temporaries(self, kind: str, pattern: str) -> None:
        if (self.root / kind).is_dir():
            for tmp in (self.root / kind).glob(f"date=*/{pattern}"):
                tmp.unlink(missing_ok=True)

    def recover(self) -> tuple[int, int]:
        """Compact every segment whose writer is gone; returns (segments, rows) recovered."""
        from .._base.progressbar import Progress

        segments = rows = 0
        paths = list(self.segment_paths())
        with Progress(len(paths), "recovering segments") as bar:
            for path in paths:
                with _dead_segment(path) as dead:
                    kept = self.compact_segment(path) if dead else None
                if kept is not None:
                    rows += kept
                    segments += 1
                bar.advance(path.name)
        self._remove_dead_segment_temporaries()
        return segments, rows

    def _remove_dead_segment_temporaries(self) -> None:
        """A writer that died while creating a segment leaves a header-only temporary file."""
        if not self.segments_dir.is_dir():
            return
        for tmp in self.segments_dir.glob(f".*{_SEGMENT_SUFFIX}.tmp"):
            with _dead_segment(tmp) as dead:  # old, too: a new one may not be locked yet
                if dead and _age(tmp) > _TEMP_GRACE_S:
                    tmp.unlink(missing_ok=True)


_TEMP_GRACE_S = 60.0


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


class _dead_segment:
    """Context manager: True when this process got the segment's lock (its writer is gone)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> bool:
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        try:  # the same file still stands at that name (not already compacted and removed)
            return os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


def _iter_batches(path: Path) -> Iterator[pa.RecordBatch]:
    with pa.memory_map(str(path)) as source:  # append-only files: a mapping stays valid
        try:
            reader = pa.ipc.open_stream(source)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ForeignFile(f"not an Arrow stream ({_short(exc)})") from None
        if reader.schema.get_field_index("run_id") < 0:
            raise ForeignFile("not a tracekit segment (no run_id column)")
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError):  # a batch cut short by a crash: the tail is lost
                return


def read_segment(path: Path) -> pa.Table:
    """Every complete record batch of a segment (a batch cut short by a crash is dropped).

    Raises ForeignFile for a file tracekit did not write, FileNotFoundError if it is gone.
    """
    schema = TABLES[table_of(path)]
    batches = list(_iter_batches(path))
    if not batches:
        return schema.empty_table()
    return pa.Table.from_batches(batches).cast(schema)


def table_of(path: Path) -> str:
    """The table a segment holds, from its name (``ledger-...``; events have no prefix)."""
    head = path.name.split("-", 1)[0]
    return head if head in TABLES and head != "events" else "events"


def load_segment(path: Path) -> pa.Table | None:
    """A segment's rows for a reader: None (with one warning) if foreign, None if just gone."""
    try:
        return read_segment(path)
    except FileNotFoundError:  # compacted and removed while we looked: its Parquet has it
        return None
    except ForeignFile as exc:
        skip_warning(path, str(exc))
        return None


class SegmentWriter:
    """Appends record batches to this writer's current segment, fsyncing each append.

    The segment is written under a temporary name and takes its real name once its first batch
    is durable, so a reader never finds a segment without its header (Arrow writes the schema
    with the first batch).
    """

    def __init__(self, store: Store, writer: str, n: int, table: str = "events") -> None:
        self.store = store
        self.path = store.segment_path(writer, n, table)
        self.rows = 0
        store.ensure()
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._fh = open(self._tmp, "xb")  # noqa: SIM115 - held open for the segment's life
        # blocking: the only other holder can be a recoverer checking, for a moment, whether
        # the writer of this temporary file is alive
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        self._ipc = pa.ipc.new_stream(self._fh, TABLES[table])
        self._published = False

    def append(self, batch: pa.RecordBatch, sync: bool = True) -> None:
        self._ipc.write_batch(batch)
        self._fh.flush()
        if sync or not self._published:
            os.fsync(self._fh.fileno())
        if not self._published:
            os.replace(self._tmp, self.path)
            _fsync_dir(self.path.parent)
            self._published = True
        self.rows += batch.num_rows

    def abandon(self) -> None:
        """Stop writing (after an I/O error); what it holds is recovered like a dead writer's."""
        with contextlib.suppress(Exception):
            self._fh.close()

    def close_and_compact(self) -> None:
        """Close the segment and compact it while still holding its lock."""
        self._ipc.close()
        self._fh.flush()
        try:
            if self._published:
                self.store.compact_segment(self.path)
            else:
                self._tmp.unlink(missing_ok=True)
        finally:
            self._fh.close()
