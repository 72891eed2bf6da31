"""Compaction: segments into hive-partitioned Parquet, and recovery of dead writers' segments.

A segment's rows are sorted (events by ``(run_id, seq)``) and written per UTC date partition to
a temporary file that is fsynced and renamed; the names depend only on the segment, so
compacting the same segment twice (a crash between rename and unlink) rewrites the same files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .._base.progressbar import Progress
from .._base.schema import SORT_KEYS
from .layout import SEGMENT_SUFFIX, Store, fsync_dir, split_by_day, table_of
from .segments import SegmentWriter, dead_segment, load_segment

__all__ = [
    "DayParts",
    "close_and_compact",
    "compact_segment",
    "recover",
    "write_batches",
    "write_partitions",
]

ROW_GROUP_SIZE = 64 * 1024
#: low-cardinality columns worth dictionary encoding (ids, payloads and times are not)
DICTIONARY_COLUMNS = frozenset(
    {
        "run_id",
        "parent_run_id",
        "root_run_id",
        "tenant",
        "kind",
        "name",
        "status",
        "release_id",
        "model_version",
        "prompt_version",
        "tools_version",
        "args",
        "output",
        "attrs",
        "tool",
        "destination",
        "action",
        "currency",
    }
)
_TEMP_GRACE_S = 60.0


def write_partitions(store: Store, table: pa.Table, stem: str, kind: str = "events") -> list[Path]:
    """Sort ``table`` by its table's keys and write one Parquet part per UTC date, atomically."""
    if table.num_rows == 0:
        return []
    table = table.sort_by(SORT_KEYS[kind])
    return [
        _write_atomic(part, store.root / kind / f"date={day}", stem)
        for day, part in split_by_day(table)
    ]


def _write_atomic(table: pa.Table, directory: Path, stem: str) -> Path:
    return write_batches([table], table.schema, directory, stem)


def write_batches(
    batches: Iterable[pa.RecordBatch | pa.Table], schema: pa.Schema, directory: Path, stem: str
) -> Path:
    """``directory/part-<stem>.parquet`` from ``batches`` (sorted, of one UTC day), streamed
    to a temporary file, fsynced and renamed: a reader never sees half a file."""
    with DayParts(directory.parent, schema, stem) as parts:
        for batch in batches:
            parts.write(directory.name.removeprefix("date="), batch)
        if not parts.open:  # no rows: an empty part still
            parts.write(directory.name.removeprefix("date="), schema.empty_table())
    return parts.written[0]


class DayParts:
    """``<table dir>/date=<day>/part-<stem>.parquet`` for each day written to, streamed to
    temporary files and, when the ``with`` block ends without an error, fsynced and renamed
    together (else removed): a reader never sees half a file."""

    def __init__(self, table_dir: Path, schema: pa.Schema, stem: str) -> None:
        self.table_dir, self.schema, self.stem = table_dir, schema, stem
        self.open: dict[str, tuple[Path, Any, pq.ParquetWriter]] = {}
        self.written: list[Path] = []

    def write(self, day: str, rows: pa.RecordBatch | pa.Table) -> None:
        if day not in self.open:
            directory = self.table_dir / f"date={day}"
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f".tmp-part-{self.stem}-{os.getpid()}.parquet"
            fh = open(tmp, "wb")  # noqa: SIM115 -- closed in __exit__
            dictionary = [c for c in self.schema.names if c in DICTIONARY_COLUMNS]
            writer = pq.ParquetWriter(fh, self.schema, compression="zstd",
                                      use_dictionary=dictionary, write_statistics=True)  # fmt: skip
            self.open[day] = (tmp, fh, writer)
        self.open[day][2].write(rows, row_group_size=ROW_GROUP_SIZE)

    def __enter__(self) -> DayParts:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        for tmp, fh, writer in (self.open[day] for day in sorted(self.open)):
            writer.close()
            fh.flush()
            if kind is not None:
                fh.close()
                tmp.unlink(missing_ok=True)
                continue
            os.fsync(fh.fileno())
            fh.close()
            final = tmp.parent / f"part-{self.stem}.parquet"
            os.replace(tmp, final)
            fsync_dir(tmp.parent)
            self.written.append(final)


def compact_segment(store: Store, path: Path) -> int | None:
    """Compact one segment into Parquet and remove it; returns the rows kept.

    The caller holds the segment's lock. A foreign file is left in place (None).
    """
    table = load_segment(path)
    if table is None:
        return None
    stem = path.name[: -len(SEGMENT_SUFFIX)]
    kind = table_of(path)
    _remove_temporaries(store, kind, f".tmp-part-{stem}-*.parquet")  # a compaction that died
    write_partitions(store, table, stem, kind)
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return int(table.num_rows)


def close_and_compact(segment: SegmentWriter) -> None:
    """Close a writer's segment and compact it while still holding its lock."""
    segment.close_stream()
    try:
        if segment.published:
            compact_segment(segment.store, segment.path)
        else:
            segment.tmp.unlink(missing_ok=True)
    finally:
        segment.release()


def _remove_temporaries(store: Store, kind: str, pattern: str) -> None:
    if (store.root / kind).is_dir():
        for tmp in (store.root / kind).glob(f"date=*/{pattern}"):
            tmp.unlink(missing_ok=True)


def recover(store: Store, only: list[Path] | None = None) -> tuple[int, int]:
    """Compact every segment whose writer is gone (or those of ``only``, a writer's own
    abandoned segments); returns (segments, rows) recovered."""
    segments = rows = 0
    paths = list(store.segment_paths()) if only is None else [p for p in only if p.exists()]
    with Progress(len(paths), "recovering segments") as bar:
        for path in paths:
            with dead_segment(path) as dead:
                kept = compact_segment(store, path) if dead else None
            if kept is not None:
                rows += kept
                segments += 1
            bar.advance(path.name)
    _remove_dead_segment_temporaries(store)
    return segments, rows


def _remove_dead_segment_temporaries(store: Store) -> None:
    """A writer that died while creating a segment leaves a header-only temporary file."""
    if not store.segments_dir.is_dir():
        return
    for tmp in store.segments_dir.glob(f".*{SEGMENT_SUFFIX}.tmp"):
        with dead_segment(tmp) as dead:  # old, too: a new one may not be locked yet
            if dead and _age(tmp) > _TEMP_GRACE_S:
                tmp.unlink(missing_ok=True)


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
