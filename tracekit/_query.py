"""Postmortem SQL: DuckDB views over the store's Parquet parts and its live segments.

``connect()`` takes a snapshot of the store's files: the Parquet parts that read, plus every
segment still being written (so the trace of a run that is still going is queryable). It never
writes the store. Connect again to see what was written since.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ._schema import EVENT_SCHEMA
from ._store import Store, read_segment, resolve_root

__all__ = ["VIEWS", "connect"]

_RUNS_SQL = """
CREATE OR REPLACE VIEW runs AS
SELECT
    run_id,
    any_value(parent_run_id) AS parent_run_id,
    any_value(root_run_id) AS root_run_id,
    any_value(tenant) AS tenant,
    any_value(release_id) AS release_id,
    min(ts) AS started,
    max(ts) FILTER (WHERE kind = 'run_end') AS ended,
    coalesce(max(step), 0) AS steps,
    count(*) FILTER (WHERE kind = 'tool_call') AS tool_calls,
    coalesce(sum(tokens_in), 0) AS tokens_in,
    coalesce(sum(tokens_out), 0) AS tokens_out,
    coalesce(sum(cost_usd), 0.0) AS cost_usd,
    coalesce(arg_max(status, seq) FILTER (WHERE kind = 'run_end'), 'running') AS status,
    count(*) AS events,
    max(ts) AS last_ts
FROM events
GROUP BY run_id
"""

_TOOL_CALLS_SQL = """
CREATE OR REPLACE VIEW tool_calls AS
SELECT
    c.run_id, c.tenant, c.call_id, c.step, c.seq, c.name AS tool, c.args,
    r.output, coalesce(r.status, 'no_result') AS status, r.error, r.latency_ms,
    c.ts AS called, r.ts AS returned,
    coalesce(json_extract(c.attrs, '$.writes')::BOOLEAN, false) AS writes,
    c.release_id
FROM (SELECT * FROM events WHERE kind = 'tool_call') AS c
LEFT JOIN (SELECT * FROM events WHERE kind = 'tool_result') AS r
    ON r.run_id = c.run_id AND r.call_id = c.call_id
"""

#: the views every connection has, in creation order
VIEWS = ("events", "runs", "tool_calls")


def connect(
    store: str | os.PathLike[str] | None = None,
    database: str = ":memory:",
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views ``events``, ``runs`` and ``tool_calls``."""
    root = Store(resolve_root(store))
    con = duckdb.connect(database)
    _create_events_view(con, root)
    con.execute(_RUNS_SQL)
    con.execute(_TOOL_CALLS_SQL)
    return con


def _create_events_view(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    live = _live_table(store)
    con.register("_tracekit_live_events", live)
    columns = ", ".join(f.name for f in EVENT_SCHEMA)
    parts = store.readable_parquet_paths("events")
    if not parts:
        con.execute(f"CREATE OR REPLACE VIEW events AS SELECT {columns} FROM _tracekit_live_events")
        return
    files = "[" + ", ".join(_sql_str(p) for p in parts) + "]"
    con.execute(
        f"CREATE OR REPLACE VIEW events AS "
        f"SELECT {columns} FROM read_parquet({files}, hive_partitioning = true, "
        f"union_by_name = true) "
        f"UNION ALL BY NAME SELECT {columns} FROM _tracekit_live_events"
    )


def _live_table(store: Store) -> pa.Table:
    """Rows of every segment not yet compacted (a live or a dead writer's); skips bad files."""
    compacted: dict[str, set[str]] = {}  # segment stem -> dates already in Parquet
    for part in store.parquet_paths("events"):
        stem = part.name[len("part-"): -len(".parquet")]
        compacted.setdefault(stem, set()).add(part.parent.name[len("date="):])
    tables = []
    for path in store.segment_paths():
        table = read_segment(path, warn=True)
        if table is not None and path.stem in compacted:  # mid-compaction: no row twice
            days = pc.strftime(table["ts"], format="%Y-%m-%d")
            table = table.filter(pc.invert(pc.is_in(days, pa.array(sorted(compacted[path.stem])))))
        if table is not None and table.num_rows:
            tables.append(table)
    return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()


def _sql_str(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
