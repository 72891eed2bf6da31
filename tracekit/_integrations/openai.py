"""The openai SDK: chat completions and the Responses API, sync, async and streamed."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from .calls import Api, Usage, field, given, is_async_client, wrap
from .prices import Prices

__all__ = ["chat_stream_tool_calls", "chat_tool_calls", "instrument_openai"]


def instrument_openai(client: Any, prices: Prices) -> Any:
    """Record and guard ``create`` and ``parse`` of ``client.chat.completions`` and of
    ``client.responses`` (``parse`` does not go through ``create``: unwrapped, a halted run
    could still call the model through it)."""
    chat, responses = _apis()
    asynchronous = is_async_client(client)
    methods = (
        (client.chat.completions, "create", chat),
        (client.chat.completions, "parse", _parsing(chat, "response_format", _parsed_chat)),
        (client.responses, "create", responses),
        (client.responses, "parse", _parsing(responses, "text_format", _parsed_response)),
    )
    for owner, name, api in methods:
        setattr(owner, name, wrap(getattr(owner, name), api, prices, asynchronous))
    return client


def _apis() -> tuple[Api, Api]:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent

    event = TypeAdapter(typing.get_args(ResponseStreamEvent)[0])
    chat = Api(
        prompt_keys=("messages", "tools"),
        decode=_as_the_sdk_reads(ChatCompletion),
        decode_chunk=ChatCompletionChunk.model_validate,
        usage=_chat_usage,
        stream_usage=lambda chunks: _chat_usage(_last_with(chunks, "usage")),
        tool_calls=chat_tool_calls,
        stream_tool_calls=chat_stream_tool_calls,
        prepare=_ask_for_usage,
    )
    responses = Api(
        prompt_keys=("input", "instructions", "tools", "previous_response_id"),
        decode=_as_the_sdk_reads(Response),
        decode_chunk=event.validate_python,
        usage=_responses_usage,
        stream_usage=lambda events: _responses_usage(_completed(events)),
        tool_calls=_responses_tool_calls,
        stream_tool_calls=lambda events: _responses_tool_calls(_completed(events)),
    )
    return chat, responses


def _as_the_sdk_reads(cls: Any) -> Callable[[Any], Any]:
    """A recorded answer as the SDK's object: validated, or, where the provider left out a
    field the SDK's types require (the SDK does not validate what it is sent), built the
    lenient way the SDK builds it."""
    from openai._models import construct_type
    from pydantic import ValidationError

    def decode(value: Any) -> Any:
        try:
            return cls.model_validate(value)
        except ValidationError:
            return construct_type(type_=cls, value=value)

    return decode


def _parsing(api: Api, format_key: str, served: Callable[[Any, dict[str, Any]], Any]) -> Api:
    """``parse``: the same call with its output format in the prompt (a pydantic model as its
    JSON schema); in agent replay the recorded answer is parsed again, as the SDK does."""
    return dataclasses.replace(api, prompt_keys=(*api.prompt_keys, format_key), served=served)


def _parsed_chat(completion: Any, kwargs: dict[str, Any]) -> Any:
    from openai import omit
    from openai.lib._parsing._completions import parse_chat_completion

    return parse_chat_completion(
        response_format=kwargs.get("response_format", omit),
        input_tools=kwargs.get("tools", omit),
        chat_completion=completion,
    )


def _parsed_response(response: Any, kwargs: dict[str, Any]) -> Any:
    from openai import omit
    from openai.lib._parsing._responses import parse_response

    return parse_response(
        text_format=kwargs.get("text_format", omit),
        input_tools=kwargs.get("tools", omit),
        response=response,
    )


def _ask_for_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A streamed chat completion carries its usage only when asked: tracekit asks, so the
    guard's cost bounds count streamed calls too."""
    options = kwargs.get("stream_options")
    if kwargs.get("stream") is True and (options is None or not given(options)):
        return {**kwargs, "stream_options": {"include_usage": True}}
    return kwargs


def _chat_usage(answer: Any) -> Usage:
    """The usage of an answer (or of the chunk that carries it), read on every call (the guard
    counts the cost): attributes of the SDK's own object, on one frame."""
    usage = getattr(answer, "usage", None)
    if usage is None:
        return None, None, None
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None)
    return getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None), cached


def _responses_usage(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None, None
    cached = getattr(getattr(usage, "input_tokens_details", None), "cached_tokens", None)
    return getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None), cached


def _last_with(chunks: list[Any], name: str) -> Any:
    """The last chunk whose ``name`` is set."""
    return next((c for c in reversed(chunks) if field(c, name) is not None), None)


def chat_tool_calls(result: Any) -> list[dict[str, Any]]:
    choices = field(result, "choices") or []
    calls = field(choices[0], "message", "tool_calls") if choices else None
    return [
        {
            "id": field(c, "id"),
            "name": field(c, "function", "name"),
            "arguments": field(c, "function", "arguments"),
        }
        for c in calls or []
    ]


def chat_stream_tool_calls(chunks: list[Any]) -> list[dict[str, Any]]:
    """Tool calls assembled from their deltas, by index."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in field(chunk, "choices") or []:
            for delta in field(choice, "delta", "tool_calls") or []:
                call = calls.setdefault(
                    field(delta, "index") or 0, {"id": None, "name": None, "arguments": ""}
                )
                call["id"] = call["id"] or field(delta, "id")
                call["name"] = call["name"] or field(delta, "function", "name")
                call["arguments"] += field(delta, "function", "arguments") or ""
    return [calls[i] for i in sorted(calls)]


def _completed(events: list[Any]) -> Any:
    """The response a stream ended with (``response.completed``)."""
    done = [e for e in events if field(e, "type") == "response.completed"]
    return field(done[-1], "response") if done else None


def _responses_tool_calls(response: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": field(item, "call_id"),
            "name": field(item, "name"),
            "arguments": field(item, "arguments"),
        }
        for item in field(response, "output") or []
        if field(item, "type") == "function_call"
    ]
