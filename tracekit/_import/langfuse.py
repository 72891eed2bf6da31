"""Langfuse trace exports as runs: ``langfuse-<trace id>``.

Langfuse's public API gives a trace (``GET /api/public/traces/{id}``, ``TraceWithFullDetails``)
as an object with its ``id``, ``timestamp``, ``name``, ``sessionId``, ``userId``, ``tags``,
``metadata``, ``release``, ``version``, ``environment``, ``input`` / ``output``, ``htmlPath``,
``latency``, ``totalCost``, ``scores`` and ``observations``: each observation (``ObservationsView``
of ``/api/public/observations``, ``ObservationV2`` of ``/api/public/v2/observations``) with its
``id``, ``traceId``, ``parentObservationId``, ``type`` (``GENERATION``, ``TOOL``, ``SPAN``,
``EVENT``, ``AGENT``, ``CHAIN``, ``RETRIEVER``, ...), ``name``, ``startTime`` / ``endTime``
(ISO), ``input``, ``output``, ``metadata``, ``level`` (``ERROR``: failed) with its
``statusMessage``, and for generations ``model``, ``modelParameters``, ``usageDetails`` (or the
deprecated ``usage``), ``costDetails``, ``totalCost`` / ``calculatedTotalCost``. The file is
one such trace, a JSON list of them, an API page (``{"data": [...]}``) of traces or of
observations, one trace (or observation) a line, or the UI's ``{"trace": ..., "observations":
[...]}``; observations given apart from a trace are grouped by their ``traceId``.

A ``GENERATION`` is a model call: its prompt the ``input`` messages (a list, the ``messages``
of an object such as the OpenAI integration's ``{"messages", "tools"}``, or a text), its
output the assistant message of ``output`` (a message, an OpenAI response's first choice, the
last of a list, or a text), whose OpenAI-style ``tool_calls`` are the calls it declared. A
``TOOL`` observation, or a ``SPAN`` / ``EVENT`` that names a declared tool (or is
``tool:<name>`` / ``execute_tool <name>``, or carries a ``tool_call_id`` in its metadata), is a
tool call of its ``input`` with its ``output`` as the result; its call id the one the model
declared last for that tool, else its own id. Other observations give no events: each call's
``attrs.path`` names the ones it ran under, and the run's meta lists them (``observations``).
The trace's root observation (the only one without a parent, or any such agent / chain /
span) failing (``level`` ``ERROR``) fails the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from ..errors import ImportFormatError
from .drafts import Draft, Unit
from .jsonfile import FIXED_EPOCH_NS, MS, as_dict, iso_ns, load_document, load_lines, parsed
from .source import head as file_head

__all__ = ["read", "sniff"]

_WHAT = "a Langfuse trace export"
_EXPECTED = (
    "expected a Langfuse trace (an object with 'id', 'timestamp' and 'observations'), a JSON"
    ' list of them, a {"data": [...]} page of traces or observations, or one a line'
)
_TYPES = "GENERATION|SPAN|EVENT|TOOL|AGENT|CHAIN|RETRIEVER|EVALUATOR|EMBEDDING|GUARDRAIL"
_TYPE = re.compile(rf'"type"\s*:\s*"({_TYPES})"')
_START = re.compile(r'"startTime"\s*:')
_HTML_PATH = re.compile(r'"htmlPath"\s*:\s*"/project/')
_TOOL_NAME = re.compile(r"\A(?:tool[:.]\s*|execute_tool\s+)(?P<name>\S.*)\Z")
#: what a trace's meta takes under its own names; the rest of it is kept as it is
_TRACE_META = {"sessionId": "session_id", "userId": "user_id", "tags": "tags",
               "metadata": "metadata", "release": "release", "version": "version",
               "environment": "environment", "public": "public", "bookmarked": "bookmarked",
               "htmlPath": "html_path", "latency": "latency_s", "totalCost": "total_cost",
               "input": "input", "output": "output", "scores": "scores",
               "projectId": "project_id"}  # fmt: skip
#: fields of an observation that its events hold elsewhere, or that repeat its trace's
_OBS_TAKEN = frozenset({"id", "traceId", "type", "name", "startTime", "endTime", "input",
                        "output", "level", "statusMessage", "parentObservationId", "model",
                        "usage", "usageDetails", "costDetails", "totalCost",
                        "calculatedTotalCost", "calculatedInputCost", "calculatedOutputCost",
                        "traceName", "tags", "release", "userId", "sessionId", "projectId",
                        "latency", "createdAt", "updatedAt"})  # fmt: skip


class _Obs(NamedTuple):
    """One observation of a trace, its times read."""

    raw: dict[str, Any]
    start_ns: int
    end_ns: int
    path: list[str]  # the names of the observations it ran under, outermost first


class _Trace(NamedTuple):
    """What every unit of one trace shares."""

    run_id: str
    name: str
    meta: dict[str, Any]


def sniff(path: Path, head: str) -> bool:
    text = head.lstrip()
    if text[:1] not in ("[", "{"):
        return False
    if _HTML_PATH.search(text):
        return True
    return bool(_TYPE.search(text)) and bool(_START.search(text)) and (
        '"traceId"' in text or '"observations"' in text)  # fmt: skip


def read(path: Path, fmt: str) -> Iterator[Unit]:
    """A run per trace in the file, in the order the traces start."""
    traces = _traces(path)
    if not traces:
        raise ImportFormatError(f"{path}: not {_WHAT}: {_EXPECTED}")
    for trace, observations in sorted(traces, key=_start_of):
        yield from _run(trace, observations)


# --- the file's traces


def _traces(path: Path) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each trace of the file with its observations (loose ones joined to theirs by id)."""
    traces: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for item in _items(path):
        if _is_trace(item):
            trace, observations = _split(item)
            known = traces.setdefault(str(trace["id"]), (trace, []))
            if known[0] is not trace:
                known[0].update(trace)
            known[1].extend(observations)
        elif _is_observation(item):
            trace_id = str(item.get("traceId") or "")
            if not trace_id:
                raise ImportFormatError(f"{path}: not {_WHAT}: an observation has no 'traceId'")
            known = traces.setdefault(trace_id, (_trace_of(item), []))
            known[1].append(item)
        else:
            raise ImportFormatError(f"{path}: not {_WHAT}: {_EXPECTED}")
    return list(traces.values())


