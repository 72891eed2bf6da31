"""What a reader sees of the store: the Parquet parts that read plus every segment still being
written (a live run's trace is readable), each row once."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .._base.schema import TABLES
from .layout import Store, split_by_day
from .segments import load_segment

__all__ = ["live_rows", "run_rows", "segment_tables"]


def segment_tables(store: Store, table: str) -> dict[str, pa.Table]:
    """Rows of every segment of ``table`` on disk (a live or a dead writer's), by stem."""
    tables = {}
    for path in store.segment_paths(table):
        rows = load_segment(path)
        if rows is not None and rows.num_rows:
            tables[path.stem] = rows
    return tables


def live_rows(segments: dict[str, pa.Table], parts: list[Path], table: str) -> pa.Table:
    """The segments' rows minus those whose Parquet part is already in ``parts``.

    Read the segments before listing the parts: a segment compacted in between is then in
    ``parts`` and its rows are dropped here, so no row is seen twice or missed."""
    return _minus_compacted(segments, parts, TABLES[table])


def _minus_compacted(
    segments: dict[str, pa.Table], parts: list[Path], schema: pa.Schema
) -> pa.Table:
    compacted: dict[str, list[str]] = {}  # segment stem -> dates already in Parquet
    for part in parts:
        stem = part.name[len("part-") : -len(".parquet")]
        compacted.setdefault(stem, []).append(part.parent.name[len("date=") :])
    tables: list[pa.Table] = []
    for stem, rows in segments.items():
        done = set(compacted.get(stem, ()))
        tables.extend(day_rows for day, day_rows in split_by_day(rows) if day not in done)
    return pa.concat_tables(tables) if tables else schema.empty_table()


def run_rows(store: Store, run_id: str, columns: list[str]) -> pa.Table:
    """Every event of one run, flushed or still in a segment (without DuckDB: a resumed run
    reads its own trace on the agent's thread)."""
    segments = segment_tables(store, "events")
    parts = store.readable_parquet_paths("events")
    live = _minus_compacted(segments, parts, TABLES["events"])
    tables = [live.filter(pc.equal(live["run_id"], run_id)).select(columns)]
    if parts:
        dataset = ds.dataset([str(p) for p in parts], format="parquet", schema=TABLES["events"])
        tables.append(dataset.to_table(columns=columns, filter=ds.field("run_id") == run_id))
    return pa.concat_tables(tables)
