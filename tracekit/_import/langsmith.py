"""LangSmith run exports as runs: ``langsmith-<trace id>``.

LangSmith records a trace as runs (``langsmith.schemas.Run``, what ``Client.list_runs`` gives):
each with its ``id``, ``trace_id``, ``parent_run_id``, ``dotted_order`` (the start times and
ids of its ancestors and itself: sorted, the trace in execution order), ``name``,
``run_type`` (``llm``, ``tool``, ``chain``, ``agent``, ``retriever``, ``prompt``, ...),
``start_time`` / ``end_time`` (ISO), ``inputs``, ``outputs``, ``error``, ``extra``
(``invocation_params``, ``metadata`` with ``ls_model_name``), ``tags``, ``session_id`` (the
project), and for model calls ``prompt_tokens`` / ``completion_tokens`` / ``total_cost``
(a decimal, written as text). The file is a JSON list of runs, one run a line, or an object
with a ``runs`` list (the REST API's ``/runs/query`` answer); runs of several traces make a
run each.

An ``llm`` run is a model call: its prompt is ``inputs.messages`` (LangChain's serialized
messages, a batch of them, or OpenAI-style dicts; ``inputs.prompts`` for completion models),
its output the message of ``outputs.generations`` (LangChain), of ``outputs.choices``
(``wrap_openai``), or ``outputs.message`` / ``outputs.output``; the tool calls that message
declares are its ``tool_calls``. Its tokens are the run's own counts, else its
``usage_metadata``; its model ``ls_model_name``, else the invocation's ``model``. A ``tool`` run
is a tool call of its ``inputs`` with its ``outputs.output`` (a ``ToolMessage``'s content) as
the result, its call id the ``tool_call_id`` of that message, else the id of the call of that
tool the model declared last. Other runs (chains, agents, retrievers) give no events: the
names of the ones a call ran under are in its ``attrs.chain``. The root run (no parent) names
the run, its ``error`` fails it; its project, tags and metadata are the run's meta.
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

_WHAT = "a LangSmith run export"
_EXPECTED = (
    "expected a JSON list of LangSmith runs (objects with 'id', 'run_type' and 'start_time'),"
    " one run a line, or an object with a 'runs' list"
)
_RUN_TYPE = re.compile(r'"run_type"\s*:\s*"[a-z_]+"')
_TRACE_KEY = re.compile(r'"(dotted_order|trace_id|parent_run_id)"\s*:')
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool",
          "function": "function", "chat": "user", "developer": "developer",
          "HumanMessage": "user", "AIMessage": "assistant", "SystemMessage": "system",
          "ToolMessage": "tool", "FunctionMessage": "function", "ChatMessage": "user",
          "AIMessageChunk": "assistant", "HumanMessageChunk": "user"}  # fmt: skip
#: fields of a run this reader puts elsewhere, or that say nothing about it
_TAKEN = frozenset({"id", "name", "run_type", "start_time", "end_time", "inputs", "outputs",
                    "error", "extra", "tags", "trace_id", "parent_run_id", "dotted_order",
                    "prompt_tokens", "completion_tokens", "total_cost", "status",
                    "child_run_ids", "child_runs", "parent_run_ids", "events", "session_id",
                    "attachments", "serialized"})  # fmt: skip


class _Run(NamedTuple):
    """One LangSmith run of a trace, its times read."""

    raw: dict[str, Any]
    start_ns: int
    end_ns: int
    chain: list[str]  # the names of the runs it ran under, outermost first


def sniff(path: Path, head: str) -> bool:
    text = head.lstrip()
    if text[:1] not in ("[", "{"):
        return False
    return bool(_RUN_TYPE.search(text)) and bool(_TRACE_KEY.search(text)) and (
        '"start_time"' in text)  # fmt: skip


def read(path: Path, fmt: str) -> Iterator[Unit]:
    """A run per trace in the file, in the order the traces start."""
    traces: dict[str, list[dict[str, Any]]] = {}
    for run in _runs(path):
        traces.setdefault(_trace_id(run), []).append(run)
    ordered = sorted((_timed(runs) for runs in traces.values()), key=lambda t: t[0].start_ns)
    for runs in ordered:
        yield from _trace(runs)


def _runs(path: Path) -> Iterator[dict[str, Any]]:
    """The file's runs, whichever way they were written."""
    first = file_head(path).lstrip().split("\n", 1)[0].strip()
    one_a_line = first.startswith("{") and _is_json(first)
    found = load_lines(path, _WHAT) if one_a_line else _listed(load_document(path, _WHAT))
    for run in found:
        if not _is_run(run):
            raise ImportFormatError(f"{path}: not {_WHAT}: {_EXPECTED}")
        yield run


