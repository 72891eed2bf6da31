"""The recorder: the hot path appends a tuple; a writer thread does every byte of I/O.

Like OpenTelemetry's BatchSpanProcessor, the caller's thread only enqueues. The writer thread
drains the queue, redacts, turns the rows into one Arrow record batch, appends it to this
writer's segment and fsyncs; only then does ``flush()`` return. A second thread compacts full
segments into Parquet and recovers segments left by dead writers.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import secrets
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._base.encode import dump_plain
from .._base.redact import Redactor
from .._base.schema import EVENT_SCHEMA, ROW_FIELDS, SCHEMA_VERSION, STATIC_FIELDS
from .._store.layout import SegmentWriter, Store, TracekitWarning
from .._store.ledger import LedgerWriter

__all__ = ["Recorder"]

_ROW = {name: i + 1 for i, name in enumerate(ROW_FIELDS)}  # column 0 is the run's static tuple
_JSON_COLUMNS = (_ROW["args"], _ROW["output"], _ROW["attrs"])
_TEXT_COLUMNS = (_ROW["error"], _ROW["name"])
_ATTRS_COLUMN = _ROW["attrs"]
_TYPES = {f.name: f.type for f in EVENT_SCHEMA}


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
        self._queue: deque[tuple[Any, ...]] = deque()
        self._cond = threading.Condition()
        self._taken = 0
        self._durable = 0
        self._wake = threading.Event()
        self._closed = False
        self._segment: SegmentWriter | None = None
        self._segment_no = 0
        self._segment_started = 0.0
        self._event_no = 0
        self._retry: list[tuple[Any, ...]] = []
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

    # -- hot path -------------------------------------------------------------------------
    def emit(self, row: tuple[Any, ...]) -> None:
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
        """Block until every event emitted before this call is durable; False on timeout/error."""
        with self._cond:
            target = self._taken + len(self._queue)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._durable < target:
                if self.last_error is not None or not self._thread.is_alive():
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
                warnings.warn(f"tracekit could not compact the ledger: {exc}", TracekitWarning,
                              stacklevel=1)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
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

    def _take(self) -> list[tuple[Any, ...]]:
        queue = self._queue
        with self._cond:
            items, self._retry = self._retry, []
            n = len(queue)
            items.extend(queue.popleft() for _ in range(n))
            self._taken += n
        return items

    def _drain(self) -> None:
        items = self._take()
        if not items:
            self._maybe_rotate()
            return
        try:
            batch = self._convert(items)
            self._append(batch)
        except BaseException as exc:  # disk full, permissions: keep the rows, retry later
            self._failed(items, exc)
            return
        with self._cond:
            self._durable += len(items)
            self.last_error = None
            self._cond.notify_all()
        self._maybe_rotate()

    def _failed(self, items: list[tuple[Any, ...]], exc: BaseException) -> None:
        with self._cond:
            self._retry = items + self._retry
            first = self.last_error is None
            self.last_error = exc
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

    def _run_jobs(self) -> None:
        """The compactor thread: compactions and recovery, in order, off the writer's path."""
        while (job := self._jobs.get()) is not None:
            job()

    def _compact(self, seg: SegmentWriter) -> None:
        try:
            seg.close_and_compact()
        except Exception as exc:  # left on disk: recovery compacts it later
            warnings.warn(
                f"tracekit could not compact {seg.path}: {exc}; it stays a segment and is "
                "recovered by the next writer or `tracekit recover`",
                TracekitWarning,
                stacklevel=1,
            )

    def _recover(self) -> None:
        try:
            self.store.recover()
        except Exception as exc:
            warnings.warn(f"tracekit recovery failed: {exc}", TracekitWarning, stacklevel=1)

    # -- rows to Arrow --------------------------------------------------------------------
    def _convert(self, items: list[tuple[Any, ...]]) -> pa.RecordBatch:
        """One record batch. A row that will not convert is coerced, or at worst kept as a
        placeholder naming the problem: one bad row never holds back the others."""
        try:
            return self._to_batch(items)
        except Exception:
            return self._to_batch([self._convertible(row) for row in items])

    def _convertible(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        for candidate in (row, _coerce(row)):
            try:
                self._to_batch([candidate])
            except Exception as exc:
                problem = exc
            else:
                return candidate
        return _placeholder(row, problem)

    def _to_batch(self, items: list[tuple[Any, ...]]) -> pa.RecordBatch:
        n = len(items)
        cols = list(zip(*items, strict=True))
        redacted = self._redact(cols)
        arrays: dict[str, pa.Array] = {}
        arrays.update(_static_arrays(cols[0]))
        for name, i in _ROW.items():
            arrays[name] = pa.array(cols[i], _TYPES[name])
        if redacted:
            arrays["attrs"] = pa.array(_with_redaction_counts(cols[_ATTRS_COLUMN], redacted),
                                       pa.string())
        arrays["event_id"] = self._event_ids(cols[_ROW["ts"]], n)
        arrays["schema_version"] = pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int16()), n)
        return pa.RecordBatch.from_arrays([arrays[f.name] for f in EVENT_SCHEMA],
                                          schema=EVENT_SCHEMA)

    def _event_ids(self, ts: tuple[int, ...], n: int) -> pa.Array:
        """Sortable unique ids: 16-digit microsecond time, writer id, per-writer counter."""
        start = self._event_no
        self._event_no += n
        ts_text = pc.utf8_lpad(pc.cast(pa.array(ts, pa.int64()), pa.string()), 16, "0")
        counter = pc.utf8_lpad(
            pc.cast(pa.array(range(start, start + n), pa.int64()), pa.string()), 9, "0"
        )
        return pc.binary_join_element_wise(ts_text, self.writer_id, counter, "")

    def _redact(self, cols: list[tuple[Any, ...]]) -> dict[int, int]:
        """Redact the JSON and text columns in place; returns {row: values replaced}.

        Each distinct value is checked once (a looping agent repeats its payloads), and a
        column whose values cannot match any rule is passed over in one scan.
        """
        counts: dict[int, int] = {}
        red = self.redactor
        for c in (*_JSON_COLUMNS, *_TEXT_COLUMNS):
            column = cols[c]
            distinct = [v for v in set(column) if type(v) is str]
            if not red.might_match("\x00".join(distinct)):
                continue
            scrub = red.redact_text if c in _TEXT_COLUMNS else red.redact_json
            done = {v: scrub(v) for v in distinct if red.might_match(v)}
            if not done:
                continue
            values = list(column)
            for i, value in enumerate(values):
                hit = done.get(value) if type(value) is str else None
                if hit is not None and hit[1]:
                    values[i] = hit[0]
                    counts[i] = counts.get(i, 0) + hit[1]
            cols[c] = tuple(values)
        return counts


