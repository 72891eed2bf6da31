"""Foreign traces into the store, as runs: ``import_traces(paths, store)``.

Two passes, neither holding the trace in memory. The first reads the files a unit at a time and
turns each unit's drafts into event rows through the event-row builder (``event_row``,
``to_batch``: redaction applied, columns typed), staged on disk in buckets by run (as many as
the input's size asks, about 16 MB of it each), keeping only one small summary per run (its
time span, name, outcome, model). The second takes one bucket at a time, so whole runs are in
memory and no more: ``order`` orders each run's events by their recorded time (``seq``
gap-free, ``step`` counting model outputs), stamps the run's release and gives each event an
id derived from its run and seq; the rows are written into the store's day partitions,
atomically, a file per day.

One trace is one run (``otel-<trace id>``). Importing is idempotent: a run already in the
store is left as it is and reported, so importing a file twice gives the same rows, not
duplicates. Nothing here goes through a guard.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from .._base.redact import Redactor
from .._base.schema import EVENT_SCHEMA
from .._capture.rows import EventRow, RunStatic, to_batch
from .._capture.state import PROCESS
from .._integrations.prices import Prices
from .._store.compaction import DayParts
from .._store.layout import Store, resolve_root, split_by_day
from ..errors import ImportFormatError
from . import READERS
from .drafts import Draft, Unit
from .order import RELEASE_COLUMNS, ordered
from .runs import LAST, RunSummary, costed, draft_row
from .source import reader_for

__all__ = ["ImportReport", "import_traces"]

_BATCH = 64 * 1024
#: about this much of the input (bytes) is staged in one bucket, and ordered in memory at once
_BUCKET_INPUT = 16 * 1024 * 1024
_GZIP_RATIO = 8  # a gzipped trace file holds about this many times its size


@dataclass
class ImportReport:
    """What an import did: runs written and the events in them, runs already in the store."""

    files: int = 0
    spans: int = 0
    runs: list[str] = field(default_factory=list)
    events: int = 0
    already: list[str] = field(default_factory=list)
    unknown_models: set[str] = field(default_factory=set)
    written: list[Path] = field(default_factory=list)
    formats: set[str] = field(default_factory=set)

    @property
    def unit(self) -> str:
        """What the files held, for the summary line: spans, or records of other formats."""
        spans = {f for f, module in READERS.items() if module == "spans"}
        return "spans" if self.formats <= spans else "records"


def import_traces(
    paths: Iterable[str | os.PathLike[str]],
    store: str | os.PathLike[str] | None = None,
    *,
    fmt: str = "auto",
    tenant: str | None = None,
    redactor: Redactor | None = None,
    prices: Prices | None = None,
    on_file: Callable[[Path, int], None] | None = None,
) -> ImportReport:
    """Import trace files into ``store`` (default: the configured one) as runs; ``fmt`` names
    their format (``auto``: found from each file); ``on_file(path, units)`` after each file."""
    root = resolve_root(store)
    files = [Path(p) for p in paths]
    report = ImportReport()
    redactor = redactor if redactor is not None else PROCESS.settings().redactor
    with tempfile.TemporaryDirectory(prefix="tracekit-import-") as tmp:
        staging = _Staging(redactor, prices or Prices.shipped(), tenant, report,
                           Path(tmp), _buckets(files))  # fmt: skip
        try:
            for path in files:
                units = staging.read(path, fmt)
                report.files += 1
                if on_file is not None:
                    on_file(path, units)
            staging.close_runs()
        finally:
            staging.close()
        _write_runs(Store(root), staging, report, Path(tmp))
    return report


def _buckets(files: list[Path]) -> int:
    """How many buckets the input's size asks for (a gzipped file counted as it unpacks)."""
    size = 0
    for path in files:
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
        size += path.stat().st_size * (_GZIP_RATIO if gzipped else 1)
    return max(1, -(-size // _BUCKET_INPUT))


class _Staging:
    """The first pass: units to staged event rows, bucketed by run, and one summary per run."""

    def __init__(self, redactor: Redactor, prices: Prices, tenant: str | None,
                 report: ImportReport, tmp: Path, buckets: int) -> None:  # fmt: skip
        self.redactor, self.prices, self.tenant, self.report = redactor, prices, tenant, report
        self.runs: dict[str, RunSummary] = {}
        self.bucket_of: dict[str, int] = {}
        self.rows: list[EventRow] = []
        self.starts: list[int] = []
        self.parts: list[int] = []
        self.buckets: list[int] = []
        self.paths = [tmp / f"stage-{b}.arrow" for b in range(buckets)]
        self.writers: list[ipc.RecordBatchFileWriter | None] = [None] * buckets
        self.n = 0

    def read(self, path: Path, fmt: str) -> int:
        """Stage every unit of one file; how many it held."""
        found, reader = reader_for(path, fmt)
        self.report.formats.add(found)
        count = 0
        try:
            for unit in reader.read(path, found):
                count += 1
                self.stage(unit)
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{path}: not UTF-8 text ({exc})") from None
        if count == 0:
            raise ImportFormatError(f"{path}: nothing to import as {found}")
        self.report.spans += count
        self.flush()
        return count

    def stage(self, unit: Unit) -> None:
        run = self.runs.get(unit.run_id)
        if run is None:
            run = self.runs[unit.run_id] = RunSummary.of(unit, self.tenant)
            self.bucket_of[unit.run_id] = zlib.crc32(unit.run_id.encode()) % len(self.paths)
        else:
            run.add(unit)
        static = (unit.run_id, None, unit.run_id, run.tenant, "", "", "", "")  # stamped later
        bucket = self.bucket_of[unit.run_id]
        for draft in unit.drafts:
            self.add(static, costed(draft, self.prices, self.report.unknown_models),
                     unit.start_ns, bucket)  # fmt: skip

    def add(self, static: RunStatic, d: Draft, unit_start_ns: int, bucket: int) -> None:
        self.rows.append(draft_row(static, self.n, 0, d))
        self.starts.append(unit_start_ns // 1000)
        self.parts.append(d.part)
        self.buckets.append(bucket)
        self.n += 1
        if len(self.rows) >= _BATCH:
            self.flush()

    def close_runs(self) -> None:
        """Each run's start and end, from its first and last unit."""
        for run_id, run in self.runs.items():
            root = _root_of(run_id, self.runs)
            static = (run_id, run.parent, root, run.tenant, "", "", "", "")  # stamped later
            start, end = run.bounds()
            self.add(static, start, -1, self.bucket_of[run_id])
            self.add(static, end, LAST, self.bucket_of[run_id])
        self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        batch = to_batch(self.rows, self.redactor, "imp", 0)
        extra = [pa.array(self.starts, pa.int64()), pa.array(self.parts, pa.int8())]
        staged = pa.RecordBatch.from_arrays([*batch.columns, *extra], schema=_STAGE_SCHEMA)
        if len(self.paths) == 1:
            self._write(0, staged)
        else:
            buckets = pa.array(self.buckets, pa.int32())
            for b in pc.unique(buckets).to_pylist():
                self._write(b, staged.filter(pc.equal(buckets, b)))
        self.rows, self.starts, self.parts, self.buckets = [], [], [], []

    def _write(self, bucket: int, batch: pa.RecordBatch) -> None:
        writer = self.writers[bucket]
        if writer is None:
            options = ipc.IpcWriteOptions(compression="lz4")
            writer = ipc.new_file(self.paths[bucket], _STAGE_SCHEMA, options=options)
            self.writers[bucket] = writer
        writer.write_batch(batch)

    def close(self) -> None:
        for writer in self.writers:
            if writer is not None:
                writer.close()

    def staged(self) -> Iterator[pa.Table]:
        """Each bucket's staged rows (read back from disk, memory-mapped)."""
        for bucket, path in enumerate(self.paths):
            if self.writers[bucket] is not None:
                with pa.memory_map(str(path)) as source:
                    yield ipc.open_file(source).read_all()


def _root_of(run_id: str, runs: dict[str, RunSummary]) -> str:
    """The root run of a sub-run (itself for a top-level run), through its parents."""
    seen = {run_id}
    while (parent := runs[run_id].parent) is not None and parent in runs and parent not in seen:
        seen.add(parent)
        run_id = parent
    return run_id


_STAGE_SCHEMA = pa.schema([*EVENT_SCHEMA, ("_span_start", pa.int64()), ("_part", pa.int8())])


def _write_runs(store: Store, staging: _Staging, report: ImportReport, tmp: Path) -> None:
    """The second pass: each bucket's staged rows of new runs ordered and written, a file per
    bucket and day; runs the store has already left out."""
    known = _known_runs(store, list(staging.runs), tmp)
    report.already = sorted(known)
    report.runs = sorted(set(staging.runs) - known)
    if not report.runs:
        return
    new = pa.array(report.runs, pa.string())
    releases = _releases(staging.runs, report.runs)
    stem = "import-" + hashlib.sha256("\n".join(report.runs).encode()).hexdigest()[:16]
    with DayParts(store.root / "events", EVENT_SCHEMA, stem) as parts:
        for staged in staging.staged():
            rows = ordered(staged.filter(pc.is_in(staged["run_id"], value_set=new)), releases)
            report.events += rows.num_rows
            for day, day_rows in split_by_day(rows):
                parts.write(day, day_rows)
    report.written = parts.written


def _releases(runs: dict[str, RunSummary], new: list[str]) -> pa.Table:
    """The release of each new run, for ``ordered`` to stamp."""
    releases = [runs[r].release for r in new]
    values = {"release_id": [r.release_id for r in releases],
              "model_version": [r.model for r in releases],
              "prompt_version": [r.prompt for r in releases],
              "tools_version": [r.tools for r in releases]}  # fmt: skip
    columns = {"run_id": pa.array(new, pa.string())}
    columns |= {name: pa.array(values[name], pa.string()) for name in RELEASE_COLUMNS}
    return pa.table(columns)


def _known_runs(store: Store, runs: list[str], tmp: Path) -> set[str]:
    """The imported runs that the store already holds (compacted parts; an import writes no
    segments)."""
    parts = store.readable_parquet_paths("events")
    if not parts:
        return set()
    import duckdb

    con = duckdb.connect(str(tmp / "known.duckdb"))
    con.execute("SET enable_progress_bar = false")  # the CLI draws its own; stdout stays ours
    con.register("_runs", pa.table({"run_id": pa.array(runs, pa.string())}))
    found = con.execute(
        "SELECT DISTINCT run_id FROM read_parquet(?, union_by_name = true) "
        "WHERE run_id IN (SELECT run_id FROM _runs)",
        [[str(p) for p in parts]],
    ).fetchall()
    con.close()
    return {r[0] for r in found}
