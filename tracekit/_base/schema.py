"""The data plane's tables: their Arrow schemas, column order and sort keys, in one place."""

from __future__ import annotations

from typing import TypedDict

import pyarrow as pa

from .vocab import EventKind, LedgerStatus

__all__ = [
    "EVENT_KINDS",
    "EVENT_SCHEMA",
    "LEDGER_SCHEMA",
    "LEDGER_STATUSES",
    "ROW_FIELDS",
    "SCHEMA_VERSION",
    "SORT_KEYS",
    "STATIC_FIELDS",
    "TABLES",
    "LedgerRow",
]

#: version stamped on every row; readers accept every version up to this one
SCHEMA_VERSION = 1

#: every event kind (the ``kind`` column's vocabulary)
EVENT_KINDS = tuple(EventKind)

_TS = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("run_id", pa.string()),
        ("parent_run_id", pa.string()),
        ("root_run_id", pa.string()),
        ("tenant", pa.string()),
        ("seq", pa.int64()),
        ("step", pa.int32()),
        ("ts", _TS),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("call_id", pa.string()),
        ("args", pa.string()),
        ("output", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("tokens_in", pa.int64()),
        ("tokens_out", pa.int64()),
        ("cost_usd", pa.float64()),
        ("latency_ms", pa.float64()),
        ("release_id", pa.string()),
        ("model_version", pa.string()),
        ("prompt_version", pa.string()),
        ("tools_version", pa.string()),
        ("attrs", pa.string()),
        ("schema_version", pa.int16()),
    ],
    metadata={"tracekit.table": "events", "tracekit.schema_version": str(SCHEMA_VERSION)},
)

#: per-run columns, shared by every event of a run (one tuple per run on the hot path)
STATIC_FIELDS = (
    "run_id",
    "parent_run_id",
    "root_run_id",
    "tenant",
    "release_id",
    "model_version",
    "prompt_version",
    "tools_version",
)

#: per-event columns, in the order the hot path packs them after the run's static tuple
ROW_FIELDS = (
    "seq",
    "step",
    "ts",
    "kind",
    "name",
    "call_id",
    "args",
    "output",
    "status",
    "error",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_ms",
    "attrs",
)

LEDGER_STATUSES = tuple(LedgerStatus)


class LedgerRow(TypedDict, total=False):
    """One ledger row as the ledger hands it to the writer (``ts`` and ``schema_version`` are
    filled in when it is written)."""

    entry_id: str
    run_id: str
    tenant: str
    call_id: str
    ts: int  # microseconds since the epoch, UTC
    tool: str
    destination: str | None
    action: str
    idempotency_key: str | None
    request_hash: str | None
    status: str
    amount: float | None
    currency: str | None
    reversible: bool | None
    compensates: str | None
    result: str | None
    release_id: str
    schema_version: int


#: one row per state change of a side effect; rows of one effect share its entry_id
LEDGER_SCHEMA = pa.schema(
    [
        ("entry_id", pa.string()),
        ("run_id", pa.string()),
        ("tenant", pa.string()),
        ("call_id", pa.string()),
        ("ts", _TS),
        ("tool", pa.string()),
        ("destination", pa.string()),
        ("action", pa.string()),
        ("idempotency_key", pa.string()),
        ("request_hash", pa.string()),
        ("status", pa.string()),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("reversible", pa.bool_()),
        ("compensates", pa.string()),
        ("result", pa.string()),
        ("release_id", pa.string()),
        ("schema_version", pa.int16()),
    ],
    metadata={"tracekit.table": "ledger", "tracekit.schema_version": str(SCHEMA_VERSION)},
)

#: every table of the data plane, by name (the folder under the store root)
TABLES = {"events": EVENT_SCHEMA, "ledger": LEDGER_SCHEMA}

#: the order compaction writes each table in (one run's rows together, for pruning)
SORT_KEYS = {
    "events": [("run_id", "ascending"), ("seq", "ascending")],
    "ledger": [("run_id", "ascending"), ("ts", "ascending"), ("entry_id", "ascending")],
}
