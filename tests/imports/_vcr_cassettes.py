"""vcrpy cassettes of model API traffic, written the way vcrpy writes them
(``vcr.serialize.serialize`` with ``vcr.serializers.yamlserializer``), the answers built from the
SDKs' own types (``openai.types.chat.ChatCompletion`` / ``ChatCompletionChunk``,
``openai.types.responses.Response`` and its stream events, ``anthropic.types.Message`` and its
raw stream events) and serialised as the APIs send them (``model_dump(mode="json")``).

The agent: a refund bot that calls ``refund`` for order 42 with the same arguments again and
again (``loops`` times, a runaway), each call's result carried by the next request, then gives
up; its first user message holds a secret, and every request an API key header."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from anthropic.types import (
    Message,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
)
from vcr.request import Request
from vcr.serialize import serialize
from vcr.serializers import yamlserializer

SECRET = "sk-proj-" + "Q7f3Kx9LmP2vR8sT1wY4zB6nC0dE5gH7jK9aS3uV"  # a key pasted into a prompt
API_KEY = "sk-ant-api03-" + "Zx8Cv7Bn6Mq5Wr4Ty3Ui2Op1As0Df9Gh8Jk7Ll"  # the request's own key
START = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
ARGS = {"order_id": "42", "amount": 30}
RESULT = "refund pending: the payment provider did not confirm"
SYSTEM = "You are a refund agent. Use the refund tool."
USER = f"Refund order 42, my card was charged twice. (debug: OPENAI_API_KEY={SECRET})"
GAVE_UP = "I could not complete the refund."
OPENAI = "https://api.openai.com/v1"
ANTHROPIC = "https://api.anthropic.com/v1"

_REFUND_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"},
                                                   "amount": {"type": "number"}},
                  "required": ["order_id", "amount"]}  # fmt: skip

Exchange = tuple[Request, dict[str, Any]]


def write_cassette(path: Path, exchanges: list[Exchange], gzipped: bool = False) -> Path:
    """The cassette file, as vcrpy writes it (``gzipped``: the whole file gzipped too)."""
    text = serialize({"requests": [q for q, _ in exchanges],
                      "responses": [r for _, r in exchanges]}, yamlserializer)  # fmt: skip
    path.write_bytes(gzip.compress(text.encode()) if gzipped else text.encode())
    return path


def response(body: bytes, *, status: int = 200, stream: bool = False, at: int | None = None,
             gzip_body: bool = False, reason: str = "OK") -> dict[str, Any]:  # fmt: skip
    """A response as vcrpy records it: headers as lists, the body's bytes (gzipped with its
    Content-Encoding when ``gzip_body``; vcrpy then writes it as ``!!binary``)."""
    headers = {"Content-Type": ["text/event-stream" if stream else "application/json"],
               "Set-Cookie": ["__cf_bm=abc123; path=/; HttpOnly"]}  # fmt: skip
    if at is not None:
        headers["Date"] = [format_datetime(START + timedelta(seconds=at), usegmt=True)]
    if gzip_body:
        body = gzip.compress(body)
        headers["Content-Encoding"] = ["gzip"]
    return {"status": {"code": status, "message": reason}, "headers": headers,
            "body": {"string": body}}  # fmt: skip


def _request(url: str, body: dict[str, Any], anthropic: bool = False) -> Request:
    headers = ({"x-api-key": API_KEY, "anthropic-version": "2023-06-01"} if anthropic
               else {"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
    return Request("POST", url, json.dumps(body).encode(),
                   {**headers, "Content-Type": "application/json"})  # fmt: skip


def sse(events: list[Any], named: bool) -> bytes:
    """Stream events as the API sends them: ``event:`` lines (Responses, Anthropic) or bare
    ``data:`` chunks ending in ``[DONE]`` (Chat Completions)."""
    out = []
    for event in events:
        data = json.dumps(event.model_dump(mode="json", exclude_none=True))
        out.append(f"event: {event.type}\ndata: {data}\n\n" if named else f"data: {data}\n\n")
    if not named:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def _dump(model: Any) -> bytes:
    return json.dumps(model.model_dump(mode="json", exclude_none=True)).encode()


def _calls(loops: int, parallel: bool) -> list[list[tuple[str, str, dict[str, Any]]]]:
    """Each answer's tool calls (id, name, arguments); the last answer none."""
    turns = [[(f"call_{i + 1:02d}", "refund", ARGS)] for i in range(loops)]
    if parallel:
        turns = [[("call_lookup", "lookup_order", {"order_id": "42"}),
                  ("call_refund", "refund", ARGS)]]  # fmt: skip
    return [*turns, []]


