"""Postmortem SQL: DuckDB views over the store's Parquet parts and its live segments.

``connect()`` takes a snapshot of the store's files: the Parquet parts that read, plus every
segment still being written (so the trace of a run that is still going is queryable). It never
writes the store. Connect again to see what was written since.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb

from .._base.schema import TABLES
from .._capture.state import PROCESS
from .._store.layout import Store, resolve_root
from .._store.reading import live_rows, segment_tables
from ..errors import AmbiguousRun, UnknownRun

__all__ = [
    "VIEWS",
    "UnknownRun",
    "connect",
    "filters",
    "list_runs",
    "resolve_run",
    "run_query",
    "timeline",
]

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

_LEDGER_SQL = """
CREATE OR REPLACE VIEW ledger AS
SELECT * FROM ledger_history
QUALIFY row_number() OVER (
    PARTITION BY run_id, entry_id
    ORDER BY ts DESC, CASE status WHEN 'reserved' THEN 0 WHEN 'compensated' THEN 2 ELSE 1 END DESC
) = 1
"""

#: the views every connection has, in creation order
VIEWS = ("events", "runs", "tool_calls", "ledger_history", "ledger")


def connect(
    store: str | os.PathLike[str] | None = None,
    database: str = ":memory:",
) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection over the store with the views ``events``, ``runs``,
    ``tool_calls``, ``ledger`` and ``ledger_history``. Without ``store``: the configured one
    (``tracekit.configure(store=...)``, else ``$TRACEKIT_HOME``, else ``./.tracekit``)."""
    root = Store(resolve_root(store) if store is not None else PROCESS.settings().store)
    con = duckdb.connect(database)
    _create_table_view(con, root, "events", "events")
    con.execute(_RUNS_SQL)
    con.execute(_TOOL_CALLS_SQL)
    _create_table_view(con, root, "ledger", "ledger_history")
    con.execute(_LEDGER_SQL)
    return con


def _create_table_view(con: duckdb.DuckDBPyConnection, store: Store, table: str, view: str) -> None:
    # segments first, Parquet after: a segment compacted in between is then in the Parquet
    # list, and its rows are dropped from the live table (no row is seen twice or missed)
    schema = TABLES[table]
    segments = segment_tables(store, table)
    parts = store.readable_parquet_paths(table)
    live = f"_tracekit_live_{table}"
    con.register(live, live_rows(segments, parts, table))
    columns = ", ".join(f.name for f in schema)
    if not parts:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {columns} FROM {live}")
        return
    files = "[" + ", ".join(_sql_str(p) for p in parts) + "]"
    con.execute(
        f"CREATE OR REPLACE VIEW {view} AS "
        f"SELECT {columns} FROM read_parquet({files}, hive_partitioning = true, "
        f"union_by_name = true) "
        f"UNION ALL BY NAME SELECT {columns} FROM {live}"
    )


def _sql_str(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def resolve_run(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """The full run id for ``run_id`` or a unique prefix of one; UnknownRun otherwise."""
    # fetchall: a result left half-read blocks the connection's next relation (DuckDB 2.0)
    exact = con.execute("SELECT 1 FROM runs WHERE run_id = ? LIMIT 1", [run_id]).fetchall()
    if exact:
        return run_id
    prefixed = con.execute(
        "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id LIMIT 6", [run_id]
    ).fetchall()
    if len(prefixed) == 1:
        return str(prefixed[0][0])
    if prefixed:
        raise AmbiguousRun(run_id, [r[0] for r in prefixed[:5]], more=len(prefixed) > 5)
    return _nearest(con, run_id)


def _nearest(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    close = con.execute(
        "SELECT run_id FROM runs ORDER BY jaro_winkler_similarity(run_id, ?) DESC, run_id LIMIT 3",
        [run_id],
    ).fetchall()
    raise UnknownRun(run_id, [r[0] for r in close])


def list_runs(
    con: duckdb.DuckDBPyConnection,
    tenant: str | None = None,
    since: datetime | None = None,
    status: str | None = None,
    limit: int = 20,
) -> tuple[list[str], list[tuple[object, ...]]]:
    """Newest runs first, filtered; returns (column names, rows)."""
    where, params = filters({"tenant": tenant, "status": status}, ("started", since))
    sql = (
        "SELECT run_id, tenant, status, started, steps, tool_calls, round(cost_usd, 4) AS "
        f"cost_usd, release_id, parent_run_id FROM runs WHERE {where} "
        "ORDER BY started DESC, run_id LIMIT ?"
    )
    return _fetch(con, sql, [*params, limit])


Rows = tuple[list[str], list[tuple[object, ...]]]


def timeline(con: duckdb.DuckDBPyConnection, run_id: str) -> Rows:
    """One run's events in order; returns (column names, rows)."""
    sql = (
        "SELECT seq, ts, step, kind, name, status, call_id, "
        "coalesce(error, output, args) AS detail, cost_usd "
        "FROM events WHERE run_id = ? ORDER BY seq"
    )
    return _fetch(con, sql, [resolve_run(con, run_id)])


def _fetch(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> tuple[list[str], list[tuple[object, ...]]]:
    cursor = con.execute(sql, params or [])
    columns = [d[0] for d in cursor.description or []]
    return columns, cursor.fetchall()


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> Rows:
    """Run any SQL against the views; returns (column names, rows)."""
    return _fetch(con, sql)


def filters(
    equal: dict[str, object], since: tuple[str, datetime | None]
) -> tuple[str, list[object]]:
    """A WHERE clause (and its parameters) from column = value pairs and a since-time column;
    None values are left out."""
    where, params = ["1 = 1"], []
    for column, value in equal.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since[1] is not None:
        where.append(f"{since[0]} >= ?")
        params.append(since[1])
    return " AND ".join(where), params
