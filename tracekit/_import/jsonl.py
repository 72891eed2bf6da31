"""A team's own agent logs, one event a line (``--format jsonl``), and tracekit's own event rows
as JSON lines (what ``tracekit query --json`` prints), so such a run imports again.

Each line is an object with ``run_id``, ``kind`` (an event kind: prompt, model_output,
tool_call, tool_result, guard, ...) and ``ts`` (ISO-8601, naive read as UTC; or a number of
seconds, milliseconds, microseconds or nanoseconds since the epoch, told apart by size). The
event's columns are read by their names (``name``, ``call_id``, ``args``, ``output``,
``status``, ``error``, ``tokens_in``, ``tokens_out``, ``cost_usd``, ``latency_ms``, ``model``,
``tenant``, ``parent_run_id``); ``args``, ``output`` and ``attrs`` may be JSON or JSON text; every
other key is kept in ``attrs``. A ``run_start`` line names the run, a ``run_end`` line with status
``error`` fails it; the loader writes both events itself. The run id is the line's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from ..errors import ImportFormatError
from .drafts import Draft, Unit
from .genai import as_json
from .jsonfile import iso_ns, load_lines

__all__ = ["read", "sniff", "timestamp_ns"]

_WHAT = "JSONL of agent events (a JSON object a line with run_id, kind and ts)"
_KINDS = frozenset(EventKind)
_STATUSES = frozenset(EventStatus)
_COLUMNS = ("name", "call_id", "args", "output", "status", "error", "tokens_in", "tokens_out",
            "cost_usd", "latency_ms", "attrs", "model", "tenant", "parent_run_id", "run_id",
            "kind", "ts")  # fmt: skip
#: tracekit's own columns that the loader derives again: not kept in attrs
_DERIVED = frozenset({"seq", "step", "event_id", "schema_version", "release_id", "root_run_id",
                      "model_version", "prompt_version", "tools_version"})  # fmt: skip
#: the status of an event whose line gives none (``ok`` for the others)
_OK: str | None = EventStatus.OK
_OPENING: dict[str, str | None] = {EventKind.TOOL_CALL: EventStatus.STARTED,
                                   EventKind.RUN_START: EventStatus.RUNNING,
                                   EventKind.PROMPT: None}  # fmt: skip


def sniff(path: Path, head: str) -> bool:
    first = next((line for line in head.splitlines() if line.strip()), "")
    try:
        found = json.loads(first)
    except ValueError:
        return False
    return isinstance(found, dict) and "run_id" in found and "kind" in found


def read(path: Path, fmt: str) -> Iterator[Unit]:
    """A unit a line, each the run its line names."""
    for number, line in enumerate(load_lines(path, _WHAT), 1):
        yield _unit(path, number, line)


def _unit(path: Path, number: int, line: Any) -> Unit:
    if not isinstance(line, dict):
        raise ImportFormatError(f"{path}:{number}: not {_WHAT}: the line is not an object")
    missing = [k for k in ("run_id", "kind", "ts") if line.get(k) in (None, "")]
    if missing:
        raise ImportFormatError(f"{path}:{number}: no {', '.join(missing)}: each line of "
                                f"{_WHAT} needs them")  # fmt: skip
    kind = str(line["kind"])
    if kind not in _KINDS:
        raise ImportFormatError(f"{path}:{number}: unknown kind {kind!r}: use one of "
                                f"{', '.join(sorted(_KINDS))}")  # fmt: skip
    ts = _ts(path, number, line["ts"])
    status = _status(path, number, kind, line.get("status"))
    run_id, tenant = str(line["run_id"]), _text(line.get("tenant"))
    parent = _text(line.get("parent_run_id"))
    if kind in (EventKind.RUN_START, EventKind.RUN_END):
        failed = kind == EventKind.RUN_END and status == EventStatus.ERROR
        error = str(line.get("error") or "") if failed else None
        name = _text(line.get("name")) if kind == EventKind.RUN_START else None
        meta = _meta(line) if kind == EventKind.RUN_START else None
        return Unit(run_id, ts, ts, (), name, failed, error, tenant, "jsonl", meta, parent)
    return Unit(run_id, ts, ts, (_draft(line, kind, ts, status),), None, False, None, tenant,
                "jsonl", None, parent)  # fmt: skip


def _draft(line: dict[str, Any], kind: str, ts: int, status: str | None) -> Draft:
    return Draft(ts, 0, kind, _text(line.get("name")), _text(line.get("call_id")),
                 _json_text(line.get("args")), _json_text(line.get("output")), status,
                 _text(line.get("error")), _number(line.get("tokens_in"), int),
                 _number(line.get("tokens_out"), int), _number(line.get("cost_usd"), float),
                 _number(line.get("latency_ms"), float), _attrs(line),
                 _model(line, kind))  # fmt: skip


def _model(line: dict[str, Any], kind: str) -> str | None:
    """The model that answered: ``model``, or the release's model on tracekit's own rows."""
    given = line.get("model") or (line.get("model_version") if kind == EventKind.MODEL_OUTPUT
                                  else None)  # fmt: skip
    return _text(given)


def _attrs(line: dict[str, Any]) -> str | None:
    """The line's ``attrs`` with every key tracekit has no column for."""
    given = as_json(line.get("attrs"))
    attrs = dict(given) if isinstance(given, dict) else {}
    if given is not None and not isinstance(given, dict):
        attrs["attrs"] = given
    attrs |= {k: v for k, v in line.items() if k not in _COLUMNS and k not in _DERIVED}
    return canonical_json(attrs) if attrs else None


def _json_text(value: Any) -> str | None:
    """A column of JSON text: JSON given as text kept as JSON, any other value encoded."""
    return None if value is None else canonical_json(as_json(value))


def _status(path: Path, number: int, kind: str, given: Any) -> str | None:
    if given is None or given == "":
        return _OPENING.get(kind, _OK)
    if str(given) not in _STATUSES:
        raise ImportFormatError(f"{path}:{number}: unknown status {given!r}: use one of "
                                f"{', '.join(sorted(_STATUSES))}")  # fmt: skip
    return str(given)


def _meta(line: dict[str, Any]) -> dict[str, Any] | None:
    """What a ``run_start`` line says of the run beyond its columns (its ``attrs``)."""
    found = json.loads(attrs) if (attrs := _attrs(line)) else None
    return found if isinstance(found, dict) else None


def _ts(path: Path, number: int, given: Any) -> int:
    try:
        return timestamp_ns(given)
    except (TypeError, ValueError):
        raise ImportFormatError(
            f"{path}:{number}: ts {given!r} is not a time: give ISO-8601 (2026-12-03T10:00:00Z) "
            "or seconds, ms, us or ns since the epoch"
        ) from None


def timestamp_ns(given: Any) -> int:
    """A recorded time as ns since the epoch: ISO-8601 text (naive: UTC), or a number of
    seconds, ms, us or ns (told apart by size: a run recorded after 1973)."""
    if isinstance(given, bool):
        raise TypeError(given)
    if isinstance(given, str):
        given = float(given) if given.strip().replace(".", "", 1).isdigit() else given
    if isinstance(given, int | float):
        for scale, above in ((1, 1e17), (1_000, 1e14), (1_000_000, 1e11)):
            if given > above:
                return int(given * scale)
        return int(given * 1_000_000_000)
    return iso_ns(str(given))


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None
