"""Event rows: the one recipe for a stored event, and the sinks rows go to.

``event_row`` builds a row: the run's static tuple (identity, tenant, release), then the
decision's columns in ``ROW_FIELDS`` order. The live run passes its own seq, step and clock;
an importer passes the recorded ones. ``to_batch`` turns rows into the stored Arrow batch:
redaction (with the count of values replaced in ``attrs.redacted``), event ids, the schema
version, and never a lost row (a value that will not convert is coerced, at worst replaced
by a placeholder naming the problem).

A JSON column may be a ``Deferred``: the object and its encoder, handed over by the hot path
and encoded by ``to_batch`` on the writer thread (``resolved`` encodes a row's).

A sink takes rows (``emit``), makes them durable (``flush``) and stops (``shutdown``): the
recorder is the store's sink; ``MemorySink`` keeps rows in memory (agent replay, tests).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from .._base.encode import dump_plain
from .._base.redact import Redactor
from .._base.schema import EVENT_SCHEMA, ROW_FIELDS, SCHEMA_VERSION, STATIC_FIELDS
from .._base.vocab import EventStatus

__all__ = [
    "Deferred",
    "Event",
    "EventRow",
    "MemorySink",
    "RunStatic",
    "Sink",
    "event_row",
    "resolved",
    "to_batch",
]

#: per run: run_id, parent_run_id, root_run_id, tenant, release_id, model, prompt, tools
RunStatic = tuple[str, str | None, str, str, str, str, str, str]
#: (static, seq, step, ts_us, kind, name, call_id, args, output, status, error, tokens_in,
#:  tokens_out, cost_usd, latency_ms, attrs): what the hot path hands a sink
EventRow = tuple[Any, ...]

_ROW = {name: i + 1 for i, name in enumerate(ROW_FIELDS)}  # column 0 is the run's static tuple
_JSON_FIELDS = ("args", "output", "attrs")
_TEXT_FIELDS = ("error", "name")
_TYPES = {f.name: f.type for f in EVENT_SCHEMA}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_row(
    static: RunStatic,
    seq: int,
    step: int,
    ts_us: int,
    kind: str,
    name: str | None = None,
    call_id: str | None = None,
    args: str | None = None,
    output: str | None = None,
    status: str | None = None,
    error: str | None = None,
    tokens_in: int | None = None,
    tokens_out: int | None = None,
    cost_usd: float | None = None,
    latency_ms: float | None = None,
    attrs: str | None = None,
) -> EventRow:
    """One event row (``args``, ``output`` and ``attrs`` already JSON text)."""
    return (
        static,
        seq,
        step,
        ts_us,
        kind,
        name,
        call_id,
        args,
        output,
        status,
        error,
        tokens_in,
        tokens_out,
        cost_usd,
        latency_ms,
        attrs,
    )


class Deferred(tuple[Callable[[Any], "str | None"], Any]):
    """A JSON column (``args``, ``output``, ``attrs``) whose text is made later, off the agent's
    path: the hot path hands over ``Deferred((encode, value))`` (an SDK's answer, a snapshot of
    a prompt) and the writer thread calls ``encode(value)``, so an agent step never waits on
    encoding. A pair (a tuple) so that making one runs no Python code."""

    __slots__ = ()

    def text(self) -> str | None:
        """The column's JSON text; a note naming the problem when ``encode`` fails."""
        try:
            return self[0](self[1])
        except Exception as exc:
            return dump_plain({"$unencodable": f"{type(exc).__name__}: {exc}"})


_DEFERRABLE = tuple(_ROW[name] for name in _JSON_FIELDS)


def resolved(row: EventRow) -> EventRow:
    """``row`` with its deferred columns encoded (the row itself when it has none)."""
    if not any(type(row[i]) is Deferred for i in _DEFERRABLE):
        return row
    out = list(row)
    for i in _DEFERRABLE:
        out[i] = _text(out[i])
    return tuple(out)


def _text(value: Any) -> Any:
    return value.text() if type(value) is Deferred else value


@dataclass(frozen=True, slots=True)
class Event:
    """An event row with its columns by name (what ``MemorySink.events()`` returns)."""

    run_id: str
    parent_run_id: str | None
    root_run_id: str
    tenant: str
    release_id: str
    model_version: str
    prompt_version: str
    tools_version: str
    seq: int
    step: int
    ts: datetime
    kind: str
    name: str | None
    call_id: str | None
    args: str | None
    output: str | None
    status: str | None
    error: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    latency_ms: float | None
    attrs: str | None

    @classmethod
    def of(cls, row: EventRow) -> Event:
        static, seq, step, ts_us, *rest = resolved(row)
        when = _EPOCH + timedelta(microseconds=int(ts_us))
        return cls(*static, seq, step, when, *rest)  # type: ignore[call-arg]

    @property
    def decoded_attrs(self) -> dict[str, Any]:
        """``attrs`` as a dict (empty when there are none)."""
        value = json.loads(self.attrs) if self.attrs else {}
        return value if isinstance(value, dict) else {"value": value}


class Sink(Protocol):
    """Where event rows go. ``emit`` is on the agent's hot path: it must not do I/O."""

    def emit(self, row: EventRow) -> None: ...
    def flush(self, timeout: float | None = None) -> bool: ...
    def shutdown(self, timeout: float = 30.0) -> bool: ...


