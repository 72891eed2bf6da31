"""Foreign traces into the store, as runs: ``import_traces(paths, store)``.

Two passes, neither holding the trace in memory. The first reads the files a line at a time and
turns each span into event rows through the event-row builder (``event_row``, ``to_batch``:
redaction applied, columns typed) into a staging Parquet file, keeping only one small summary
per run (its time span, name, outcome, model). The second lets DuckDB order each run's events
by their recorded time (``seq`` gap-free, ``step`` counting model outputs), stamp the run's
release, give each event an id derived from its run and seq, and stream them into the store's
day partitions, atomically.

One trace is one run (``otel-<trace id>``). Importing is idempotent: a run already in the
store is left as it is and reported, so importing a file twice gives the same rows, not
duplicates. Nothing here goes through a guard.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .._base.redact import Redactor
from .._base.schema import EVENT_SCHEMA
from .._capture.rows import EventRow, RunStatic, to_batch
from .._capture.state import PROCESS
from .._integrations.prices import Prices
from .._store.compaction import write_batches
from .._store.layout import Store, resolve_root
from ..errors import ImportFormatError
from .drafts import Draft, Unit
from .runs import LAST, RunSummary, costed, draft_row
from .source import reader_for

__all__ = ["ImportReport", "import_traces"]

_BATCH = 64 * 1024


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
    report = ImportReport()
    redactor = redactor if redactor is not None else PROCESS.settings().redactor
    staging = _Staging(redactor, prices or Prices.shipped(), tenant, report)
    with tempfile.TemporaryDirectory(prefix="tracekit-import-") as tmp:
        stage = Path(tmp) / "stage.parquet"
        with pq.ParquetWriter(stage, _STAGE_SCHEMA) as writer:
            staging.writer = writer
            for path in map(Path, paths):
                units = staging.read(path, fmt)
                report.files += 1
                if on_file is not None:
                    on_file(path, units)
            staging.close_runs()
        _write_runs(Store(root), stage, staging.runs, report, Path(tmp))
    return report


class _Staging:
    """The first pass: units to staged event rows, and one summary per run."""

    def __init__(
        self, redactor: Redactor, prices: Prices, tenant: str | None, report: ImportReport
    ) -> None:
        self.redactor, self.prices, self.tenant, self.report = redactor, prices, tenant, report
        self.runs: dict[str, RunSummary] = {}
        self.rows: list[EventRow] = []
        self.starts: list[int] = []
        self.parts: list[int] = []
        self.writer: pq.ParquetWriter | None = None
        self.n = 0

    def read(self, path: Path, fmt: str) -> int:
        """Stage every unit of one file; how many it held."""
        found, reader = reader_for(path, fmt)
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
        else:
            run.add(unit)
        static = (unit.run_id, None, unit.run_id, run.tenant, "", "", "", "")  # stamped later
        for draft in unit.drafts:
            self.add(static, costed(draft, self.prices, self.report.unknown_models),
                     unit.start_ns)  # fmt: skip

    def add(self, static: RunStatic, d: Draft, unit_start_ns: int) -> None:
        self.rows.append(draft_row(static, self.n, 0, d))
        self.starts.append(unit_start_ns // 1000)
        self.parts.append(d.part)
        self.n += 1
        if len(self.rows) >= _BATCH:
            self.flush()

    def close_runs(self) -> None:
        """Each run's start and end, from its first and last unit."""
        for run_id, run in self.runs.items():
            root = _root_of(run_id, self.runs)
            static = (run_id, run.parent, root, run.tenant, "", "", "", "")  # stamped later
            start, end = run.bounds()
            self.add(static, start, -1)
            self.add(static, end, LAST)
        self.flush()

    def flush(self) -> None:
        if not self.rows or self.writer is None:
            return
        batch = to_batch(self.rows, self.redactor, "imp", 0)
        extra = [pa.array(self.starts, pa.int64()), pa.array(self.parts, pa.int8())]
        staged = pa.RecordBatch.from_arrays([*batch.columns, *extra], schema=_STAGE_SCHEMA)
        self.writer.write_batch(staged)
        self.rows, self.starts, self.parts = [], [], []


def _root_of(run_id: str, runs: dict[str, RunSummary]) -> str:
    """The root run of a sub-run (itself for a top-level run), through its parents."""
    seen = {run_id}
    while (parent := runs[run_id].parent) is not None and parent in runs and parent not in seen:
        seen.add(parent)
        run_id = parent
    return run_id


