"""The recorder: the hot path appends a tuple; a writer thread does every byte of I/O.

Like OpenTelemetry's BatchSpanProcessor, the caller's thread only enqueues. The writer thread
drains the queue, redacts, turns the rows into one Arrow record batch, appends it to this
writer's segment and fsyncs; only then does ``flush()`` return. A second thread compacts full
segments into Parquet and recovers segments left by dead writers.
"""

from __future__ import annotations

import functools
import os
import queue
import secrets
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from .._base.redact import Redactor
from .._store.compaction import close_and_compact, recover
from .._store.layout import Store
from .._store.ledger import LedgerWriter
from .._store.segments import SegmentWriter
from ..errors import TracekitWarning
from .rows import EventRow, to_batch

__all__ = ["Recorder"]


class Recorder:
    """Buffers events in memory and makes them durable in the store from a background thread."""

    def __init__(
        self,
        store: Store,
        redactor: Redactor,
        *,
        rotate_rows: int = 128 * 1024,
        rotate_seconds: float = 3600.0,
        max_queue: int = 20_000,
        interval: float = 0.2,
    ) -> None:
        self.store = store
        self.redactor = redactor
        self.writer_id = f"{os.getpid():x}{secrets.token_hex(4)}"
        self.rotate_rows = rotate_rows
        self.rotate_seconds = rotate_seconds
        self.max_queue = max_queue
        self.interval = interval
        self.last_error: BaseException | None = None
        self._queue: deque[EventRow] = deque()
        self._cond = threading.Condition()
        self._taken = 0
        self._durable = 0
        self._wake = threading.Event()
        self._closed = False
        self._segment: SegmentWriter | None = None
        self._segment_no = 0
        self._segment_started = 0.0
        self._event_no = 0
        self._retry: list[EventRow] = []
        self._failures = 0
        self._abandoned: list[Path] = []  # segments given up after a failed write
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._jobs.put(self._recover)
        self._compactor = threading.Thread(
            target=self._run_jobs, name="tracekit-compactor", daemon=True
        )
        self._compactor.start()
        self._thread = threading.Thread(target=self._run, name="tracekit-writer", daemon=True)
        self._thread.start()
        self._ledger: LedgerWriter | None = None

    @property
    def ledger(self) -> LedgerWriter:
        """This writer's side-effect ledger (synchronous, durable appends)."""
        if self._ledger is None:
            self._ledger = LedgerWriter(self.store, self.writer_id, self.redactor)
        return self._ledger

    def failure(self) -> str | None:
        """Why events or ledger rows cannot be written now (None when both can)."""
        for what, error in (("events", self.last_error), ("ledger", self._ledger_error())):
            if error is not None:
                return f"{what} in {self.store.root}: {error}"
        return None

    def _ledger_error(self) -> Exception | None:
        return self._ledger.last_error if self._ledger is not None else None

    # -- hot path -------------------------------------------------------------------------
    def emit(self, row: EventRow) -> None:
        """Enqueue one event row; never does I/O. Waits only if the writer is far behind."""
        queue = self._queue
        queue.append(row)
        if len(queue) >= self.max_queue:
            self._backpressure()

    def _backpressure(self) -> None:
        self._wake.set()
        low = self.max_queue // 2
        while len(self._queue) > low and not self._closed and self._thread.is_alive():
            time.sleep(0.001)

    # -- durability -----------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Block until every event emitted before this call is durable; False on timeout, or
        when the writer's next attempt fails (a full disk: the events stay in memory and are
        written when it can)."""
        with self._cond:
            target = self._taken + len(self._queue)
            failures = self._failures  # a write that fails from now on answers False
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._durable < target:
                if self._failures != failures or not self._thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.05 if left is None else min(left, 0.05))
        return True

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Flush, stop the writer, compact the open segment into Parquet; idempotent."""
        if self._closed:
            return True
        ok = self.flush(timeout)
        if self._ledger is not None:
            try:
                self._ledger.close()
            except Exception as exc:  # left as a segment: recovered later, never lost
                warnings.warn(
                    f"tracekit could not compact the ledger: {exc}", TracekitWarning, stacklevel=1
                )
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self._jobs.put(self._recover_abandoned)
        self._jobs.put(None)
        self._compactor.join(timeout)
        return ok

    # -- writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            closing = self._closed
            self._drain()
            if closing and not self._queue and not self._retry:
                break
        self._rotate()

    def _take(self) -> list[EventRow]:
        queue = self._queue
        with self._cond:
            items, self._retry = self._retry, []
            n = len(queue)
            items.extend(queue.popleft() for _ in range(n))
            self._taken += n
        return items

    def _drain(self) -> None:
        ledger = self._ledger
        if ledger is not None and ledger.last_error is not None:
            ledger.retry()
        items = self._take()
        if not items:
            self._maybe_rotate()
            return
        try:
            batch = to_batch(items, self.redactor, self.writer_id, self._event_no)
            self._append(batch)
        except BaseException as exc:  # disk full, permissions: keep the rows, retry later
            self._failed(items, exc)
            return
        self._event_no += len(items)
        with self._cond:
            self._durable += len(items)
            self.last_error = None
            self._cond.notify_all()
        self._maybe_rotate()

    def _failed(self, items: list[EventRow], exc: BaseException) -> None:
        with self._cond:
            self._retry = items + self._retry
            first = self.last_error is None
            self.last_error = exc
            self._failures += 1
            self._cond.notify_all()
        if first:
            warnings.warn(
                f"tracekit could not write to {self.store.root}: {exc}; "
                f"{len(items)} events kept in memory, retrying",
                TracekitWarning,
                stacklevel=1,
            )
        if self._segment is not None:  # the segment may hold a torn batch: start a new one
            self._abandon_segment()

    def _append(self, batch: pa.RecordBatch) -> None:
        if self._segment is None:
            self._segment_no += 1
            self._segment = SegmentWriter(self.store, self.writer_id, self._segment_no)
            self._segment_started = time.monotonic()
        self._segment.append(batch)

    def _maybe_rotate(self) -> None:
        seg = self._segment
        if seg is None:
            return
        age = time.monotonic() - self._segment_started
        if seg.rows >= self.rotate_rows or (seg.rows and age >= self.rotate_seconds):
            self._rotate()

    def _rotate(self) -> None:
        seg, self._segment = self._segment, None
        if seg is not None:
            self._jobs.put(functools.partial(self._compact, seg))

    def _abandon_segment(self) -> None:
        seg, self._segment = self._segment, None
        if seg is not None:
            seg.abandon()
            if seg.published:
                self._abandoned.append(seg.path)

    def _run_jobs(self) -> None:
        """The compactor thread: compactions and recovery, in order, off the writer's path."""
        while (job := self._jobs.get()) is not None:
            job()

    def _compact(self, seg: SegmentWriter) -> None:
        try:
            close_and_compact(seg)
        except Exception as exc:  # left on disk: recovery compacts it later
            warnings.warn(
                f"tracekit could not compact {seg.path}: {exc}; it stays a segment and is "
                "recovered by the next writer or `tracekit recover`",
                TracekitWarning,
                stacklevel=1,
            )

    def _recover_abandoned(self) -> None:
        """At shutdown: the segments this writer gave up (each without its torn batch)."""
        abandoned = self._abandoned + (self._ledger.abandoned if self._ledger else [])
        if abandoned:
            try:
                recover(self.store, abandoned)
            except Exception as exc:
                warnings.warn(
                    f"tracekit could not compact {len(abandoned)} segments given up after a "
                    f"failed write: {exc}; `tracekit recover` compacts them",
                    TracekitWarning,
                    stacklevel=1,
                )

    def _recover(self) -> None:
        try:
            recover(self.store)
        except Exception as exc:
            warnings.warn(f"tracekit recovery failed: {exc}", TracekitWarning, stacklevel=1)