class MemorySink:
    """A sink that keeps every row in memory, in order (like OpenTelemetry's in-memory span
    exporter): nothing reaches a store. ``events()`` gives them with columns by name."""

    emit: Callable[[EventRow], None]  # the list's own append: the cheapest sink there is

    def __init__(self) -> None:
        self.rows: list[EventRow] = []
        self.emit = self.rows.append
        self._lock = threading.Lock()

    def events(self, kind: str | None = None) -> list[Event]:
        """Every row so far (of one kind, if given), as ``Event`` records."""
        with self._lock:
            rows = list(self.rows)
        return [Event.of(r) for r in rows if kind is None or r[4] == kind]

    def clear(self) -> None:
        with self._lock:
            self.rows.clear()

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self, timeout: float = 30.0) -> bool:
        return True


# -- rows to the stored Arrow batch -----------------------------------------------------------
def to_batch(
    rows: list[EventRow], redactor: Redactor, writer_id: str, first_no: int
) -> pa.RecordBatch:
    """The stored form of ``rows``: redacted, with event ids ``<ts><writer><n>`` numbered from
    ``first_no``. One row that will not convert never holds back the others."""
    try:
        return _to_batch(rows, redactor, writer_id, first_no)
    except Exception:
        rows = [_convertible(resolved(r), redactor) for r in rows]
        return _to_batch(rows, redactor, writer_id, first_no)


def _to_batch(
    rows: list[EventRow], redactor: Redactor, writer_id: str, first_no: int
) -> pa.RecordBatch:
    n = len(rows)
    cols: list[Any] = list(zip(*rows, strict=True))
    for i in _DEFERRABLE:  # the deferred JSON columns encoded, a column at a time
        cols[i] = [v.text() if type(v) is Deferred else v for v in cols[i]]
    named = {name: cols[i] for name, i in _ROW.items()}
    redacted = redactor.redact_columns(named, _JSON_FIELDS, _TEXT_FIELDS)
    arrays: dict[str, pa.Array] = _static_arrays(cols[0])
    for name in _ROW:
        arrays[name] = pa.array(named[name], _TYPES[name])
    if redacted:
        arrays["attrs"] = pa.array(_with_redaction_counts(named["attrs"], redacted), pa.string())
    arrays["event_id"] = _event_ids(cols[_ROW["ts"]], writer_id, first_no, n)
    arrays["schema_version"] = pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int16()), n)
    return pa.RecordBatch.from_arrays([arrays[f.name] for f in EVENT_SCHEMA], schema=EVENT_SCHEMA)


def _event_ids(ts: tuple[int, ...], writer_id: str, start: int, n: int) -> pa.Array:
    """Sortable unique ids: 16-digit microsecond time, writer id, per-writer counter."""
    ts_text = pc.utf8_lpad(pc.cast(pa.array(ts, pa.int64()), pa.string()), 16, "0")
    counter = pc.utf8_lpad(
        pc.cast(pa.array(range(start, start + n), pa.int64()), pa.string()), 9, "0"
    )
    return pc.binary_join_element_wise(ts_text, writer_id, counter, "")


def _static_arrays(statics: tuple[RunStatic, ...]) -> dict[str, pa.Array]:
    """Expand the per-run static tuples into columns without a per-row, per-column loop."""
    encoded = pa.array(list(map(id, statics)), pa.int64()).dictionary_encode()
    by_id = dict(zip(map(id, statics), statics, strict=True))
    rows = [by_id[key] for key in encoded.dictionary.to_pylist()]
    return {
        name: pa.array([r[j] for r in rows], pa.string()).take(encoded.indices)
        for j, name in enumerate(STATIC_FIELDS)
    }


def _with_redaction_counts(attrs: Any, counts: dict[int, int]) -> list[Any]:
    out = list(attrs)
    for i, n in counts.items():
        current = json.loads(out[i]) if out[i] else {}
        if not isinstance(current, dict):
            current = {"value": current}
        before = current.get("redacted")
        current["redacted"] = (before if type(before) is int else 0) + n
        out[i] = dump_plain(dict(sorted(current.items())))
    return out


def _convertible(row: EventRow, redactor: Redactor) -> EventRow:
    problem: BaseException | None = None
    for candidate in (row, _coerce(row)):
        try:
            _to_batch([candidate], redactor, "", 0)
        except Exception as exc:
            problem = exc
        else:
            return candidate
    return _placeholder(row, problem or ValueError("unconvertible"))


_INT_FIELDS = {_ROW[n] for n in ("seq", "step", "ts", "tokens_in", "tokens_out")}
_INT64 = range(-(2**63), 2**63)
_FLOAT_FIELDS = {_ROW[n] for n in ("cost_usd", "latency_ms")}


def _coerce(row: EventRow) -> EventRow:
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


def _placeholder(row: EventRow, problem: BaseException) -> EventRow:
    """The row's identity and order kept, its payload replaced by what went wrong."""
    static, seq, step, ts, kind = row[:5]
    note = f"tracekit could not record this event's payload: {type(problem).__name__}"
    return event_row(static, seq, step, ts, kind, status=EventStatus.ERROR, error=note)