def _listed(doc: Any) -> list[Any]:
    if isinstance(doc, dict) and isinstance(doc.get("runs"), list):
        return list(doc["runs"])
    if isinstance(doc, list) and doc:
        return doc
    return [doc]  # not runs: _runs says so


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _is_run(run: Any) -> bool:
    return isinstance(run, dict) and bool(run.get("id")) and isinstance(
        run.get("run_type"), str) and bool(run.get("start_time"))  # fmt: skip


def _trace_id(run: dict[str, Any]) -> str:
    trace = run.get("trace_id")
    if trace:
        return str(trace)
    order = str(run.get("dotted_order") or "")
    return order.split(".", 1)[0][-36:] if order else str(run["id"])


def _timed(runs: list[dict[str, Any]]) -> list[_Run]:
    """The trace's runs in execution order (by dotted order, then start), each with its times
    and the names of its ancestors."""
    runs = sorted(runs, key=lambda r: (str(r.get("dotted_order") or ""), str(r["start_time"])))
    by_id = {str(r["id"]): r for r in runs}
    timed = []
    for index, run in enumerate(runs):
        start = _ns(run.get("start_time"), FIXED_EPOCH_NS + index * MS)
        end = max(_ns(run.get("end_time"), start), start)
        timed.append(_Run(run, start, end, _ancestors(run, by_id)))
    return timed


def _ns(value: Any, default: int) -> int:
    if isinstance(value, str):
        try:
            return iso_ns(value)
        except ValueError:
            return default
    return default


