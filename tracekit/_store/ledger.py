"""The side-effect ledger: what the agent did to the world, written ahead of the effect.

Every state change of a side effect is one row (``reserved``, ``fired``, ``failed``,
``suppressed_duplicate``, ``compensated``). Unlike events, a ledger row is made durable on the
caller's thread before the call goes on: the ``reserved`` row is on disk before the effect runs,
so after a crash "reserved with no outcome" reads as *may have fired*, never as *did not happen*.
Rows go to their own write-ahead segment (``segments/ledger-<writer>-<n>.arrows``) and are
compacted into ``ledger/date=YYYY-MM-DD/`` like events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from .._base.redact import Redactor
from .._base.schema import LEDGER_SCHEMA, SCHEMA_VERSION, LedgerRow
from .compaction import close_and_compact
from .layout import Store
from .segments import SegmentWriter

__all__ = ["LedgerWriter"]

REDACTED = ("result", "destination")  # the columns of a ledger row that may hold a secret


class LedgerWriter:
    """Appends ledger rows durably (write + fsync) before returning; thread-safe."""

    def __init__(
        self, store: Store, writer_id: str, redactor: Redactor, rotate_rows: int = 64 * 1024
    ) -> None:
        self.store = store
        self.writer_id = writer_id
        self.redactor = redactor
        self.rotate_rows = rotate_rows
        self._lock = threading.Lock()
        self._segment: SegmentWriter | None = None
        self._n = 0

    def append(self, row: LedgerRow, durable: bool = True) -> None:
        """Write one ledger row; with ``durable`` (a reservation) return only once it is on
        disk. An outcome row may skip its own fsync: until the next one it reads as
        "reserved" after a crash, which is the safe reading (may have fired)."""
        batch = pa.RecordBatch.from_pylist([self._complete(row)], schema=LEDGER_SCHEMA)
        with self._lock:
            if self._segment is None:
                self._n += 1
                self._segment = SegmentWriter(self.store, self.writer_id, self._n, "ledger")
            self._segment.append(batch, sync=durable)
            if self._segment.rows >= self.rotate_rows:
                self._close_segment()

    def _complete(self, row: LedgerRow) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ts": time.time_ns() // 1000,
            "schema_version": SCHEMA_VERSION,
            **row,
        }
        if out.get("destination") is not None:
            out["destination"] = str(out["destination"])
        columns: dict[str, Sequence[Any]] = {name: [out.get(name)] for name in REDACTED}
        self.redactor.redact_columns(columns, ("result",), ("destination",))
        out.update((name, values[0]) for name, values in columns.items())
        return out

    def close(self) -> None:
        """Compact the open segment into Parquet."""
        with self._lock:
            self._close_segment()

    def _close_segment(self) -> None:
        seg, self._segment = self._segment, None
        if seg is not None:
            close_and_compact(seg)