def _items(path: Path) -> list[Any]:
    """The file's traces or observations, whichever way they were written."""
    first = file_head(path).lstrip().split("\n", 1)[0].strip()
    if first.startswith("{") and _is_json(first):
        lines = list(load_lines(path, _WHAT))
        if len(lines) > 1:
            return lines
        doc = lines[0] if lines else None
    else:
        doc = load_document(path, _WHAT)
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return list(doc["data"])
    if isinstance(doc, dict) and isinstance(doc.get("trace"), dict):  # the UI's download
        given = doc.get("observations")
        return [{**doc["trace"], "observations": given if isinstance(given, list) else []}]
    if isinstance(doc, list):
        return doc
    return [doc]  # not a trace: _traces says so


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _is_trace(item: Any) -> bool:
    return isinstance(item, dict) and bool(item.get("id")) and "timestamp" in item and (
        isinstance(item.get("observations"), list) or "htmlPath" in item)  # fmt: skip


def _is_observation(item: Any) -> bool:
    return isinstance(item, dict) and bool(item.get("id")) and isinstance(
        item.get("type"), str) and "startTime" in item  # fmt: skip


def _split(item: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A trace without its observations; its observations (a list page's traces list only
    their ids: those are kept in its meta)."""
    trace = {k: v for k, v in item.items() if k != "observations"}
    given = item.get("observations") or []
    observations = [o for o in given if isinstance(o, dict)]
    ids = [o for o in given if isinstance(o, str)]
    if ids:
        trace["observationIds"] = ids
    return trace, observations


def _trace_of(observation: dict[str, Any]) -> dict[str, Any]:
    """The trace an observation page's observations belong to, from what they repeat of it."""
    trace = {"id": observation["traceId"], "name": observation.get("traceName")}
    for key in ("sessionId", "userId", "tags", "release", "environment", "projectId"):
        if observation.get(key) is not None:
            trace[key] = observation[key]
    return trace


def _start_of(trace: tuple[dict[str, Any], list[dict[str, Any]]]) -> int:
    times = [_ns(o.get("startTime"), FIXED_EPOCH_NS) for o in trace[1]]
    return _ns(trace[0].get("timestamp"), min(times, default=FIXED_EPOCH_NS))


def _ns(value: Any, default: int) -> int:
    if isinstance(value, str):
        try:
            return iso_ns(value)
        except ValueError:
            return default
    return default


# --- one trace


def _run(trace: dict[str, Any], given: list[dict[str, Any]]) -> Iterator[Unit]:
    """The units of one trace: its root's, then a unit per model call and tool call."""
    observations = _timed(given, _ns(trace.get("timestamp"), FIXED_EPOCH_NS))
    start = min([_ns(trace.get("timestamp"), FIXED_EPOCH_NS)] + [o.start_ns for o in observations])
    end = max([start] + [o.end_ns for o in observations])
    calls = _calls(observations)
    others = [o for o, drafts in zip(observations, calls, strict=True) if drafts is None]
    run = _Trace(f"langfuse-{trace['id']}", str(trace.get("name") or f"langfuse-{trace['id']}"),
                 _meta(trace, others))  # fmt: skip
    yield Unit(run.run_id, start, end, (), run.name, True, _error(observations), None,
               "langfuse", run.meta)  # fmt: skip
    for obs, drafts in zip(observations, calls, strict=True):
        if drafts is not None:
            yield Unit(run.run_id, obs.start_ns, obs.end_ns, drafts, run.name, False, None,
                       None, "langfuse", run.meta)  # fmt: skip


def _calls(observations: list[_Obs]) -> list[tuple[Draft, ...] | None]:
    """Each observation's events: a model call's, a tool call's, or none."""
    declared: list[dict[str, Any]] = []  # the model's tool calls no tool has answered yet
    found: list[tuple[Draft, ...] | None] = []
    for obs in observations:
        kind = str(obs.raw.get("type")).upper()
        if kind == "GENERATION":
            found.append(_model_call(obs, declared))
        elif (tool := _tool_name(obs, kind, declared)) is not None:
            found.append(_tool_call(obs, tool, declared))
        else:
            found.append(None)
    return found


def _timed(given: list[dict[str, Any]], start: int) -> list[_Obs]:
    """The observations in the order they started, each with its times and its ancestors."""
    by_id = {str(o["id"]): o for o in given}
    timed = []
    for index, raw in enumerate(given):
        begun = _ns(raw.get("startTime"), start + index * MS)
        ended = max(_ns(raw.get("endTime"), begun), begun)
        timed.append(_Obs(raw, begun, ended, _ancestors(raw, by_id)))
    return sorted(timed, key=lambda o: (o.start_ns, len(o.path)))


def _ancestors(raw: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    names: list[str] = []
    seen = {str(raw["id"])}
    parent = by_id.get(str(raw.get("parentObservationId")))
    while parent is not None and str(parent["id"]) not in seen:
        seen.add(str(parent["id"]))
        names.append(str(parent.get("name") or parent.get("type")))
        parent = by_id.get(str(parent.get("parentObservationId")))
    return names[::-1]


def _error(observations: list[_Obs]) -> str | None:
    """The run's error: its root observation's when it failed (``None``: it did not)."""
    roots = [o.raw for o in observations if not o.raw.get("parentObservationId")]
    if len(roots) != 1:  # the trace is the root: its top-level agents, chains, spans
        roots = [r for r in roots if str(r.get("type")).upper() not in ("GENERATION", "TOOL")]
    failed = next((r for r in roots if _failed(r)), None)
    return None if failed is None else str(failed.get("statusMessage") or "")


def _failed(raw: dict[str, Any]) -> bool:
    return str(raw.get("level") or "").upper() == "ERROR"


def _meta(trace: dict[str, Any], others: list[_Obs]) -> dict[str, Any]:
    """The trace's own fields, and the observations that gave no events."""
    meta: dict[str, Any] = {"trace_id": trace["id"]}
    for key, value in trace.items():
        if key in ("id", "name", "timestamp", "createdAt", "updatedAt"):
            continue
        meta[_TRACE_META.get(key, key)] = value
    if trace.get("timestamp"):
        meta["timestamp"] = trace["timestamp"]
    if others:
        meta["observations"] = [_summary(o) for o in others]
    return {k: v for k, v in meta.items() if v not in (None, [], {}, "")}


def _summary(obs: _Obs) -> dict[str, Any]:
    """An observation that gives no events, as the run's meta keeps it."""
    raw = obs.raw
    kept = {"id": raw.get("id"), "type": raw.get("type"), "name": raw.get("name"),
            "parent": raw.get("parentObservationId"), "start_time": raw.get("startTime"),
            "end_time": raw.get("endTime"), "level": raw.get("level"),
            "status_message": raw.get("statusMessage"), "input": raw.get("input"),
            "output": raw.get("output")}  # fmt: skip
    kept |= {k: v for k, v in raw.items() if k not in _OBS_TAKEN}
    return {k: v for k, v in kept.items() if v not in (None, [], {}, "")}


def _attrs(obs: _Obs, **more: Any) -> dict[str, Any]:
    """What a call's events keep of its observation that no column holds."""
    raw = obs.raw
    attrs: dict[str, Any] = {"observation_id": raw.get("id"), "type": raw.get("type"),
                             "parent_observation_id": raw.get("parentObservationId"),
                             "path": obs.path, "level": raw.get("level"),
                             "status_message": raw.get("statusMessage")}  # fmt: skip
    attrs |= {k: v for k, v in raw.items() if k not in _OBS_TAKEN}
    attrs |= more
    return {k: v for k, v in attrs.items() if v not in (None, [], {}, "")}


# --- model calls


def _model_call(obs: _Obs, declared: list[dict[str, Any]]) -> tuple[Draft, ...]:
    raw = obs.raw
    message = _output_message(raw.get("output"))
    calls = [_declared(c) for c in message.get("tool_calls") or () if isinstance(c, dict)]
    declared.extend(calls)
    model = str(raw["model"]) if raw.get("model") else None
    failed = _failed(raw)
    given = raw.get("input")
    rest = {k: v for k, v in given.items() if k != "messages"} if isinstance(given, dict) else {}
    if isinstance(given, dict) and not isinstance(given.get("messages"), list):
        rest = {}
    attrs = _attrs(obs, input=rest or None, tool_calls=calls or None,
                   usage_details=raw.get("usageDetails"), cost_details=raw.get("costDetails"),
                   usage=raw.get("usage"))  # fmt: skip
    name, call_id = model or str(raw.get("name") or "model"), str(raw["id"])
    tokens_in, tokens_out = _tokens(raw)
    prompt = canonical_json({"messages": _prompt(given)})
    output = canonical_json({"messages": [message]}) if message else None
    status = EventStatus.ERROR if failed else EventStatus.OK
    error = str(raw.get("statusMessage") or "") if failed else None
    return (Draft(obs.start_ns, 0, EventKind.PROMPT, name, call_id, prompt),
            Draft(obs.end_ns, 1, EventKind.MODEL_OUTPUT, name, call_id, None, output, status,
                  error, tokens_in, tokens_out, _cost(raw), (obs.end_ns - obs.start_ns) / MS,
                  canonical_json(attrs), model))  # fmt: skip


def _prompt(given: Any) -> list[Any]:
    """The messages the model was sent."""
    given = parsed(given)
    if isinstance(given, dict) and isinstance(given.get("messages"), list):
        given = given["messages"]
    if isinstance(given, list):
        return [m if isinstance(m, dict) else {"role": "user", "content": m} for m in given]
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if given is None:
        return []
    return [{"role": "user", "content": canonical_json(given)}]


def _output_message(given: Any) -> dict[str, Any]:
    """The assistant's message in a generation's output (``{}``: none recorded)."""
    given = parsed(given)
    if isinstance(given, dict) and isinstance(given.get("choices"), list) and given["choices"]:
        choice = as_dict(given["choices"][0])
        given = choice.get("message") or choice.get("text") or ""
    if isinstance(given, list) and given:
        given = given[-1]
    if isinstance(given, dict) and ("role" in given or "content" in given or "tool_calls" in given):
        return {"role": "assistant", **given}
    if isinstance(given, str):
        return {"role": "assistant", "content": given}
    if given in (None, [], {}):
        return {}
    return {"role": "assistant", "content": canonical_json(given)}


def _declared(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-style tool call (or LangChain's, with ``args``) as tracekit declares one."""
    function = as_dict(call.get("function"))
    name = function.get("name", call.get("name"))
    arguments = function.get("arguments", call.get("args", call.get("arguments")))
    text = arguments if isinstance(arguments, str) else canonical_json(arguments or {})
    return {"id": call.get("id"), "name": name, "arguments": text}


def _tokens(raw: dict[str, Any]) -> tuple[int | None, int | None]:
    """The call's input and output units: its ``usageDetails``, else its ``usage``."""
    for usage, ins, outs in (
        (as_dict(raw.get("usageDetails")), ("input", "prompt_tokens", "input_tokens"),
         ("output", "completion_tokens", "output_tokens")),
        (as_dict(raw.get("usage")), ("input", "promptTokens"), ("output", "completionTokens")),
    ):  # fmt: skip
        sent = next((_int(usage[k]) for k in ins if k in usage), None)
        received = next((_int(usage[k]) for k in outs if k in usage), None)
        if sent is not None or received is not None:
            return sent, received
    return None, None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cost(raw: dict[str, Any]) -> float | None:
    """The call's cost in USD as Langfuse recorded or calculated it."""
    details = as_dict(raw.get("costDetails"))
    for value in (raw.get("totalCost"), raw.get("calculatedTotalCost"), details.get("total"),
                  as_dict(raw.get("usage")).get("totalCost")):  # fmt: skip
        cost = _float(value)
        if cost is not None:
            return cost
    parts = [c for c in map(_float, details.values()) if c is not None]
    return sum(parts) if parts else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- tool calls


def _tool_name(obs: _Obs, kind: str, declared: list[dict[str, Any]]) -> str | None:
    """The tool an observation calls (``None``: it is no tool call); ``declared``: the calls
    the model made that no tool has answered yet."""
    raw = obs.raw
    name = str(raw.get("name") or "")
    if kind == "TOOL":
        return name or "tool"
    if kind not in ("SPAN", "EVENT"):
        return None
    if found := _TOOL_NAME.match(name):
        return found["name"]
    metadata = as_dict(raw.get("metadata"))
    if metadata.get("tool_call_id") or metadata.get("toolCallId"):
        return name or "tool"
    return name if name and any(c["name"] == name for c in declared) else None


def _tool_call(obs: _Obs, name: str, declared: list[dict[str, Any]]) -> tuple[Draft, ...]:
    raw = obs.raw
    call_id = _call_id(raw, name, declared)
    given = parsed(raw.get("input"))
    args = given if isinstance(given, dict) else {"input": given}
    failed = _failed(raw)
    error = str(raw.get("statusMessage") or "") if failed else None
    attrs = canonical_json(_attrs(obs))
    return (Draft(obs.start_ns, 0, EventKind.TOOL_CALL, name, call_id, canonical_json(args),
                  None, EventStatus.STARTED, None, None, None, None, None, attrs),
            Draft(obs.end_ns, 1, EventKind.TOOL_RESULT, name, call_id, None,
                  canonical_json(parsed(raw.get("output"))),
                  EventStatus.ERROR if failed else EventStatus.OK, error, None, None, None,
                  (obs.end_ns - obs.start_ns) / MS, attrs))  # fmt: skip


def _call_id(raw: dict[str, Any], name: str, declared: list[dict[str, Any]]) -> str:
    """The id the model gave this call: the one its metadata names, else that of the call of
    this tool it declared last and no tool has answered; else the observation's own id."""
    metadata = as_dict(raw.get("metadata"))
    given = metadata.get("tool_call_id") or metadata.get("toolCallId")
    if given:
        declared[:] = [c for c in declared if c["id"] != given]
        return str(given)
    for index in range(len(declared) - 1, -1, -1):
        if declared[index]["name"] == name and declared[index]["id"]:
            return str(declared.pop(index)["id"])
    return str(raw["id"])