def _ancestors(run: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    names: list[str] = []
    seen = {str(run["id"])}
    parent = by_id.get(str(run.get("parent_run_id")))
    while parent is not None and str(parent["id"]) not in seen:
        seen.add(str(parent["id"]))
        names.append(str(parent.get("name") or parent.get("run_type")))
        parent = by_id.get(str(parent.get("parent_run_id")))
    return names[::-1]


def _trace(runs: list[_Run]) -> Iterator[Unit]:
    """The units of one trace: its root run's, then a unit per model call and tool call."""
    top = next((r for r in runs if not r.raw.get("parent_run_id")), None)
    root = top or runs[0]  # an export of some of a trace's runs: its first one names it
    run_id = f"langsmith-{_trace_id(root.raw)}"
    name = str(root.raw.get("name") or run_id)
    meta = _meta(root.raw, runs)
    error = root.raw.get("error") if top is not None else None
    yield Unit(run_id, root.start_ns, root.end_ns, (), name, True,
               None if error is None else str(error), None, "langsmith", meta)  # fmt: skip
    declared: list[dict[str, Any]] = []  # the model's tool calls no tool run has answered yet
    for run in runs:
        kind = str(run.raw.get("run_type"))
        if kind == "llm":
            drafts = _model_call(run, declared)
        elif kind == "tool":
            drafts = _tool_call(run, declared)
        else:
            continue
        yield Unit(run_id, run.start_ns, run.end_ns, drafts, name, False, None, None,
                   "langsmith", meta)  # fmt: skip


def _meta(root: dict[str, Any], runs: list[_Run]) -> dict[str, Any]:
    extra = as_dict(root.get("extra"))
    failed = [{"name": r.raw.get("name"), "run_type": r.raw.get("run_type"),
               "error": r.raw.get("error")} for r in runs
              if r.raw is not root and r.raw.get("error")
              and r.raw.get("run_type") not in ("llm", "tool")]  # fmt: skip
    meta = {"trace_id": _trace_id(root), "root_run_id": root.get("id"),
            "run_type": root.get("run_type"), "session_id": root.get("session_id"),
            "project": root.get("session_name") or root.get("project_name"),
            "tags": root.get("tags") or None, "metadata": extra.get("metadata") or None,
            "inputs": root.get("inputs") or None, "outputs": root.get("outputs") or None,
            "status": root.get("status"), "failed_chains": failed or None,
            "reference_example_id": root.get("reference_example_id"),
            "feedback_stats": root.get("feedback_stats") or None}  # fmt: skip
    return {k: v for k, v in meta.items() if v is not None}


def _attrs(run: _Run, **more: Any) -> dict[str, Any]:
    """What a call's events keep of its run that no column holds."""
    raw = run.raw
    extra = as_dict(raw.get("extra"))
    attrs: dict[str, Any] = {"langsmith_run_id": raw.get("id"),
                             "parent_run_id": raw.get("parent_run_id"), "chain": run.chain,
                             "tags": raw.get("tags"), "metadata": extra.get("metadata"),
                             "invocation_params": extra.get("invocation_params")}  # fmt: skip
    attrs |= {k: v for k, v in extra.items() if k not in ("metadata", "invocation_params")}
    attrs |= {k: v for k, v in raw.items() if k not in _TAKEN}
    attrs |= more
    return {k: v for k, v in attrs.items() if v not in (None, [], {}, "")}


# --- model calls


def _model_call(run: _Run, declared: list[dict[str, Any]]) -> tuple[Draft, ...]:
    raw = run.raw
    inputs, outputs = as_dict(raw.get("inputs")), as_dict(raw.get("outputs"))
    message = _output_message(outputs)
    calls = [_declared(c) for c in message.get("tool_calls") or ()]
    declared.extend(calls)
    model = _model(raw, inputs, outputs, message)
    tokens_in, tokens_out = _tokens(raw, outputs, message)
    error = raw.get("error")
    rest = {k: v for k, v in inputs.items() if k not in ("messages", "prompts", "prompt")}
    attrs = _attrs(run, inputs=rest or None, tool_calls=calls or None,
                   llm_output=outputs.get("llm_output"))  # fmt: skip
    name, call_id = model or str(raw.get("name") or "model"), str(raw["id"])
    prompt = canonical_json({"messages": _prompt(inputs)})
    output = canonical_json({"messages": [message]}) if message else None
    status = EventStatus.OK if error is None else EventStatus.ERROR
    return (Draft(run.start_ns, 0, EventKind.PROMPT, name, call_id, prompt),
            Draft(run.end_ns, 1, EventKind.MODEL_OUTPUT, name, call_id, None, output, status,
                  None if error is None else str(error), tokens_in, tokens_out, _cost(raw),
                  (run.end_ns - run.start_ns) / MS, canonical_json(attrs), model))  # fmt: skip


def _prompt(inputs: dict[str, Any]) -> list[Any]:
    """The messages the model was sent."""
    messages = inputs.get("messages")
    if isinstance(messages, list):
        if messages and all(isinstance(m, list) for m in messages):
            messages = [m for batch in messages for m in batch]  # a batch of one, as a rule
        return [_message(m) for m in messages]
    prompts = inputs.get("prompts", inputs.get("prompt"))
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(prompts, list):
        return [{"role": "user", "content": p} for p in prompts]
    return [{"role": "user", "content": canonical_json(inputs)}] if inputs else []


def _output_message(outputs: dict[str, Any]) -> dict[str, Any]:
    """The assistant's message in a model call's outputs (``{}``: none recorded)."""
    generations = outputs.get("generations")
    if isinstance(generations, list) and generations:
        first = generations[0][0] if isinstance(generations[0], list) else generations[0]
        first = as_dict(first)
        if first.get("message"):
            return _message(first["message"], "assistant")
        return {"role": "assistant", "content": first.get("text") or ""}
    choices = outputs.get("choices")
    if isinstance(choices, list) and choices:
        choice = as_dict(choices[0])
        if choice.get("message"):
            return _message(choice["message"], "assistant")
        return {"role": "assistant", "content": choice.get("text") or ""}
    for key in ("message", "output"):
        if isinstance(outputs.get(key), dict):
            return _message(outputs[key], "assistant")
        if isinstance(outputs.get(key), str):
            return {"role": "assistant", "content": outputs[key]}
    messages = outputs.get("messages")
    if isinstance(messages, list) and messages:
        return _message(messages[-1], "assistant")
    return {"role": "assistant", "content": canonical_json(outputs)} if outputs else {}


def _message(given: Any, role: str = "user") -> dict[str, Any]:
    """A message (LangChain's serialized form, its plain dump, or OpenAI-style) as an
    OpenAI-style one: role, content, tool calls, tool call id, name."""
    if isinstance(given, str):
        return {"role": role, "content": given}
    if isinstance(given, list) and len(given) == 2 and isinstance(given[0], str):
        return {"role": _ROLES.get(given[0], given[0]), "content": given[1]}  # ("human", text)
    raw = as_dict(given)
    body = as_dict(raw.get("kwargs")) if raw.get("lc") and "kwargs" in raw else raw
    if isinstance(body.get("data"), dict) and "type" in body:  # messages_to_dict's shape
        body = {"type": body["type"], **body["data"]}
    path = raw.get("id")
    cls = path[-1] if isinstance(path, list) and path else None
    kind = body.get("role") or body.get("type") or cls
    message: dict[str, Any] = {"role": _ROLES.get(str(kind), str(kind or role)),
                               "content": body.get("content")}  # fmt: skip
    calls = _calls(body)
    if calls:
        message["tool_calls"] = calls
    for key in ("tool_call_id", "name"):
        if body.get(key):
            message[key] = body[key]
    return message


def _calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's tool calls, OpenAI-style (LangChain's ``tool_calls`` have ``args``; its
    ``additional_kwargs`` and OpenAI's carry ``function``)."""
    calls = body.get("tool_calls") or as_dict(body.get("additional_kwargs")).get("tool_calls")
    found = []
    for call in calls or ():
        call = as_dict(call)
        function = as_dict(call.get("function"))
        name = function.get("name", call.get("name"))
        arguments = function.get("arguments", call.get("args", call.get("arguments")))
        text = arguments if isinstance(arguments, str) else canonical_json(arguments or {})
        found.append({"id": call.get("id"), "type": "function",
                      "function": {"name": name, "arguments": text}})  # fmt: skip
    return found


def _declared(call: dict[str, Any]) -> dict[str, Any]:
    function = as_dict(call.get("function"))
    return {"id": call.get("id"), "name": function.get("name"),
            "arguments": function.get("arguments")}  # fmt: skip


def _model(raw: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any],
           message: dict[str, Any]) -> str | None:  # fmt: skip
    extra = as_dict(raw.get("extra"))
    params = as_dict(extra.get("invocation_params"))
    given = [as_dict(extra.get("metadata")).get("ls_model_name"), params.get("model"),
             params.get("model_name"), inputs.get("model"),
             as_dict(outputs.get("llm_output")).get("model_name"),
             outputs.get("model")]  # fmt: skip
    return next((str(m) for m in given if m), None)


