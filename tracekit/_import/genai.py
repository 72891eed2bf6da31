"""Spans that follow OpenTelemetry's GenAI conventions as tracekit's event drafts.

``gen_ai.operation.name`` says what a span is: ``chat`` (and ``text_completion``,
``generate_content``) is a model call, a prompt at its start and a model output at its end;
``execute_tool`` is a tool call and its result; ``invoke_agent`` and ``create_agent`` name the
run. The messages come from ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON text or
structured, with their parts), from the ``gen_ai.client.inference.operation.details`` event, or
from the older per-message events (``gen_ai.user.message``, ``gen_ai.choice``, ...). Usage is read
under its current names and the legacy ones (``prompt_tokens`` / ``completion_tokens``). What
tracekit has no column for stays in the event's ``attrs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .._base.encode import canonical_json
from .._base.exported import EXPORTED, EXPORTED_COLUMNS
from .._base.vocab import EventKind, EventStatus
from .drafts import Draft
from .otlp import Span
from .spans import Convention

__all__ = [
    "CONVENTION",
    "MODEL_OPERATIONS",
    "as_json",
    "is_genai",
    "latency_ms",
    "run_name",
    "span_drafts",
    "tool_call_args",
]

MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent"})
#: read into columns (or the messages): not repeated in attrs
_TAKEN = frozenset({
    "gen_ai.operation.name", "gen_ai.input.messages", "gen_ai.output.messages",
    "gen_ai.system_instructions", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "gen_ai.tool.name",
    "gen_ai.tool.call.id", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "gen_ai.request.model", "gen_ai.response.model",
})  # fmt: skip
_INPUT_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"


def is_genai(span: Span) -> bool:
    return "gen_ai.operation.name" in span.attrs or any(k.startswith("gen_ai.") for k in span.attrs)


def span_drafts(span: Span) -> Iterator[Draft]:
    """The drafts of one span: none for a span that is neither a model call nor a tool call
    (an agent span names its run; see ``run_name``)."""
    if EXPORTED in span.resource:
        yield from _exported(span)
        return
    attrs = _with_details(span)
    operation = attrs.get("gen_ai.operation.name")
    if operation in MODEL_OPERATIONS:
        yield from _model_call(span, attrs)
    elif operation == "execute_tool":
        yield from _tool_call(span, attrs)


def _exported(span: Span) -> Iterator[Draft]:
    """The events of a run tracekit exported (``tracekit export --format otlp-json``): its root
    span carries each one whole as a ``tracekit.event``; the GenAI spans repeat them for others."""
    if span.parent_id is not None:
        return
    for ts_ns, name, a in span.events:
        if name == "tracekit.event":
            yield Draft(ts_ns, 0, str(a["tracekit.kind"]),
                        *(a.get(f"tracekit.{c}") for c in EXPORTED_COLUMNS))  # fmt: skip


def run_name(span: Span) -> str | None:
    """The agent's name, for a span that invokes or creates one."""
    if span.attrs.get("gen_ai.operation.name") not in _AGENT_OPERATIONS:
        return None
    return str(span.attrs.get("gen_ai.agent.name") or span.name)


def _with_details(span: Span) -> dict[str, Any]:
    """The span's attributes, with those of its operation-details event (newer instrumentations
    put the messages there)."""
    details = [a for _, name, a in span.events if name == _DETAILS_EVENT]
    return {**span.attrs, **details[-1]} if details else span.attrs