def _static_arrays(statics: tuple[tuple[Any, ...], ...]) -> dict[str, pa.Array]:
    """Expand the per-run static tuples into columns without a per-row, per-column loop."""
    encoded = pa.array(list(map(id, statics)), pa.int64()).dictionary_encode()
    by_id = dict(zip(map(id, statics), statics, strict=True))
    rows = [by_id[key] for key in encoded.dictionary.to_pylist()]
    return {
        name: pa.array([r[j] for r in rows], pa.string()).take(encoded.indices)
        for j, name in enumerate(STATIC_FIELDS)
    }


def _with_redaction_counts(attrs: tuple[str | None, ...], counts: dict[int, int]) -> list[Any]:
    out = list(attrs)
    for i, n in counts.items():
        current = json.loads(out[i]) if out[i] else {}
        if not isinstance(current, dict):
            current = {"value": current}
        before = current.get("redacted")
        current["redacted"] = (before if type(before) is int else 0) + n
        out[i] = dump_plain(dict(sorted(current.items())))
    return out


_INT_FIELDS = {_ROW[n] for n in ("seq", "step", "ts", "tokens_in", "tokens_out")}
_INT64 = range(-(2**63), 2**63)
_FLOAT_FIELDS = {_ROW[n] for n in ("cost_usd", "latency_ms")}


def _coerce(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row whose every value has its column's type (a value that will not convert is None)."""
    out = list(row)
    for i in range(1, len(out)):
        value = out[i]
        if value is None:
            continue
        try:
            if i in _INT_FIELDS:
                out[i] = int(value) if int(value) in _INT64 else None
            elif i in _FLOAT_FIELDS:
                out[i] = float(value)
            else:
                out[i] = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
        except (TypeError, ValueError, OverflowError):
            out[i] = None
    return tuple(out)


def _placeholder(row: tuple[Any, ...], problem: BaseException) -> tuple[Any, ...]:
    """The row's identity and order kept, its payload replaced by what went wrong."""
    static, seq, step, ts, kind = row[:5]
    note = f"tracekit could not record this event's payload: {type(problem).__name__}"
    return (static, seq, step, ts, kind, None, None, None, None, "error", note,
            None, None, None, None, None)