def _tokens(raw: dict[str, Any], outputs: dict[str, Any],
            message: dict[str, Any]) -> tuple[int | None, int | None]:  # fmt: skip
    """The call's prompt and completion tokens: the run's own, else a usage it records."""
    if raw.get("prompt_tokens") or raw.get("completion_tokens"):
        return _int(raw.get("prompt_tokens")), _int(raw.get("completion_tokens"))
    generations = outputs.get("generations")
    first = generations[0] if isinstance(generations, list) and generations else None
    first = as_dict(first[0] if isinstance(first, list) and first else first)
    lc = as_dict(as_dict(first.get("message")).get("kwargs"))
    llm_output = as_dict(outputs.get("llm_output"))
    for usage in (
        outputs.get("usage_metadata"),
        lc.get("usage_metadata"),
        llm_output.get("token_usage"),
        llm_output.get("usage"),
        outputs.get("usage"),
    ):
        usage = as_dict(usage)
        sent = usage.get("input_tokens", usage.get("prompt_tokens"))
        received = usage.get("output_tokens", usage.get("completion_tokens"))
        if sent is not None or received is not None:
            return _int(sent), _int(received)
    return None, None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cost(raw: dict[str, Any]) -> float | None:
    """The run's ``total_cost`` (a decimal: text in JSON), else its prompt and completion
    costs."""
    total = _float(raw.get("total_cost"))
    if total is not None:
        return total
    parts = [_float(raw.get(k)) for k in ("prompt_cost", "completion_cost")]
    known = [p for p in parts if p is not None]
    return sum(known) if known else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- tool calls


