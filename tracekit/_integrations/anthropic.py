"""The anthropic SDK: Messages, sync, async and streamed (``stream=True``)."""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

from pydantic import TypeAdapter

from .._base.encode import canonical_json
from .._capture.run import current_run
from .calls import Api, Usage, field, given, is_async_client, wrap
from .prices import Prices

__all__ = ["instrument_anthropic"]


def instrument_anthropic(client: Any, prices: Prices) -> Any:
    """Record and guard ``client.messages.create`` and ``parse`` (and the ``stream()`` helper,
    over ``create``)."""
    messages, asynchronous = client.messages, is_async_client(client)
    api = _api()
    messages.create = wrap(messages.create, api, prices, asynchronous)
    # parse() posts without create: unwrapped, a halted run could still reach the model
    parsing = dataclasses.replace(
        api, prompt_keys=(*api.prompt_keys, "output_format"), served=_parsed
    )
    messages.parse = wrap(messages.parse, parsing, prices, asynchronous)
    messages.stream = _stream_helper(messages, asynchronous)
    return client


def _stream_helper(messages: Any, asynchronous: bool) -> Any:
    """``messages.stream(...)``, the SDK's streaming helper, over the recorded and guarded
    ``messages.create(stream=True, ...)``: the same ``MessageStream`` (text_stream,
    get_final_message) reaches the caller, and agent replay serves it from the recording."""
    from anthropic import NOT_GIVEN
    from anthropic.lib.streaming import AsyncMessageStreamManager, MessageStreamManager

    original, create = messages.stream, messages.create

    @functools.wraps(original)
    def stream(**kwargs: Any) -> Any:
        if current_run() is None:
            return original(**kwargs)
        parsed = kwargs.pop("output_format", NOT_GIVEN)  # parsed outputs: a format to send
        if given(parsed) and parsed is not None:
            kwargs["output_config"] = _with_format(kwargs.get("output_config"), parsed)
        if asynchronous:
            return AsyncMessageStreamManager(create(stream=True, **kwargs), output_format=parsed)
        return MessageStreamManager(lambda: create(stream=True, **kwargs), output_format=parsed)

    return stream


def _with_format(config: Any, output_format: Any) -> dict[str, Any]:
    """``output_config`` with the output type's JSON schema as its format: the request the
    SDK's ``stream(output_format=...)`` sends, made through ``create`` (so it is recorded and
    guarded); the stream manager parses the final text into the type, as the SDK's does."""
    from anthropic.lib._parse._transform import cached_json_schema, transform_schema

    if isinstance(output_format, (str, dict)):
        raise TypeError(
            "`output_format` must be a type; pass a schema dict as "
            "`output_config={'format': ...}` instead"
        )
    schema = transform_schema(cached_json_schema(TypeAdapter(output_format)))
    found = {"schema": schema, "type": "json_schema"}
    return {**config, "format": found} if config and given(config) else {"format": found}


def _parsed(message: Any, kwargs: dict[str, Any]) -> Any:
    """In agent replay: the recorded answer parsed into the caller's output type again."""
    from anthropic import NOT_GIVEN
    from anthropic.lib._parse._response import parse_response

    return parse_response(output_format=kwargs.get("output_format", NOT_GIVEN), response=message)


def _api() -> Api:
    from anthropic.types import Message, RawMessageStreamEvent

    event = TypeAdapter(typing.get_args(RawMessageStreamEvent)[0])
    return Api(
        prompt_keys=("system", "messages", "tools", "output_config"),
        decode=Message.model_validate,
        decode_chunk=event.validate_python,
        usage=_usage,
        stream_usage=_stream_usage,
        tool_calls=lambda m: _tool_calls(field(m, "content") or []),
        stream_tool_calls=_stream_tool_calls,
    )


def _usage(message: Any) -> Usage:
    """A message's usage, read on every call (the guard counts the cost): attributes of the
    SDK's own object, on one frame."""
    usage = getattr(message, "usage", None)
    if usage is None:
        return None, None, 0
    cached = getattr(usage, "cache_read_input_tokens", None) or 0
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    tokens_in = (getattr(usage, "input_tokens", None) or 0) + written + cached
    return tokens_in, getattr(usage, "output_tokens", None), cached


def _stream_usage(events: list[Any]) -> Usage:
    """Input tokens from ``message_start``, output tokens from the last ``message_delta``."""
    start = next((e for e in events if field(e, "type") == "message_start"), None)
    tokens_in, _, cached = _usage(field(start, "message"))
    deltas = [e for e in events if field(e, "type") == "message_delta"]
    tokens_out = field(deltas[-1], "usage", "output_tokens") if deltas else None
    return tokens_in, tokens_out, cached


def _tool_calls(blocks: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": field(b, "id"),
            "name": field(b, "name"),
            "arguments": canonical_json(field(b, "input")),
        }
        for b in blocks
        if field(b, "type") == "tool_use"
    ]


def _stream_tool_calls(events: list[Any]) -> list[dict[str, Any]]:
    """tool_use blocks from their start and their input's JSON deltas."""
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        kind, index = field(event, "type"), field(event, "index")
        if kind == "content_block_start" and field(event, "content_block", "type") == "tool_use":
            block = field(event, "content_block")
            calls[index] = {"id": field(block, "id"), "name": field(block, "name"), "arguments": ""}
        elif kind == "content_block_delta" and index in calls:
            calls[index]["arguments"] += field(event, "delta", "partial_json") or ""
    return [calls[i] for i in sorted(calls)]
