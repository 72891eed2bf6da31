"""Inspect AI eval logs (``.eval`` or ``.json``) as runs: ``inspect-<eval id>-<sample id>-<epoch>``.

A ``.eval`` log is a zip: ``header.json`` (written when the eval ends; ``_journal/start.json``
until then) holds the log's ``version``, ``status``, ``eval`` (the ``EvalSpec``: ``eval_id``,
``run_id``, ``task``, ``model``, ``dataset``, ``config``...), ``plan``, ``results``, ``stats``
and ``error``; ``samples/<id>_epoch_<n>.json`` holds each ``EvalSample``. Its members are
zstd-compressed (Inspect >= 0.3.2xx; read with Python 3.14's ``compression.zstd`` or the
``zstandard`` package when installed) or deflated (older logs). A ``.json`` log is the same
``EvalLog`` as one JSON object, its samples in ``samples``.

A sample may be condensed: strings longer than 100 characters replaced by
``attachment://<hash>`` (its ``attachments``), the ``input`` of a ``ModelEvent`` replaced by
``input_refs`` (``[start, end)`` ranges into ``events_data.messages``) and its
``call.request`` messages by ``call.call_refs`` (into ``events_data.calls``); all are resolved.

Each sample (id and epoch) is a run, named by the task, failed by the sample's ``error``;
its events: every ``ModelEvent`` a model call (a prompt of its ``input`` messages at its
``timestamp``; a model output of its first choice's message, its ``tool_calls`` declared,
its ``usage`` with its recorded ``total_cost``, at its ``completed`` time) and every
``ToolEvent`` a tool call (its ``function``, ``arguments``, ``result`` and ``error``, from
``timestamp`` to ``completed``, the tool call id the model gave). Events nested in older
logs (a ``subtask``'s or a tool's ``events``) are read as well; other events (spans, state,
scores, logs...) only bound the run in time. The eval's task, model and ids go in each
run's meta, with the sample's target, scores, limit and usage.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from ..errors import ImportFormatError
from .drafts import Draft, Unit
from .jsonfile import FIXED_EPOCH_NS, MS, as_dict, digest, load_document
from .source import open_binary

__all__ = ["read", "sniff"]

_WHAT = "an Inspect AI eval log (.eval or .json)"
_ZIP = "PK\x03\x04"
_ZSTD = 93  # the zip compression method of zstd
_ATTACHMENT = "attachment://"
_JSON_HEAD = re.compile(r'\A\s*\{\s*"version"\s*:\s*\d+\s*,\s*"status"\s*:\s*"'
                        r'(started|success|cancelled|error)"')  # fmt: skip
_SPEC_HEAD = re.compile(r'"eval"\s*:\s*\{\s*"(eval_set_id|eval_id|run_id)"\s*:')
_HEADERS = ("header.json", "_journal/start.json")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MODEL_TAKEN = frozenset({"event", "timestamp", "completed", "model", "input", "input_refs",
                          "output", "error", "tools", "tool_choice", "config"})  # fmt: skip
_OUTPUT_TAKEN = frozenset({"choices", "usage", "error", "model", "completion"})
_TOOL_TAKEN = frozenset({"event", "timestamp", "completed", "id", "function", "arguments",
                         "result", "error", "events"})  # fmt: skip


class _Run(NamedTuple):
    """What every unit of one sample shares."""

    run_id: str
    name: str
    meta: dict[str, Any]


def sniff(path: Path, head: str) -> bool:
    if head.startswith(_ZIP):
        start = head[:512]
        return any(name in start for name in (*_HEADERS, "samples/")) or (
            path.name.removesuffix(".gz").endswith(".eval"))  # fmt: skip
    if _JSON_HEAD.match(head):
        return True
    return bool(_SPEC_HEAD.search(head)) and '"task"' in head and '"samples"' in head


def read(path: Path, fmt: str) -> Iterator[Unit]:
    """A run per sample: its model calls and tool calls, and a unit spanning it."""
    header, samples = _load(path)
    spec = as_dict(header.get("eval"))
    if not spec:
        raise ImportFormatError(f"{path}: not {_WHAT}: expected an 'eval' spec in its header")
    key = str(spec.get("eval_id") or spec.get("run_id") or digest(path, 12))
    found = False
    for sample in samples:
        found = True
        yield from _sample_units(header, spec, key, _resolved(sample))
    if not found:
        raise ImportFormatError(f"{path}: not {_WHAT} with samples: expected the samples of "
                                "the eval (a header-only log has none)")  # fmt: skip


def _load(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The log's header and its samples, from a zip or a JSON log."""
    with open_binary(path) as fh:
        zipped = fh.read(4) == _ZIP.encode()
    if zipped:
        return _load_zip(path)
    doc = load_document(path, _WHAT)
    if not isinstance(doc, dict) or not isinstance(doc.get("eval"), dict):
        raise ImportFormatError(
            f"{path}: not {_WHAT}: expected a JSON object with an 'eval' spec and 'samples'"
        )
    samples = [s for s in doc.get("samples") or () if isinstance(s, dict)]
    return doc, iter(samples)