def _tool_call(run: _Run, declared: list[dict[str, Any]]) -> tuple[Draft, ...]:
    raw = run.raw
    name = str(raw.get("name") or "tool")
    inputs = parsed(raw.get("inputs"))
    if isinstance(inputs, dict) and set(inputs) == {"input"}:
        inputs = parsed(inputs["input"])  # a tool given its input as text
    args = inputs if isinstance(inputs, dict) else {"input": inputs}
    result, reply = _result(raw.get("outputs"))
    call_id = _call_id(reply, name, declared) or str(raw["id"])
    error = raw.get("error")
    if error is None and reply.get("status") == "error":
        error = str(reply.get("content"))
    status = EventStatus.OK if error is None else EventStatus.ERROR
    started = canonical_json(_attrs(run))
    ended = {k: v for k, v in reply.items() if k not in ("content", "tool_call_id", "type")}
    return (Draft(run.start_ns, 0, EventKind.TOOL_CALL, name, call_id, canonical_json(args),
                  None, EventStatus.STARTED, None, None, None, None, None, started),
            Draft(run.end_ns, 1, EventKind.TOOL_RESULT, name, call_id, None,
                  canonical_json(result), status, None if error is None else str(error), None,
                  None, None, (run.end_ns - run.start_ns) / MS,
                  canonical_json(ended) if ended else None))  # fmt: skip


def _result(outputs: Any) -> tuple[Any, dict[str, Any]]:
    """A tool run's result and, when it is a ``ToolMessage``, that message's fields."""
    outputs = as_dict(outputs)
    output = outputs.get("output", outputs if outputs else None)
    if isinstance(output, dict) and output.get("lc") and "kwargs" in output:
        kwargs = as_dict(output["kwargs"])
        return kwargs.get("content"), kwargs
    if isinstance(output, dict) and output.get("type") == "tool" and "tool_call_id" in output:
        return output.get("content"), output
    return output, {}


def _call_id(reply: dict[str, Any], name: str, declared: list[dict[str, Any]]) -> str | None:
    """The id of the model's tool call this tool run answers (taken off ``declared``)."""
    wanted = reply.get("tool_call_id")
    for index, call in enumerate(declared):
        if (wanted and call["id"] == wanted) or (not wanted and call["name"] == name):
            del declared[index]
            return str(call["id"]) if call.get("id") else None
    return str(wanted) if wanted else None
