"""Scope: the side effects that landed (for a run, a tenant since a time, or a release), and
the effects of a run that still stand (what compensation would undo)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from .views import filters, resolve_run

__all__ = ["Scope", "scope", "standing_effects"]


@dataclass
class Scope:
    """The effects that landed, by destination and action (``rows`` under ``columns``), and
    every entry that still stands (fired, or may have fired)."""

    filter: dict[str, Any]
    columns: list[str]
    rows: list[tuple[Any, ...]]
    standing: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: rows as objects."""
        rows = [dict(zip(self.columns, r, strict=True)) for r in self.rows]
        return {"filter": self.filter, "rows": rows, "standing": self.standing}


_SCOPE_SQL = """
SELECT coalesce(destination, '') AS destination, action,
    count(*) FILTER (WHERE status = 'fired') AS fired,
    round(coalesce(sum(amount) FILTER (WHERE status = 'fired'), 0), 2) AS amount_fired,
    count(*) FILTER (WHERE status = 'reserved') AS may_have_fired,
    count(*) FILTER (WHERE status = 'suppressed_duplicate') AS duplicates_suppressed,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'compensated') AS compensated,
    count(*) FILTER (WHERE status IN ('fired', 'reserved') AND reversible) AS reversible,
    count(*) FILTER (WHERE status IN ('fired', 'reserved') AND NOT coalesce(reversible, false))
        AS irreversible,
    coalesce(any_value(currency), '') AS currency
FROM ledger WHERE {where}
GROUP BY ALL ORDER BY fired DESC, destination, action
"""

_OPEN_SQL = """
SELECT entry_id, run_id, tool, coalesce(destination, '') AS destination, status, amount,
    coalesce(currency, '') AS currency, coalesce(reversible, false) AS reversible
FROM ledger WHERE {where} AND status IN ('fired', 'reserved')
ORDER BY ts
"""


def scope(
    con: duckdb.DuckDBPyConnection,
    run: str | None = None,
    tenant: str | None = None,
    release: str | None = None,
    since: datetime | None = None,
) -> Scope:
    """The side effects that landed for a run, a tenant (since a time) or a release: by
    destination and action, and every entry that still stands (fired, or may have fired)."""
    where, params = _scope_filter(con, run, tenant, release, since)
    columns, rows = _fetch(con, _SCOPE_SQL.format(where=where), params)
    open_cols, open_rows = _fetch(con, _OPEN_SQL.format(where=where), params)
    return Scope(
        {
            "run": run,
            "tenant": tenant,
            "release": release,
            "since": since.isoformat() if since else None,
        },
        columns,
        rows,
        [dict(zip(open_cols, r, strict=True)) for r in open_rows],
    )


def _scope_filter(
    con: duckdb.DuckDBPyConnection,
    run: str | None,
    tenant: str | None,
    release: str | None,
    since: datetime | None,
) -> tuple[str, list[object]]:
    if (run, tenant, release) == (None, None, None):
        raise ValueError("scope needs --run, --tenant or --release")
    run_id = None if run is None else resolve_run(con, run)
    return filters({"run_id": run_id, "tenant": tenant, "release_id": release}, ("ts", since))


def _fetch(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = con.execute(sql, params)
    return [d[0] for d in cursor.description or []], cursor.fetchall()


_STANDING = """
SELECT l.entry_id, l.tool, coalesce(l.destination, '') AS destination, l.status, l.amount,
       coalesce(l.currency, '') AS currency, coalesce(l.reversible, false) AS reversible,
       l.call_id, c.args, l.tenant, l.release_id
FROM ledger AS l
LEFT JOIN tool_calls AS c ON c.run_id = l.run_id AND c.call_id = l.call_id
WHERE l.run_id = ? AND l.status IN ('fired', 'reserved')
ORDER BY l.ts
"""


def standing_effects(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Every effect of the run that stands (fired, or may have fired), with the arguments of
    the call that made it (a compensator is called with them)."""
    full = resolve_run(con, run_id)
    columns, rows = _fetch(con, _STANDING, [full])
    return [{**dict(zip(columns, r, strict=True)), "run_id": full} for r in rows]
