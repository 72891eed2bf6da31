"""What tracekit reads of the OpenAI Agents SDK's spans: a model call (a generation span from the
chat completions model, a response span from the Responses model) and a function tool's call.

Only plain data comes out (JSON-able values, token counts), so the public integration records it
through the capture API without knowing the SDK's span types beyond these readers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents.tracing import Span
from agents.tracing.span_data import GenerationSpanData, ResponseSpanData

from .calls import field

__all__ = ["ModelSeen", "arguments", "latency_ms", "model_seen"]


@dataclass(frozen=True)
class ModelSeen:
    """One model call as its span saw it."""

    model: str | None
    prompt: Any  # the input sent (None when the run does not trace sensitive data)
    output: Any  # the answer, JSON-able
    tokens_in: int | None
    tokens_out: int | None
    cached_in: int | None
    tool_calls: list[dict[str, Any]]


def model_seen(data: GenerationSpanData | ResponseSpanData) -> ModelSeen | None:
    """The model call of a generation or response span; None when it carries no answer."""
    if isinstance(data, GenerationSpanData):
        return _generation(data)
    return _response(data)


def _generation(data: GenerationSpanData) -> ModelSeen | None:
    output = list(data.output) if data.output is not None else None
    if output is None and data.usage is None:
        return None
    calls = [call for message in output or () for call in _calls_in(message)]
    tokens_in, tokens_out, cached = _usage(data.usage)
    prompt = list(data.input) if data.input is not None else None
    return ModelSeen(data.model, prompt, output, tokens_in, tokens_out, cached, calls)


def _calls_in(message: Any) -> list[dict[str, Any]]:
    """The tool calls of one generation output: a chat message, or (a streamed chat
    completion) the Responses-shaped answer the SDK built from it."""
    items = field(message, "output")
    if isinstance(items, list):
        return [
            {
                "id": field(i, "call_id"),
                "name": field(i, "name"),
                "arguments": field(i, "arguments"),
            }
            for i in items
            if field(i, "type") == "function_call"
        ]
    return [
        {
            "id": field(call, "id"),
            "name": field(call, "function", "name"),
            "arguments": field(call, "function", "arguments"),
        }
        for call in field(message, "tool_calls") or ()
    ]


def _response(data: ResponseSpanData) -> ModelSeen | None:
    response = data.response
    if response is None:
        return None
    calls = [
        {"id": item.call_id, "name": item.name, "arguments": item.arguments}
        for item in response.output
        if item.type == "function_call"
    ]
    usage = data.usage
    if usage is None and response.usage is not None:
        usage = response.usage.model_dump()
    tokens_in, tokens_out, cached = _usage(usage)
    output = response.model_dump(mode="json", exclude_none=True)
    return ModelSeen(response.model, data.input, output, tokens_in, tokens_out, cached, calls)


def _usage(usage: Any) -> tuple[int | None, int | None, int | None]:
    return (
        field(usage, "input_tokens"),
        field(usage, "output_tokens"),
        field(usage, "input_tokens_details", "cached_tokens"),
    )


def arguments(text: str | None) -> dict[str, Any]:
    """A tool call's JSON arguments by name (not an object: under ``input``)."""
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"input": text}
    return parsed if isinstance(parsed, dict) else {"input": parsed}


def latency_ms(span: Span[Any]) -> float | None:
    """How long the span lasted, from its ISO timestamps."""
    started, ended = span.started_at, span.ended_at
    if not started or not ended:
        return None
    try:
        delta = datetime.fromisoformat(ended) - datetime.fromisoformat(started)
    except ValueError:
        return None
    return delta.total_seconds() * 1000.0
