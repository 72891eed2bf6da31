"""Spans that follow OpenInference's conventions (Arize Phoenix and the ``openinference-*``
instrumentations) as tracekit's event drafts.

``openinference.span.kind`` says what a span is: ``LLM`` is a model call (a prompt at its start,
a model output at its end), ``TOOL`` a tool call and its result, ``AGENT`` names the run; the
other kinds (``CHAIN``, ``RETRIEVER``, ``EMBEDDING``, ...) give no events. Messages are
flattened into attributes (``llm.input_messages.0.message.role``, ``...message.contents.1.
message_content.text``, ``...message.tool_calls.0.tool_call.function.arguments``) and read back
into lists; ``input.value`` / ``output.value`` stand in where a span has no messages. Usage is
``llm.token_count.*``, a cost the span carries ``llm.cost.total``. What tracekit has no column for
stays in the event's ``attrs``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from .drafts import Draft
from .genai import as_json, latency_ms, tool_call_args
from .otlp import Span
from .spans import Convention

__all__ = ["CONVENTION", "messages", "run_name", "span_drafts", "unflatten"]

KIND = "openinference.span.kind"
_INDEX = re.compile(r"^\d+$")
#: the prefixes read into columns or messages: not repeated in attrs
_TAKEN_PREFIXES = ("llm.input_messages.", "llm.output_messages.", "llm.token_count.",
                   "llm.cost.", "llm.tools.")  # fmt: skip
_TAKEN = frozenset({
    KIND, "llm.model_name", "input.value", "output.value", "input.mime_type", "output.mime_type",
    "tool.name", "tool.id", "tool_call.id", "tool_call.function.name",
    "tool_call.function.arguments",
})  # fmt: skip


def claims(span: Span) -> bool:
    return KIND in span.attrs


def span_drafts(span: Span) -> Iterator[Draft]:
    """The drafts of one span: none for a span that is neither a model call nor a tool call."""
    kind = str(span.attrs.get(KIND) or "").upper()
    if kind == "LLM":
        yield from _model_call(span)
    elif kind == "TOOL":
        yield from _tool_call(span)


def run_name(span: Span) -> str | None:
    """The agent's name, for an ``AGENT`` span."""
    if str(span.attrs.get(KIND) or "").upper() != "AGENT":
        return None
    return str(span.attrs.get("agent.name") or span.name)


def unflatten(attrs: dict[str, Any], prefix: str) -> Any:
    """The attributes under ``prefix`` as the structure they flatten: numeric segments are list
    indexes (``a.0.b`` -> ``[{"b": ...}]``), others keys; None when there are none."""
    tree: dict[str, Any] = {}
    for key, value in attrs.items():
        if key.startswith(prefix):
            _put(tree, key[len(prefix) :].split("."), value)
    return _lists(tree) if tree else None