def _agent(url: str, body: Callable[[list[Any]], dict[str, Any]], answer: Callable[..., bytes],
           turn: Callable[[list[tuple[str, str, dict[str, Any]]]], list[Any]], *,
           loops: int, stream: bool, parallel: bool, dated: bool, anthropic: bool = False,
           gzip_body: bool = False) -> list[Exchange]:  # fmt: skip
    """The agent loop: each request carries the history, the answers and the tool results."""
    history: list[Any] = []
    exchanges = []
    for n, calls in enumerate(_calls(loops, parallel)):
        request = _request(url, body(history) | ({"stream": True} if stream else {}), anthropic)
        got = answer(n, calls, stream)
        exchanges.append((request, response(got, stream=stream, at=n * 2 if dated else None,
                                            gzip_body=gzip_body)))  # fmt: skip
        history.extend(turn(calls))
    return exchanges


# -- OpenAI Chat Completions ---------------------------------------------------------------------
def openai_chat(loops: int = 6, *, stream: bool = False, parallel: bool = False,
                dated: bool = True, gzip_body: bool = False) -> list[Exchange]:  # fmt: skip
    def body(history: list[Any]) -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": SYSTEM},
                                                     {"role": "user", "content": USER},
                                                     *history],
                "tools": [_openai_tool("refund"), _openai_tool("lookup_order")],
                "parallel_tool_calls": True}  # fmt: skip

    def turn(calls: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
        said = {"role": "assistant", "content": None, "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in calls]}  # fmt: skip
        return [said, *({"role": "tool", "tool_call_id": i, "content": RESULT}
                        for i, _, _ in calls)]  # fmt: skip

    return _agent(f"{OPENAI}/chat/completions", body, _chat_answer, turn, loops=loops,
                  stream=stream, parallel=parallel, dated=dated, gzip_body=gzip_body)  # fmt: skip


def _openai_tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": _REFUND_SCHEMA}}


def _chat_answer(n: int, calls: list[tuple[str, str, dict[str, Any]]], stream: bool) -> bytes:
    tool_calls = [{"id": i, "type": "function",
                   "function": {"name": name, "arguments": json.dumps(a)}}
                  for i, name, a in calls]  # fmt: skip
    usage = {"prompt_tokens": 120 + 40 * n, "completion_tokens": 18, "total_tokens": 138 + 40 * n}
    if not stream:
        message = {"role": "assistant", "content": None if calls else GAVE_UP}
        return _dump(
            ChatCompletion.model_validate(
                {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion",
                    "created": 1773480413 + n,
                    "model": "gpt-4o-mini-2024-07-18",
                    "usage": usage,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "tool_calls" if calls else "stop",
                            "message": message | ({"tool_calls": tool_calls} if calls else {}),
                        }
                    ],
                }
            )
        )
    return sse(_chat_chunks(n, calls, usage), named=False)


def _chat_chunks(n: int, calls: list[tuple[str, str, dict[str, Any]]],
                 usage: dict[str, int]) -> list[ChatCompletionChunk]:  # fmt: skip
    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> Any:
        return ChatCompletionChunk.model_validate(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion.chunk",
                "created": 1773480413 + n,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **more,
            }
        )

    chunks = [chunk({"role": "assistant", "content": ""})]
    for k, (call_id, name, args) in enumerate(calls):
        text = json.dumps(args)
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": k,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        for piece in (text[:7], text[7:]):  # the arguments streamed in deltas
            chunks.append(chunk({"tool_calls": [{"index": k, "function": {"arguments": piece}}]}))
    if not calls:
        chunks += [chunk({"content": GAVE_UP[:9]}), chunk({"content": GAVE_UP[9:]})]
    chunks.append(chunk({}, "tool_calls" if calls else "stop"))
    last = ChatCompletionChunk.model_validate(
        {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion.chunk",
            "created": 1773480413 + n,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [],
            "usage": usage,
        }
    )
    return [*chunks, last]


