"""A run exported as one OTLP/JSON document of OpenTelemetry GenAI spans.

The run is an ``invoke_agent`` root span (its name, tenant, status); each prompt and its model
output is a ``chat`` span (``gen_ai.input.messages`` / ``gen_ai.output.messages``, usage, model,
``tracekit.cost_usd``); each tool call and its result an ``execute_tool`` span. Every other event
(guard decisions, side effects, ...) appears only as a ``tracekit.event`` event of the root span,
which carries every event whole (kind, seq, columns under ``tracekit.*``) so that ``tracekit
import`` restores the run exactly. The release stamp is on the resource. Ids are hex and
derived from the run id (trace) and the seq of the span's first event (span), so exporting twice
writes the same bytes; ``intValue`` and nanosecond times are strings, as OTLP/JSON has them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .._base.exported import EXPORTED, EXPORTED_COLUMNS
from .._base.vocab import EventKind
from .._capture.state import PROCESS
from .bundle import _EVENT_JSON, _EVENT_TEXT, _scrub

__all__ = ["export_otlp", "otlp_document"]

_PAIRS = {EventKind.PROMPT: EventKind.MODEL_OUTPUT, EventKind.TOOL_CALL: EventKind.TOOL_RESULT}
_SCOPE = {"name": "tracekit", "version": ""}


def export_otlp(
    run_id: str,
    path: str | os.PathLike[str],
    store: str | os.PathLike[str] | None = None,
) -> Path:
    """Write run ``run_id`` (or a unique prefix of it) as an OTLP/JSON
    ``ExportTraceServiceRequest`` at ``path``, scrubbed of secrets once more, atomically."""
    from .._query.views import connect, resolve_run

    root = store if store is not None else PROCESS.settings().store
    with connect(root) as con:
        run = resolve_run(con, run_id)
        table = con.sql(
            "SELECT *, epoch_us(ts) AS ts_us FROM events WHERE run_id = $r ORDER BY seq",
            params={"r": run},
        ).to_arrow_table()  # fmt: skip
    redactor = PROCESS.settings().redactor
    if redactor.keys or redactor.patterns:  # the defaults already ran when it was recorded
        table = _scrub(table, redactor, _EVENT_JSON, _EVENT_TEXT)
    events = table.to_pylist()
    first = events[0] if events else {}
    doc = otlp_document(run, events, tenant=first.get("tenant"), release=first.get("release_id"))
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")))
    os.replace(tmp, target)
    return target


def otlp_document(
    run_id: str, events: list[dict[str, Any]], tenant: str | None, release: str | None
) -> dict[str, Any]:
    """The OTLP/JSON document of one run's events (dicts of the events view, with ``ts_us``)."""
    trace_id = _hex(run_id, 32)
    root_id = _hex(f"{run_id}/root", 16)
    start = next((e for e in events if e["kind"] == EventKind.RUN_START), None)
    end = next((e for e in reversed(events) if e["kind"] == EventKind.RUN_END), None)
    spans = [_span(trace_id, root_id, run_id, a, b) for a, b in _pairs(events)]
    inner = [e for e in events if e["kind"] not in (EventKind.RUN_START, EventKind.RUN_END)]
    root = _root(trace_id, root_id, run_id, events, start, end, inner)
    resource = [_kv("service.name", "tracekit"), _kv(EXPORTED, run_id)]
    if tenant:
        resource.append(_kv("tracekit.tenant", tenant))
    if release:
        resource.append(_kv("tracekit.release_id", release))
    scope = {"scope": _SCOPE, "spans": [root, *spans]}
    return {"resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [scope]}]}


def _pairs(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each prompt with its model output, each tool call with its result (by call id)."""
    open_: dict[tuple[str, str | None], dict[str, Any]] = {}
    pairs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for e in events:
        if e["kind"] in _PAIRS:
            open_[(_PAIRS[e["kind"]], e["call_id"])] = e
        elif (e["kind"], e["call_id"]) in open_:
            pairs.append((open_.pop((e["kind"], e["call_id"])), e))
    pairs.extend((e, None) for e in open_.values())
    return sorted(pairs, key=lambda p: p[0]["seq"])


def _span(
    trace_id: str, root_id: str, run_id: str, first: dict[str, Any], last: dict[str, Any] | None
) -> dict[str, Any]:
    end = last or first
    attrs = (
        _model_attrs(first, end) if first["kind"] == EventKind.PROMPT else _tool_attrs(first, end)
    )
    operation = "chat" if first["kind"] == EventKind.PROMPT else "execute_tool"
    name = f"{operation} {end['name']}"
    span = _base(trace_id, _hex(f"{run_id}/{first['seq']}", 16), name, first, end, attrs)
    return {**span, "parentSpanId": root_id, "status": _status(end)}


def _model_attrs(prompt: dict[str, Any], output: dict[str, Any]) -> list[dict[str, Any]]:
    asked = _loads(prompt["args"])
    attrs = [_kv("gen_ai.operation.name", "chat"),
             _kv("gen_ai.input.messages", json.dumps(_messages(asked, "user")))]  # fmt: skip
    if isinstance(asked, dict) and "system" in asked:
        attrs.append(_kv("gen_ai.system_instructions", json.dumps(asked["system"])))
    if output is not prompt:
        said = _messages(_loads(output["output"]), "assistant")
        attrs.append(_kv("gen_ai.output.messages", json.dumps(said)))
    model = output.get("model_version") or output["name"]
    attrs += [_kv("gen_ai.request.model", prompt["name"]), _kv("gen_ai.response.model", model)]
    for column, key in (("tokens_in", "input"), ("tokens_out", "output")):
        if output.get(column) is not None:
            attrs.append(_kv(f"gen_ai.usage.{key}_tokens", int(output[column])))
    if output.get("cost_usd") is not None:
        attrs.append(_kv("tracekit.cost_usd", float(output["cost_usd"])))
    return attrs


def _tool_attrs(call: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    attrs = [_kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", call["name"])]
    if call["call_id"]:
        attrs.append(_kv("gen_ai.tool.call.id", call["call_id"]))
    if call["args"] is not None:
        attrs.append(_kv("gen_ai.tool.call.arguments", call["args"]))
    if result is not call and result["output"] is not None:
        attrs.append(_kv("gen_ai.tool.call.result", result["output"]))
    return attrs


def _root(
    trace_id: str,
    root_id: str,
    run_id: str,
    events: list[dict[str, Any]],
    start: dict[str, Any] | None,
    end: dict[str, Any] | None,
    inner: list[dict[str, Any]],
) -> dict[str, Any]:
    name = str((start or {}).get("name") or run_id)
    attrs = [_kv("gen_ai.operation.name", "invoke_agent"), _kv("gen_ai.agent.name", name),
             _kv("tracekit.run_id", run_id)]  # fmt: skip
    first = start or (events[0] if events else {"ts_us": 0})
    last = end or (events[-1] if events else first)
    span = _base(trace_id, root_id, f"invoke_agent {name}", first, last, attrs)
    span["events"] = [_event(e) for e in inner]
    span["status"] = _run_status(end) if end else {}
    return span


def _event(e: dict[str, Any]) -> dict[str, Any]:
    """One event whole (the import reads it back exactly): kind, seq and its columns."""
    values = {**e, "model": e.get("model_version")}
    attrs = [_kv("tracekit.kind", e["kind"]), _kv("tracekit.seq", int(e["seq"]))]
    attrs += [
        _kv(f"tracekit.{c}", values[c]) for c in EXPORTED_COLUMNS if values.get(c) is not None
    ]
    return {"timeUnixNano": _ns(e), "name": "tracekit.event", "attributes": attrs}


def _base(
    trace_id: str,
    span_id: str,
    name: str,
    first: dict[str, Any],
    last: dict[str, Any],
    attrs: list[dict[str, Any]],
) -> dict[str, Any]:
    return {"traceId": trace_id, "spanId": span_id, "name": name, "kind": 1,
            "startTimeUnixNano": _ns(first), "endTimeUnixNano": _ns(last),
            "attributes": attrs}  # fmt: skip


def _status(e: dict[str, Any]) -> dict[str, Any]:
    if e.get("status") == "error":
        return {"code": 2, "message": str(e.get("error") or "")}
    return {"code": 1}


def _run_status(end: dict[str, Any]) -> dict[str, Any]:
    """The run's end: OTel has OK and ERROR only, so a halted run is an ERROR saying so."""
    if end.get("status") == "ok":
        return {"code": 1}
    return {"code": 2, "message": str(end.get("error") or end.get("status") or "")}


def _ns(e: dict[str, Any]) -> str:
    return str(int(e["ts_us"]) * 1000)


def _kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _hex(text: str, width: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:width]


def _messages(given: Any, role: str) -> list[Any]:
    """Messages as a list: imported runs keep ``{"messages": [...]}``, recorded ones the list
    itself (prompts) or one ``{"content": ...}`` (outputs)."""
    if isinstance(given, dict) and isinstance(given.get("messages"), list):
        return list(given["messages"])
    if isinstance(given, list):
        return given
    if isinstance(given, dict):
        return [{"role": role, **given}]
    return [] if given is None else [{"role": role, "content": given}]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