def _put(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for segment in path[:-1]:
        found = tree.get(segment)
        tree = found if isinstance(found, dict) else tree.setdefault(segment, {})
        if not isinstance(found, dict) and found is not None:
            tree = {}  # a value and a branch under one name: keep the value
    tree[path[-1]] = value


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(_INDEX.match(k) for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


def messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """The flattened messages under ``prefix`` (``llm.input_messages.``) as chat messages:
    ``role``, ``content`` (the text parts joined when given as ``contents``), ``tool_calls``
    in OpenAI's shape, and the rest of each message as it is."""
    found = unflatten(attrs, prefix)
    items = found if isinstance(found, list) else []
    return [_message(m.get("message") or {}) for m in items if isinstance(m, dict)]


def _message(raw: dict[str, Any]) -> dict[str, Any]:
    message = {k: v for k, v in raw.items() if k not in ("contents", "tool_calls")}
    contents = raw.get("contents")
    if isinstance(contents, list) and "content" not in message:
        parts = [c.get("message_content") or {} for c in contents if isinstance(c, dict)]
        message["content"] = "".join(str(p.get("text") or "") for p in parts)
    calls = raw.get("tool_calls")
    if isinstance(calls, list):
        message["tool_calls"] = [_call((c or {}).get("tool_call") or {}) for c in calls]
    return message


def _call(raw: dict[str, Any]) -> dict[str, Any]:
    function = raw.get("function") or {}
    arguments = function.get("arguments")
    text = arguments if isinstance(arguments, str) else canonical_json(arguments or {})
    return {"id": raw.get("id"), "type": "function",
            "function": {"name": function.get("name"), "arguments": text}}  # fmt: skip


def _model_call(span: Span) -> Iterator[Draft]:
    attrs = span.attrs
    model = attrs.get("llm.model_name")
    name = str(model) if model else span.name
    prompt: dict[str, Any] = {"messages": messages(attrs, "llm.input_messages.")}
    if not prompt["messages"] and attrs.get("input.value") is not None:
        prompt["input"] = as_json(attrs["input.value"])
    tools = unflatten(attrs, "llm.tools.")
    if isinstance(tools, list):
        prompt["tools"] = [as_json((t or {}).get("tool", {}).get("json_schema")) for t in tools]
    output = messages(attrs, "llm.output_messages.")
    if not output and attrs.get("output.value") is not None:
        output = [{"role": "assistant", "content": as_json(attrs["output.value"])}]
    call_id = f"span_{span.span_id}"
    yield Draft(span.start_ns, 0, EventKind.PROMPT, name, call_id, canonical_json(prompt))
    yield Draft(span.end_ns, 1, EventKind.MODEL_OUTPUT, name, call_id, None,
                canonical_json({"messages": output}),
                EventStatus.ERROR if span.error is not None else EventStatus.OK,
                span.error or None, _int(attrs.get("llm.token_count.prompt")),
                _int(attrs.get("llm.token_count.completion")), _cost(attrs),
                latency_ms(span), canonical_json(_output_attrs(span, output)),
                str(model) if model else None)  # fmt: skip


def _output_attrs(span: Span, output: list[dict[str, Any]]) -> dict[str, Any]:
    extra = _rest(span.attrs) | {"span_id": span.span_id}
    calls = [
        {"id": c.get("id"), "name": c["function"].get("name"),
         "arguments": c["function"].get("arguments")}
        for m in output for c in m.get("tool_calls") or ()
    ]  # fmt: skip
    details = unflatten(span.attrs, "llm.token_count.")
    if isinstance(details, dict):
        extra["token_count"] = details
    return extra | {"tool_calls": calls} if calls else extra


def _tool_call(span: Span) -> Iterator[Draft]:
    attrs = span.attrs
    name = str(attrs.get("tool.name") or attrs.get("tool_call.function.name") or span.name)
    call_id = str(attrs.get("tool_call.id") or attrs.get("tool.id") or f"span_{span.span_id}")
    given = attrs.get("tool_call.function.arguments", attrs.get("input.value"))
    extra = _rest(attrs) | {"span_id": span.span_id}
    yield Draft(span.start_ns, 0, EventKind.TOOL_CALL, name, call_id, tool_call_args(given),
                None, EventStatus.STARTED, None, None, None, None, None,
                canonical_json(extra))  # fmt: skip
    result = attrs.get("output.value")
    failed = span.error is not None
    yield Draft(span.end_ns, 1, EventKind.TOOL_RESULT, name, call_id, None,
                None if result is None else canonical_json(as_json(result)),
                EventStatus.ERROR if failed else EventStatus.OK,
                (span.error or "error") if failed else None, None, None, None,
                latency_ms(span))  # fmt: skip


def _rest(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items()
            if k not in _TAKEN and not k.startswith(_TAKEN_PREFIXES)}  # fmt: skip


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _cost(attrs: dict[str, Any]) -> float | None:
    value = attrs.get("llm.cost.total")
    return float(value) if isinstance(value, int | float) else None


#: how ``spans`` reads an OpenInference span
CONVENTION = Convention("openinference", claims, span_drafts, run_name)