_STAGE_SCHEMA = pa.schema([*EVENT_SCHEMA, ("_span_start", pa.int64()), ("_part", pa.int8())])


def _write_runs(
    store: Store, stage: Path, runs: dict[str, RunSummary], report: ImportReport, tmp: Path
) -> None:
    """The second pass: the staged rows ordered into runs and written, day by day; runs the
    store has already left out."""
    import duckdb

    con = duckdb.connect(str(tmp / "order.duckdb"))  # on disk: a large import spills there
    con.execute("SET enable_progress_bar = false")  # the CLI draws its own; stdout stays ours
    con.execute("SET memory_limit = '512MB'")  # bounded: the ordering spills to disk
    con.register("_runs", _runs_table(runs))
    known = _known_runs(con, store)
    report.already = sorted(known)
    report.runs = sorted(set(runs) - known)
    if not report.runs:
        return
    con.register("_new", pa.table({"run_id": pa.array(report.runs, pa.string())}))
    con.execute(_ORDERED_SQL, [str(stage)])
    stem = "import-" + hashlib.sha256("\n".join(report.runs).encode()).hexdigest()[:16]
    for (day,) in con.execute("SELECT DISTINCT day FROM _ordered ORDER BY day").fetchall():
        path = store.root / "events" / f"date={day}"
        written = write_batches(_day_batches(con, day), EVENT_SCHEMA, path, stem)
        report.written.append(written)
    report.events = int(con.execute("SELECT count(*) FROM _ordered").fetchone()[0])  # type: ignore[index]


def _runs_table(runs: dict[str, RunSummary]) -> pa.Table:
    releases = [r.release for r in runs.values()]
    return pa.table({
        "run_id": pa.array(list(runs), pa.string()),
        "release_id": pa.array([r.release_id for r in releases], pa.string()),
        "model_version": pa.array([r.model for r in releases], pa.string()),
        "prompt_version": pa.array([r.prompt for r in releases], pa.string()),
        "tools_version": pa.array([r.tools for r in releases], pa.string()),
    })  # fmt: skip


def _known_runs(con: Any, store: Store) -> set[str]:
    """The imported runs that the store already holds (compacted parts; an import writes no
    segments)."""
    parts = store.readable_parquet_paths("events")
    if not parts:
        return set()
    rows = con.execute(
        "SELECT DISTINCT run_id FROM read_parquet(?, union_by_name = true) "
        "WHERE run_id IN (SELECT run_id FROM _runs)",
        [[str(p) for p in parts]],
    ).fetchall()
    return {r[0] for r in rows}


_ORDERED_SQL = """
CREATE TEMP TABLE _ordered AS
SELECT *, strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d') AS day FROM (
    SELECT
        lpad(CAST(epoch_us(e.ts) AS VARCHAR), 16, '0') || 'imp' || left(md5(e.run_id), 10)
            || lpad(CAST(row_number() OVER w - 1 AS VARCHAR), 9, '0') AS event_id,
        e.run_id, e.parent_run_id, e.root_run_id, e.tenant,
        CAST(row_number() OVER w - 1 AS BIGINT) AS seq,
        CAST(sum(CASE WHEN e.kind = 'model_output' THEN 1 ELSE 0 END) OVER w AS INTEGER) AS step,
        e.ts, e.kind, e.name, e.call_id, e.args, e.output, e.status, e.error, e.tokens_in,
        e.tokens_out, e.cost_usd, e.latency_ms, r.release_id, r.model_version,
        r.prompt_version, r.tools_version, e.attrs, e.schema_version
    FROM read_parquet(?) e
    JOIN _runs r USING (run_id)
    WHERE e.run_id IN (SELECT run_id FROM _new)
    WINDOW w AS (PARTITION BY e.run_id ORDER BY e.ts, e._span_start, e._part, e.seq
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
"""


def _day_batches(con: Any, day: str) -> Iterator[pa.RecordBatch]:
    names = ", ".join(EVENT_SCHEMA.names)
    query = f"SELECT {names} FROM _ordered WHERE day = $day ORDER BY run_id, seq"
    reader = con.sql(query, params={"day": day}).to_arrow_reader(_BATCH)
    for batch in reader:
        yield batch.cast(EVENT_SCHEMA)