# -- OpenAI Responses --------------------------------------------------------------------------
def openai_responses(loops: int = 6, *, stream: bool = False, parallel: bool = False,
                     dated: bool = True) -> list[Exchange]:  # fmt: skip
    def body(history: list[Any]) -> dict[str, Any]:
        return {"model": "gpt-4.1-mini", "instructions": SYSTEM,
                "input": [{"role": "user", "content": USER}, *history],
                "tools": [{"type": "function", "name": "refund", "parameters": _REFUND_SCHEMA,
                           "strict": False}]}  # fmt: skip

    def turn(calls: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
        said = [{"type": "function_call", "call_id": i, "name": n, "arguments": json.dumps(a)}
                for i, n, a in calls]  # fmt: skip
        return [*said, *({"type": "function_call_output", "call_id": i, "output": RESULT}
                         for i, _, _ in calls)]  # fmt: skip

    return _agent(f"{OPENAI}/responses", body, _responses_answer, turn, loops=loops,
                  stream=stream, parallel=parallel, dated=dated)  # fmt: skip


def _response(n: int, output: list[dict[str, Any]], status: str = "completed") -> Response:
    return Response.model_validate(
        {
            "id": f"resp_{n}",
            "object": "response",
            "created_at": 1773480413 + n,
            "model": "gpt-4.1-mini-2025-04-14",
            "status": status,
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 200 + 50 * n,
                "output_tokens": 21,
                "total_tokens": 221 + 50 * n,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )


def _responses_output(n: int, calls: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    if calls:
        return [{"type": "function_call", "id": f"fc_{i}", "call_id": i, "name": name,
                 "arguments": json.dumps(a), "status": "completed"}
                for i, name, a in calls]  # fmt: skip
    return [
        {
            "type": "message",
            "id": f"msg_{n}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": GAVE_UP, "annotations": []}],
        }
    ]


def _responses_answer(n: int, calls: list[tuple[str, str, dict[str, Any]]], stream: bool) -> bytes:
    output = _responses_output(n, calls)
    done = _response(n, output)
    if not stream:
        return _dump(done)
    events: list[Any] = [
        ResponseCreatedEvent(
            type="response.created", sequence_number=0, response=_response(n, [], "in_progress")
        )
    ]
    seq = 1
    for k, item in enumerate(output):
        events.append(
            ResponseOutputItemAddedEvent.model_validate(
                {
                    "type": "response.output_item.added",
                    "sequence_number": seq,
                    "output_index": k,
                    "item": item | ({"arguments": ""} if calls else {"content": []}),
                }
            )
        )
        pieces = (
            [item["arguments"][:5], item["arguments"][5:]] if calls else [GAVE_UP[:6], GAVE_UP[6:]]
        )
        for piece in pieces:
            seq += 1
            if calls:
                events.append(
                    ResponseFunctionCallArgumentsDeltaEvent(
                        type="response.function_call_arguments.delta",
                        sequence_number=seq,
                        output_index=k,
                        item_id=item["id"],
                        delta=piece,
                    )
                )
            else:
                events.append(
                    ResponseTextDeltaEvent(
                        type="response.output_text.delta",
                        sequence_number=seq,
                        output_index=k,
                        item_id=item["id"],
                        content_index=0,
                        delta=piece,
                        logprobs=[],
                    )
                )
        seq += 1
        events.append(
            ResponseOutputItemDoneEvent.model_validate(
                {
                    "type": "response.output_item.done",
                    "sequence_number": seq,
                    "output_index": k,
                    "item": item,
                }
            )
        )
        seq += 1
    events.append(
        ResponseCompletedEvent(type="response.completed", sequence_number=seq, response=done)
    )
    return sse(events, named=True)


# -- Anthropic Messages --------------------------------------------------------------------------
def anthropic_messages(loops: int = 6, *, stream: bool = False, parallel: bool = False,
                       dated: bool = True) -> list[Exchange]:  # fmt: skip
    def body(history: list[Any]) -> dict[str, Any]:
        return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": SYSTEM,
                "messages": [{"role": "user", "content": USER}, *history],
                "tools": [{"name": "refund", "input_schema": _REFUND_SCHEMA}]}  # fmt: skip

    def turn(calls: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
        said = {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls],
        }
        results = {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": i, "content": RESULT} for i, _, _ in calls
            ],
        }
        return [said, results]

    return _agent(f"{ANTHROPIC}/messages", body, _anthropic_answer, turn, loops=loops,
                  stream=stream, parallel=parallel, dated=dated, anthropic=True)  # fmt: skip


def _anthropic_blocks(calls: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    if not calls:
        return [{"type": "text", "text": GAVE_UP}]
    return [
        {"type": "text", "text": "Retrying the refund."},
        *({"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls),
    ]


def _message(n: int, content: list[Any], stop: str | None, tokens_out: int) -> Message:
    return Message.model_validate(
        {
            "id": f"msg_0{n}",
            "type": "message",
            "role": "assistant",
            "content": content,
            "model": "claude-sonnet-4-5-20250929",
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 300 + 60 * n, "output_tokens": tokens_out},
        }
    )


def _anthropic_answer(n: int, calls: list[tuple[str, str, dict[str, Any]]], stream: bool) -> bytes:
    blocks = _anthropic_blocks(calls)
    stop = "tool_use" if calls else "end_turn"
    if not stream:
        return _dump(_message(n, blocks, stop, 42))
    events: list[Any] = [
        RawMessageStartEvent(type="message_start", message=_message(n, [], None, 1))
    ]
    for k, block in enumerate(blocks):
        start = block | ({"input": {}} if block["type"] == "tool_use" else {"text": ""})
        events.append(
            RawContentBlockStartEvent.model_validate(
                {"type": "content_block_start", "index": k, "content_block": start}
            )
        )
        if block["type"] == "tool_use":
            text = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in (text[:4], text[4:])]
        else:
            deltas = [
                {"type": "text_delta", "text": p} for p in (block["text"][:5], block["text"][5:])
            ]
        events += [
            RawContentBlockDeltaEvent.model_validate(
                {"type": "content_block_delta", "index": k, "delta": d}
            )
            for d in deltas
        ]
        events.append(RawContentBlockStopEvent(type="content_block_stop", index=k))
    events.append(
        RawMessageDeltaEvent.model_validate(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 42},
            }
        )
    )
    events.append(RawMessageStopEvent(type="message_stop"))
    return sse(events, named=True)