def _load_zip(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    with open_binary(path) as fh:
        data = fh.read()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ImportFormatError(f"{path}: not {_WHAT}: a damaged zip ({exc})") from None
    names = {info.filename: info for info in archive.infolist()}
    header = next((names[n] for n in _HEADERS if n in names), None)
    if header is None:
        raise ImportFormatError(
            f"{path}: not {_WHAT}: expected a zip with header.json or _journal/start.json"
        )
    infos = [i for i in archive.infolist()
             if i.filename.startswith("samples/") and i.filename.endswith(".json")]  # fmt: skip
    return as_dict(_member(path, data, archive, header)), (
        s for i in infos if isinstance(s := _member(path, data, archive, i), dict))  # fmt: skip


def _member(path: Path, data: bytes, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    """One member of the zip as JSON (zstd read without zipfile: before Python 3.14 it has
    none)."""
    try:
        raw = _unzstd(path, _stored(data, info)) if info.compress_type == _ZSTD else (
            archive.read(info))  # fmt: skip
        if info.compress_type == _ZSTD and zlib.crc32(raw) != info.CRC:
            raise ValueError("CRC mismatch")
        return json.loads(raw)
    except (ValueError, zipfile.BadZipFile, NotImplementedError, EOFError, struct.error,
            zlib.error) as exc:  # fmt: skip
        lines = str(exc).strip().splitlines()
        why = lines[0] if lines else type(exc).__name__
        raise ImportFormatError(
            f"{path}: not {_WHAT}: its {info.filename} is not readable JSON ({why})"
        ) from None


def _stored(data: bytes, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes as stored (compressed), after its local file header."""
    at = info.header_offset
    if data[at : at + 4] != b"PK\x03\x04":
        raise ValueError("no local file header")
    name_len, extra_len = struct.unpack_from("<HH", data, at + 26)
    start = at + 30 + name_len + extra_len
    return data[start : start + info.compress_size]


def _unzstd(path: Path, blob: bytes) -> bytes:
    """zstd frames decompressed, by Python 3.14's ``compression.zstd`` or ``zstandard``."""
    try:
        return bytes(importlib.import_module("compression.zstd").decompress(blob))
    except ImportError:
        pass
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError:
        raise ImportFormatError(
            f"{path}: a zstd-compressed {_WHAT}: reading it needs Python 3.14 or the "
            "zstandard package (pip install zstandard)"
        ) from None
    decompressor = zstandard.ZstdDecompressor()
    parts = []
    while blob:  # Inspect writes large members as several frames
        frame = decompressor.decompressobj()
        parts.append(frame.decompress(blob))
        blob = frame.unused_data
    return b"".join(parts)


def _resolved(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample with its pooled messages and calls and its attachments put back."""
    attachments = {k: v for k, v in as_dict(sample.get("attachments")).items()
                   if isinstance(v, str)}  # fmt: skip
    pools = as_dict(sample.get("events_data"))
    messages = _attached(list(pools.get("messages") or ()), attachments)
    calls = _attached(list(pools.get("calls") or ()), attachments)
    events = [
        _pooled(e, messages, calls) for e in sample.get("events") or () if isinstance(e, dict)
    ]
    rest = {k: v for k, v in sample.items() if k not in ("events", "attachments", "events_data")}
    return {**_attached(rest, attachments), "events": _attached(events, attachments)}


def _attached(value: Any, attachments: dict[str, str]) -> Any:
    """``value`` with every ``attachment://<hash>`` string replaced by its content."""
    if isinstance(value, str):
        if value.startswith("tc://"):  # Inspect's older name for an attachment
            value = _ATTACHMENT + value.removeprefix("tc://")
        if value.startswith(_ATTACHMENT):
            return attachments.get(value.removeprefix(_ATTACHMENT), value)
        return value
    if isinstance(value, list):
        return [_attached(v, attachments) for v in value]
    if isinstance(value, dict):
        return {k: _attached(v, attachments) for k, v in value.items()}
    return value


def _pooled(event: dict[str, Any], messages: list[Any], calls: list[Any]) -> dict[str, Any]:
    """A model event with its ``input_refs`` and ``call.call_refs`` expanded (nested events
    too)."""
    found = dict(event)
    if isinstance(found.get("input_refs"), list) and not found.get("input"):
        found["input"] = _expand(found["input_refs"], messages)
        del found["input_refs"]
    call = as_dict(found.get("call"))
    if isinstance(call.get("call_refs"), list):
        request = dict(as_dict(call.get("request")))
        request[str(call.get("call_key") or "messages")] = _expand(call["call_refs"], calls)
        rest = {k: v for k, v in call.items() if k not in ("call_refs", "call_key")}
        found["call"] = {**rest, "request": request}
    if isinstance(found.get("events"), list):
        found["events"] = [_pooled(e, messages, calls) for e in found["events"]
                           if isinstance(e, dict)]  # fmt: skip
    return found


def _expand(refs: list[Any], pool: list[Any]) -> list[Any]:
    found: list[Any] = []
    for ref in refs:
        if isinstance(ref, list | tuple) and len(ref) == 2:
            found.extend(pool[int(ref[0]) : int(ref[1])])
    return found


def _sample_units(
    header: dict[str, Any], spec: dict[str, Any], key: str, sample: dict[str, Any]
) -> Iterator[Unit]:
    """The units of one sample: a unit per model and tool event, one spanning the sample."""
    sample_id, epoch = sample.get("id"), sample.get("epoch") or 1
    run = _Run(f"inspect-{key}-{sample_id}-{epoch}", str(spec.get("task") or "inspect"),
               _meta(header, spec, sample))  # fmt: skip
    events = list(_flat(sample["events"]))
    units = []
    for n, event in enumerate(events):
        kind = event.get("event")
        if kind == "model":
            units.append(_model_call(run, event, n))
        elif kind == "tool":
            units.append(_tool_call(run, event, n))
    start, end = _bounds(sample, events)
    yield Unit(run.run_id, start, end, (), run.name, True, _error(sample.get("error")),
               source="inspect", meta=run.meta)  # fmt: skip
    for unit in units:
        yield unit._replace(meta=run.meta, source="inspect")


def _flat(events: list[Any]) -> Iterator[dict[str, Any]]:
    """The events in order, those nested in older logs' subtasks and tool calls after their
    parent."""
    for event in events:
        if isinstance(event, dict):
            yield event
            yield from _flat(event.get("events") or [])


def _model_call(run: _Run, event: dict[str, Any], n: int) -> Unit:
    start, end = _span(event, n)
    output = as_dict(event.get("output"))
    name = str(event.get("model") or output.get("model") or "model")
    model = str(output.get("model") or name)
    call_id = str(event.get("uuid") or f"inspect_model_{n}")
    choices = [as_dict(c) for c in output.get("choices") or ()]
    message = _kept(as_dict(choices[0].get("message"))) if choices else {}
    message = message or {"role": "assistant", "content": output.get("completion") or ""}
    error = event.get("error") or output.get("error")
    usage = as_dict(output.get("usage"))
    prompt_attrs = {k: event[k] for k in ("tools", "tool_choice", "config") if event.get(k)}
    drafts = (
        Draft(start, 0, EventKind.PROMPT, name, call_id,
              canonical_json({"messages": [_kept(as_dict(m)) for m in event.get("input") or ()]}),
              attrs=canonical_json(prompt_attrs) if prompt_attrs else None),
        Draft(end, 1, EventKind.MODEL_OUTPUT, name, call_id, None,
              canonical_json({"messages": [message]}),
              EventStatus.ERROR if error else EventStatus.OK, str(error) if error else None,
              _int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
              _float(usage.get("total_cost")), (end - start) / MS,
              canonical_json(_output_attrs(event, output, choices, message)), model),
    )  # fmt: skip
    return Unit(run.run_id, start, end, drafts, run.name)


def _output_attrs(
    event: dict[str, Any], output: dict[str, Any], choices: list[dict[str, Any]],
    message: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """What a model event records besides its messages, output, usage and error."""
    extra = {k: v for k, v in event.items() if k not in _MODEL_TAKEN and v not in (None, [], {})}
    extra |= {f"output_{k}": v for k, v in output.items()
              if k not in _OUTPUT_TAKEN and v not in (None, [], {})}  # fmt: skip
    usage = {k: v for k, v in as_dict(output.get("usage")).items() if v is not None}
    if usage:
        extra["usage"] = usage
    if choices:
        extra["stop_reason"] = choices[0].get("stop_reason")
    if len(choices) > 1:
        extra["choices"] = choices[1:]
    calls = [_declared(as_dict(c)) for c in message.get("tool_calls") or ()]
    if calls:
        extra["tool_calls"] = calls
    return extra


def _declared(call: dict[str, Any]) -> dict[str, Any]:
    """An Inspect ``ToolCall`` as tracekit declares one (its arguments as JSON text)."""
    arguments = call.get("arguments")
    text = arguments if isinstance(arguments, str) else canonical_json(arguments or {})
    return {"id": call.get("id"), "name": call.get("function"), "arguments": text}


def _tool_call(run: _Run, event: dict[str, Any], n: int) -> Unit:
    start, end = _span(event, n)
    name = str(event.get("function") or "tool")
    call_id = str(event.get("id") or event.get("uuid") or f"inspect_tool_{n}")
    arguments = event.get("arguments")
    args = arguments if isinstance(arguments, dict) else {"input": arguments}
    error = _tool_error(event)
    extra = {k: v for k, v in event.items() if k not in _TOOL_TAKEN and v not in (None, [], {})}
    drafts = (
        Draft(start, 0, EventKind.TOOL_CALL, name, call_id, canonical_json(args), None,
              EventStatus.STARTED),
        Draft(end, 1, EventKind.TOOL_RESULT, name, call_id, None,
              canonical_json(event.get("result", "")),
              EventStatus.ERROR if error is not None else EventStatus.OK, error, None, None,
              None, (end - start) / MS, canonical_json(extra) if extra else None),
    )  # fmt: skip
    return Unit(run.run_id, start, end, drafts, run.name)


def _tool_error(event: dict[str, Any]) -> str | None:
    """A ``ToolCallError`` as text (``type: message``); a failed call without one: ""."""
    error = event.get("error")
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        return ": ".join(str(p) for p in (kind, message) if p) or "error"
    if error:
        return str(error)
    return "" if event.get("failed") else None


def _span(event: dict[str, Any], n: int) -> tuple[int, int]:
    """An event's start and end (ns): its ``timestamp`` and ``completed`` (else its
    ``working_time`` after it); no time: 1 ms a step from 2000-01-01."""
    start = _ns(event.get("timestamp"))
    end = _ns(event.get("completed"))
    if start is None:
        start = end if end is not None else FIXED_EPOCH_NS + 2 * n * MS
    if end is None:
        took = event.get("working_time")
        end = start + (int(float(took) * 1e9) if isinstance(took, int | float) else 0)
    return start, max(start, end)


def _bounds(sample: dict[str, Any], events: list[dict[str, Any]]) -> tuple[int, int]:
    """The sample's start and end: its events' times, else its ``started_at`` and
    ``completed_at``."""
    times = [t for e in events for t in (_ns(e.get("timestamp")), _ns(e.get("completed")))
             if t is not None]  # fmt: skip
    if not times:
        times = [t for t in (_ns(sample.get("started_at")), _ns(sample.get("completed_at")))
                 if t is not None] or [FIXED_EPOCH_NS]  # fmt: skip
    return min(times), max(times)


def _ns(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _error(error: Any) -> str | None:
    """A sample's ``EvalError`` (or, in summaries, its text) as the run's error."""
    if isinstance(error, dict):
        return str(error.get("message") or "") or ""
    return str(error) if error else None


def _meta(header: dict[str, Any], spec: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    dataset = as_dict(spec.get("dataset"))
    meta = {"task": spec.get("task"), "task_id": spec.get("task_id"),
            "task_version": spec.get("task_version"), "model": spec.get("model"),
            "eval_id": spec.get("eval_id"), "inspect_run_id": spec.get("run_id"),
            "eval_set_id": spec.get("eval_set_id"), "created": spec.get("created"),
            "solver": spec.get("solver"), "dataset": dataset.get("name"),
            "log_status": header.get("status"), "sample_id": sample.get("id"),
            "epoch": sample.get("epoch"), "sample_uuid": sample.get("uuid"),
            "target": sample.get("target"), "scores": sample.get("scores"),
            "limit": sample.get("limit"), "total_time": sample.get("total_time"),
            "working_time": sample.get("working_time"),
            "model_usage": sample.get("model_usage"), "metadata": sample.get("metadata"),
            "error_traceback": as_dict(sample.get("error")).get("traceback")}  # fmt: skip
    return {k: v for k, v in meta.items() if v not in (None, {}, [])}


def _kept(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message without its empty fields."""
    return {k: v for k, v in message.items() if v is not None}


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
