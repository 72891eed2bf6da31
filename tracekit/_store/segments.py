"""Write-ahead segments: Arrow IPC streams, appended one record batch per flush and fsynced.

A live writer holds an exclusive flock on its segment; a segment whose lock can be taken
belongs to a dead writer and is recovered (compacted), never lost. A batch cut short by a
crash is dropped on reading; everything before it is kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from .._base.schema import TABLES
from ..errors import ForeignFile
from .layout import Store, fsync_dir, short_error, skip_warning, table_of

__all__ = ["ForeignFile", "SegmentWriter", "dead_segment", "load_segment", "read_segment"]


class dead_segment:
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
            raise ForeignFile(f"not an Arrow stream ({short_error(exc)})") from None
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
    with the first batch). Its lock is held until ``release``.
    """

    def __init__(self, store: Store, writer: str, n: int, table: str = "events") -> None:
        self.store = store
        self.path = store.segment_path(writer, n, table)
        self.rows = 0
        store.ensure()
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._fh = open(self.tmp, "xb")  # noqa: SIM115 - held open for the segment's life
        # blocking: the only other holder can be a recoverer checking, for a moment, whether
        # the writer of this temporary file is alive
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        self._ipc = pa.ipc.new_stream(self._fh, TABLES[table])
        self.published = False

    def append(self, batch: pa.RecordBatch, sync: bool = True) -> None:
        self._ipc.write_batch(batch)
        self._fh.flush()
        if sync or not self.published:
            os.fsync(self._fh.fileno())
        if not self.published:
            os.replace(self.tmp, self.path)
            fsync_dir(self.path.parent)
            self.published = True
        self.rows += batch.num_rows

    def abandon(self) -> None:
        """Stop writing (after an I/O error): a published segment is recovered like a dead
        writer's (its torn last batch dropped); one never published held nothing and goes."""
        with contextlib.suppress(Exception):
            self._fh.close()
        if not self.published:
            with contextlib.suppress(OSError):
                self.tmp.unlink()

    def close_stream(self) -> None:
        """End the Arrow stream; the lock is still held (compact, then ``release``)."""
        self._ipc.close()
        self._fh.flush()

    def release(self) -> None:
        self._fh.close()
