"""The side-effect ledger: what the agent did to the world, written ahead of the effect.

Every state change of a side effect is one row (``reserved``, ``fired``, ``failed``,
``suppressed_duplicate``, ``compensated``). Unlike events, a ledger row is made durable on the
caller's thread before the call goes on: the ``reserved`` row is on disk before the effect runs,
so after a crash "reserved with no outcome" reads as *may have fired*, never as *did not happen*.
Rows go to their own write-ahead segment (``segments/ledger-<writer>-<n>.arrows``) and are
compacted into ``ledger/date=YYYY-MM-DD/`` like events.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from .._base.redact import Redactor
from .._base.schema import LEDGER_SCHEMA, SCHEMA_VERSION, LedgerRow
from ..errors import LedgerWriteFailed, TracekitWarning
from .compaction import close_and_compact
from .layout import Store
from .segments import SegmentWriter

__all__ = ["LedgerWriter"]

REDACTED = ("result", "destination")  # the columns of a ledger row that may hold a secret


class LedgerWriter:
    """Appends ledger rows durably (write + fsync) before returning; thread-safe.

    A failed append (a full disk) never tears the segment for the rows after it: the segment
    is abandoned (recovered later without its torn batch) and the next append opens another.
    An outcome row that cannot be written is kept and written ahead of the next row; a
    reservation that cannot be written raises ``LedgerWriteFailed`` before the effect runs.
    """

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
        self._pending: list[dict[str, Any]] = []  # outcome rows not yet written, in order
        self.last_error: Exception | None = None
        self.abandoned: list[Path] = []  # segments given up after a failed append

    def append(self, row: LedgerRow, durable: bool = True) -> None:
        """Write one ledger row; with ``durable`` (a reservation) return only once it is on
        disk, or raise ``LedgerWriteFailed``. An outcome row may skip its own fsync (until the
        next one it reads as "reserved" after a crash: may have fired) and is kept in memory,
        written ahead of the next row, when the disk cannot take it."""
        complete = self._complete(row)
        with self._lock:
            self._pending.append(complete)
            try:
                self._write_pending(sync=durable or len(self._pending) > 1)
            except (OSError, pa.ArrowException) as exc:
                self._torn(exc)
                if durable:
                    self._pending.pop()  # this row, not on disk: the caller must not fire
                    raise LedgerWriteFailed(
                        f"the ledger could not record {row.get('tool')!r}'s reservation in "
                        f"{self.store.root} ({exc}); the effect did not run (free space: "
                        "a retry runs it once the ledger can be written)"
                    ) from exc
            if self._segment is not None and self._segment.rows >= self.rotate_rows:
                self._rotate()

    def retry(self) -> None:
        """After a failure: write the outcome rows kept in memory (called by the recorder's
        writer thread, so they land when space returns even if no write follows)."""
        with self._lock:
            if not self._pending:
                self.last_error = None  # nothing waits: the next reservation tries for itself
                return
            try:
                self._write_pending(sync=True)
            except (OSError, pa.ArrowException) as exc:
                self._torn(exc)

    def _rotate(self) -> None:
        try:
            self._close_segment()
        except OSError as exc:  # the rows are durable in the segment: recovered later
            warnings.warn(
                f"tracekit could not compact the ledger segment: {exc}; it is recovered later",
                TracekitWarning,
                stacklevel=3,
            )

    def _write_pending(self, sync: bool) -> None:
        batch = pa.RecordBatch.from_pylist(self._pending, schema=LEDGER_SCHEMA)
        if self._segment is None:
            self._n += 1
            self._segment = SegmentWriter(self.store, self.writer_id, self._n, "ledger")
        self._segment.append(batch, sync=sync)
        self._pending.clear()
        if self.last_error is not None:
            self.last_error = None
            warnings.warn(
                f"tracekit writes the ledger in {self.store.root} again",
                TracekitWarning,
                stacklevel=3,
            )

    def _torn(self, exc: Exception) -> None:
        """The segment may end in a torn batch: no row goes after it."""
        seg, self._segment = self._segment, None
        if seg is not None:
            seg.abandon()
            if seg.published:
                self.abandoned.append(seg.path)
        if self.last_error is None:
            warnings.warn(
                f"tracekit could not write the ledger in {self.store.root}: {exc}; outcomes "
                "are kept in memory and new writes refused until it can",
                TracekitWarning,
                stacklevel=3,
            )
        self.last_error = exc

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
        """Write the rows kept in memory and compact the open segment into Parquet. Rows that
        still cannot be written are named (redacted) in the error: the only copy left."""
        with self._lock:
            if self._pending:
                try:
                    self._write_pending(sync=True)
                except OSError as exc:
                    self._torn(exc)
                    lost = "; ".join(json.dumps(r, default=str) for r in self._pending)
                    raise OSError(
                        f"{len(self._pending)} ledger rows not written ({exc}): {lost}"
                    ) from exc
            self._close_segment()

    def _close_segment(self) -> None:
        seg, self._segment = self._segment, None
        if seg is not None:
            close_and_compact(seg)