def _model_call(span: Span, attrs: dict[str, Any]) -> Iterator[Draft]:
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    name = str(model) if model else span.name
    prompt: dict[str, Any] = {"messages": _input_messages(span, attrs)}
    if attrs.get("gen_ai.system_instructions") is not None:
        prompt["system"] = as_json(attrs["gen_ai.system_instructions"])
    output = _output_messages(span, attrs)
    calls = [c for m in output for c in _tool_calls(m)]
    extra = _rest(attrs)
    extra["span_id"] = span.span_id
    if calls:
        extra["tool_calls"] = calls
    tokens_in = _int(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    tokens_out = _int(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
    status = EventStatus.ERROR if span.error is not None else EventStatus.OK
    call_id = f"span_{span.span_id}"
    yield Draft(span.start_ns, 0, EventKind.PROMPT, name, call_id, canonical_json(prompt))
    yield Draft(span.end_ns, 1, EventKind.MODEL_OUTPUT, name, call_id, None,
                canonical_json({"messages": output}), status, span.error or None, tokens_in,
                tokens_out, _cost(attrs), latency_ms(span), canonical_json(extra),
                str(model) if model else None)  # fmt: skip


def _tool_call(span: Span, attrs: dict[str, Any]) -> Iterator[Draft]:
    name = str(attrs.get("gen_ai.tool.name") or span.name.removeprefix("execute_tool ").strip())
    call_id = str(attrs.get("gen_ai.tool.call.id") or f"span_{span.span_id}")
    args = tool_call_args(attrs.get("gen_ai.tool.call.arguments"))
    extra = _rest(attrs) | {"span_id": span.span_id}
    started = EventStatus.STARTED
    yield Draft(span.start_ns, 0, EventKind.TOOL_CALL, name, call_id, args, None, started, None,
                None, None, None, None, canonical_json(extra))  # fmt: skip
    result = attrs.get("gen_ai.tool.call.result")
    failed = span.error is not None
    error = (span.error or str(attrs.get("error.type") or "error")) if failed else None
    output = None if result is None else canonical_json(as_json(result))
    status = EventStatus.ERROR if failed else EventStatus.OK
    yield Draft(span.end_ns, 1, EventKind.TOOL_RESULT, name, call_id, None, output, status,
                error, None, None, None, latency_ms(span))  # fmt: skip


def _input_messages(span: Span, attrs: dict[str, Any]) -> list[Any]:
    given = attrs.get("gen_ai.input.messages")
    if given is not None:
        found = as_json(given)
        return found if isinstance(found, list) else [found]
    return [
        {"role": a.get("role") or _INPUT_EVENTS[name], **_without(a, "role")}
        for _, name, a in span.events
        if name in _INPUT_EVENTS
    ]


def _output_messages(span: Span, attrs: dict[str, Any]) -> list[Any]:
    given = attrs.get("gen_ai.output.messages")
    if given is not None:
        found = as_json(given)
        return found if isinstance(found, list) else [found]
    return [_choice(a) for _, name, a in span.events if name == "gen_ai.choice"]


def _choice(attrs: dict[str, Any]) -> Any:
    """A legacy ``gen_ai.choice`` event: its message (JSON text or structured), finish reason."""
    message = as_json(attrs.get("message"))
    if not isinstance(message, dict):
        message = {"role": "assistant", "content": message}
    if attrs.get("finish_reason") is not None:
        message = {**message, "finish_reason": attrs["finish_reason"]}
    return message


def _tool_calls(message: Any) -> list[dict[str, Any]]:
    """A message's tool calls as ``{"id", "name", "arguments"}`` (arguments as JSON text): the
    conventions' ``tool_call`` parts, or an OpenAI-style ``tool_calls`` list."""
    if not isinstance(message, dict):
        return []
    calls = [p for p in message.get("parts") or () if isinstance(p, dict)
             and p.get("type") == "tool_call"]  # fmt: skip
    found = [(c.get("id"), c.get("name"), c.get("arguments")) for c in calls]
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {} if isinstance(call, dict) else {}
        found.append((call.get("id"), function.get("name"), function.get("arguments")))
    return [{"id": i, "name": n, "arguments": _text(a)} for i, n, a in found]


def _text(arguments: Any) -> str:
    """Tool-call arguments as JSON text, as the SDKs' own tool calls carry them."""
    if isinstance(arguments, str):
        return arguments
    return canonical_json(arguments if arguments is not None else {})


def tool_call_args(given: Any) -> str:
    """A tool call's arguments (JSON text or structured) as its ``args``: an object as it is,
    anything else under ``input``."""
    arguments = as_json(given)
    return canonical_json(arguments if isinstance(arguments, dict) else {"input": arguments})


def _rest(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in _TAKEN}


def _without(attrs: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: as_json(v) if k in ("content", "tool_calls") else v for k, v in attrs.items()
            if k != key}  # fmt: skip


def as_json(value: Any) -> Any:
    """A JSON document given as text, parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _int(attrs: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = attrs.get(name)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def _cost(attrs: dict[str, Any]) -> float | None:
    """A cost the span carries itself (a few instrumentations record one)."""
    for name in ("gen_ai.usage.cost", "tracekit.cost_usd"):
        value = attrs.get(name)
        if isinstance(value, int | float):
            return float(value)
    return None


def latency_ms(span: Span) -> float:
    return max(span.end_ns - span.start_ns, 0) / 1e6


#: how ``spans`` reads a GenAI span
CONVENTION = Convention("otel", is_genai, span_drafts, run_name)
