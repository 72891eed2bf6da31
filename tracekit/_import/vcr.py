"""vcrpy cassettes (format version 1, YAML or JSON) of model API traffic as runs: ``vcr-<digest>``.

A cassette is ``interactions``, each a ``request`` (method, uri, headers, body) and the
``response`` it got (status code and message, headers as lists, ``body.string``: text, or bytes
as YAML ``!!binary``, gzipped or deflated per its ``Content-Encoding`` or not). Each interaction
whose JSON request is an OpenAI Chat Completions (``/chat/completions``), OpenAI Responses
(``/responses``) or Anthropic Messages (``/messages``) call is a model call: a prompt of the
request's messages (``input``) with its ``system`` / ``instructions`` / ``tools`` and a model
output of the answer, read from a JSON body or from a server-sent event stream
(``text/event-stream``: the streamed text, tool-call argument deltas, usage and model
assembled). A non-2xx response is a model output in error with the body's text. The tool calls
an answer declares are in its ``attrs.tool_calls``; when a later request carries the result of
one (an OpenAI ``role: tool`` message, a Responses ``function_call_output`` item, an Anthropic
``tool_result`` block), that call and its result are a tool call between the two model calls.
Every interaction is also an ``http`` event, the shape ``tracekit.http`` records (credential
headers and URL secrets scrubbed, the body decoded), so ``tracekit export`` writes the cassette
back for agent replay.

Clock: each response's ``Date`` header (interactions in cassette order, each at least 1 ms after
the one before); a cassette without one starts at 2000-01-01 UTC, 1 s an interaction. Within an
interaction the prompt is at its time, the http event 1 µs and the model output 2 µs after it;
the tool calls answered by its request share the time since the previous interaction. A last
model call in error fails the run.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .._base.encode import canonical_json
from .._base.urls import scrub_headers, scrub_url
from .._base.vocab import EventKind, EventStatus
from ..errors import ImportFormatError
from ..http import _decoded  # the body decoding tracekit.http records with
from .drafts import Draft, Unit
from .jsonfile import FIXED_EPOCH_NS, MS, as_dict, digest_of, parsed
from .source import open_text

__all__ = ["read", "sniff"]

_WHAT = "a vcrpy cassette (YAML or JSON with 'interactions' and 'version')"
_TOP = re.compile(r"^interactions:", re.M)
_JSON_TOP = re.compile(r'\A\s*\{\s*"(interactions|version)"\s*:')
_US = 1000
_PROMPT_KEYS = ("messages", "input", "system", "instructions", "tools")
_ERROR_TEXT = 4000  # characters of an error body kept in the error column


class _Exchange(NamedTuple):
    """One interaction, as the cassette holds it (header names lower-cased)."""

    method: str
    url: str
    sent_headers: list[tuple[str, str]]
    sent: bytes
    status: int
    reason: str
    got_headers: list[tuple[str, str]]
    got: bytes  # content-encoding undone when it could be


class _Answer(NamedTuple):
    """A model call's answer, whichever API gave it."""

    messages: list[Any]
    calls: list[dict[str, Any]]  # declared: {"id", "name", "arguments" (JSON text)}
    tokens_in: int | None
    tokens_out: int | None
    model: str | None
    extra: dict[str, Any]
    error: str | None = None


class _Pending(NamedTuple):
    """A declared tool call no request has answered yet."""

    call: dict[str, Any]
    declared_in: int  # the interaction's index


def sniff(path: Path, head: str) -> bool:
    if _JSON_TOP.match(head):
        return '"interactions"' in head and '"request"' in head
    return bool(_TOP.search(head)) and ("version:" in head or "- request:" in head)


def read(path: Path, fmt: str) -> Iterator[Unit]:
    """One run: a unit per interaction, and one per tool call a later request answered."""
    exchanges = _load(path)
    keys = [[x.method, x.url, x.sent.decode("utf-8", "replace")] for x in exchanges]
    run_id = f"vcr-{digest_of(canonical_json(keys))}"
    name = path.name.removesuffix(".gz").rsplit(".", 1)[0] or path.name
    meta = {"interactions": len(exchanges), "hosts": sorted({urlsplit(x.url).hostname or ""
                                                            for x in exchanges})}  # fmt: skip
    units: list[Unit] = []
    pending: dict[str, _Pending] = {}
    last_ts: int | None = None
    last_error: str | None = None
    for index, (exchange, t) in enumerate(zip(exchanges, _clock(exchanges), strict=True)):
        units.extend(_answered(run_id, name, exchange, pending, last_ts, t))
        unit, answer = _interaction(run_id, name, index, exchange, t)
        units.append(unit)
        if answer is not None:
            last_error = answer.error
            pending.update({str(c["id"]): _Pending(c, index) for c in answer.calls if c["id"]})
        last_ts = t + 2 * _US
    units[-1] = units[-1]._replace(root=True, error=last_error)
    for unit in units:
        yield unit._replace(source="vcr", meta=meta)


# -- the cassette ------------------------------------------------------------------------------
def _load(path: Path) -> list[_Exchange]:
    from vcr.serialize import deserialize
    from vcr.serializers import jsonserializer, yamlserializer

    try:
        with open_text(path) as fh:
            text = fh.read()
        serializer = jsonserializer if text.lstrip().startswith("{") else yamlserializer
        requests, responses = deserialize(text, serializer)
        exchanges = [_exchange(q, r) for q, r in zip(requests, responses, strict=True)]
    except Exception as exc:  # YAML, JSON, shape: any failure means not a cassette
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ImportFormatError(f"{path}: not {_WHAT} ({line})") from None
    if not exchanges:
        raise ImportFormatError(f"{path}: not {_WHAT}: expected at least one interaction")
    return exchanges


def _exchange(request: Any, response: dict[str, Any]) -> _Exchange:
    status = as_dict(response.get("status"))
    listed = as_dict(response.get("headers")).items()
    got_headers = [(str(k).lower(), str(v)) for k, values in listed
                   for v in (values if isinstance(values, list) else [values])]  # fmt: skip
    raw = _bytes(as_dict(response.get("body")).get("string"))
    encoding = next((v for k, v in got_headers if k == "content-encoding"), "")
    body, decoded = _decoded(raw, encoding)
    if decoded:
        got_headers = [(k, v) for k, v in got_headers
                       if k not in ("content-encoding", "content-length")]  # fmt: skip
    sent_headers = [(str(k).lower(), str(v)) for k, v in dict(request.headers).items()]
    return _Exchange(str(request.method).upper(), str(request.uri), sent_headers,
                     _bytes(request.body), int(status.get("code") or 0),
                     str(status.get("message") or ""), got_headers, body)  # fmt: skip


def _bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return b"" if body is None else str(body).encode()


def _clock(exchanges: list[_Exchange]) -> list[int]:
    """Each interaction's time (ns): its Date, at least 1 ms after the one before."""
    dates = [_date(x.got_headers) for x in exchanges]
    if not any(dates):
        return [FIXED_EPOCH_NS + i * 1000 * MS for i in range(len(exchanges))]
    times: list[int] = []
    first = next(d for d in dates if d)
    for date in dates:
        t = date or (times[-1] + MS if times else first)
        times.append(max(t, times[-1] + MS) if times else t)
    return times


def _date(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name == "date":
            try:
                return int(parsedate_to_datetime(value).timestamp()) * 1_000_000_000
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    return None


# -- one interaction ---------------------------------------------------------------------------
def _interaction(
    run_id: str, name: str, index: int, x: _Exchange, t: int
) -> tuple[Unit, _Answer | None]:
    http = _http(x, t + _US)
    sent = _json(x.sent)
    api = _api(x.url, sent)
    if api is None or not isinstance(sent, dict):
        return Unit(run_id, t, t + _US, (http,), name), None
    answer = _answer(api, sent, x)
    model = answer.model or (str(sent["model"]) if sent.get("model") else None)
    call_id = f"vcr_interaction_{index + 1}"
    prompt = {"messages": _prompt_messages(sent)}
    prompt |= {k: sent[k] for k in ("system", "instructions", "tools") if sent.get(k) is not None}
    asked = {k: v for k, v in sent.items() if k not in _PROMPT_KEYS}
    extra = {"api": api, "http_status": x.status, **answer.extra}
    if answer.calls:
        extra["tool_calls"] = answer.calls
    ok = answer.error is None
    drafts = (Draft(t, 0, EventKind.PROMPT, model, call_id, canonical_json(prompt),
                    attrs=canonical_json(asked) if asked else None),
              http,
              Draft(t + 2 * _US, 1, EventKind.MODEL_OUTPUT, model, call_id, None,
                    canonical_json({"messages": answer.messages}),
                    EventStatus.OK if ok else EventStatus.ERROR, answer.error,
                    answer.tokens_in, answer.tokens_out, None, None, canonical_json(extra),
                    model))  # fmt: skip
    return Unit(run_id, t, t + 2 * _US, drafts, name), answer


def _http(x: _Exchange, t: int) -> Draft:
    """The interaction as ``tracekit.http`` records an exchange."""
    parts = urlsplit(x.url)
    port = f":{parts.port}" if parts.port else ""
    request = {"method": x.method, "url": scrub_url(x.url),
               "headers": scrub_headers(x.sent_headers), **_body_doc(x.sent)}  # fmt: skip
    response = {"status": x.status, "reason": x.reason, "headers": scrub_headers(x.got_headers),
                **_body_doc(x.got)}  # fmt: skip
    if _is_stream(x):
        response["streamed"] = True
    status = EventStatus.ERROR if x.status >= 400 else EventStatus.OK
    return Draft(t, 1, EventKind.HTTP, f"{x.method} {parts.hostname or ''}{port}{parts.path}",
                 None, canonical_json(request), canonical_json(response), status)  # fmt: skip


def _body_doc(data: bytes) -> dict[str, str]:
    if not data:
        return {}
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _is_stream(x: _Exchange) -> bool:
    kind = next((v for k, v in x.got_headers if k == "content-type"), "")
    return "text/event-stream" in kind or x.got.lstrip()[:6] in (b"event:", b"data: ", b"data:{")


def _json(data: bytes) -> Any:
    if data[:2] == b"\x1f\x8b":
        try:
            data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
        except zlib.error:
            return None
    try:
        return json.loads(data)
    except ValueError:  # UnicodeDecodeError is one
        return None


def _api(url: str, sent: Any) -> str | None:
    """Which model API a request calls (None: not a model call)."""
    if not isinstance(sent, dict):
        return None
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "openai.chat"
    if path.endswith("/responses"):
        return "openai.responses"
    if path.endswith("/messages") and "messages" in sent:
        return "anthropic.messages"
    return None


def _prompt_messages(sent: dict[str, Any]) -> list[Any]:
    given = sent.get("messages", sent.get("input"))
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return list(given) if isinstance(given, list) else []


def _answer(api: str, sent: dict[str, Any], x: _Exchange) -> _Answer:
    if not 200 <= x.status < 300:
        text = x.got.decode("utf-8", "replace").strip() or x.reason or "no body"
        body = _json(x.got)
        extra = {"error_body": body} if body is not None else {}
        error = f"HTTP {x.status}: {text[:_ERROR_TEXT]}"
        return _Answer([], [], None, None, None, extra, error)
    streamed = _is_stream(x)
    if streamed:
        events = _sse(x.got.decode("utf-8", "replace"))
        got = {"openai.chat": _chat_stream, "openai.responses": _responses_stream,
               "anthropic.messages": _anthropic_stream}[api](events)  # fmt: skip
    else:
        got = as_dict(_json(x.got))
    read_as = {"openai.chat": _chat, "openai.responses": _responses,
               "anthropic.messages": _anthropic}[api]  # fmt: skip
    answer = read_as(got)
    return answer._replace(extra={**answer.extra, "stream": streamed})


# -- OpenAI Chat Completions ---------------------------------------------------------------------
def _chat(got: dict[str, Any]) -> _Answer:
    choices = [as_dict(c) for c in got.get("choices") or ()]
    messages = [as_dict(c.get("message")) for c in choices]
    calls = [_openai_call(c) for m in messages for c in m.get("tool_calls") or ()]
    usage = as_dict(got.get("usage"))
    extra = {k: got[k] for k in ("id", "system_fingerprint", "service_tier", "created")
             if got.get(k) is not None}  # fmt: skip
    extra["finish_reasons"] = [c.get("finish_reason") for c in choices]
    if usage:
        extra["usage"] = usage
    return _Answer(messages, calls, _int(usage.get("prompt_tokens")),
                   _int(usage.get("completion_tokens")), _str(got.get("model")), extra)  # fmt: skip


def _openai_call(call: Any) -> dict[str, Any]:
    call = as_dict(call)
    function = as_dict(call.get("function"))
    arguments = function.get("arguments")
    text = arguments if isinstance(arguments, str) else canonical_json(arguments or {})
    return {"id": call.get("id"), "name": function.get("name"), "arguments": text}


def _chat_stream(events: list[tuple[str | None, Any]]) -> dict[str, Any]:
    """Chat completion chunks as the completion they add up to."""
    got: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    for _, chunk in events:
        chunk = as_dict(chunk)
        for key in ("id", "model", "created", "system_fingerprint", "service_tier", "usage"):
            if chunk.get(key) is not None:
                got[key] = chunk[key]
        for choice in chunk.get("choices") or ():
            choice = as_dict(choice)
            into = choices.setdefault(int(choice.get("index") or 0), {"message": {}})
            _chat_delta(into["message"], as_dict(choice.get("delta")))
            if choice.get("finish_reason") is not None:
                into["finish_reason"] = choice["finish_reason"]
    got["choices"] = [{"index": i, **c, "message": _chat_message(c["message"])}
                      for i, c in sorted(choices.items())]  # fmt: skip
    return got


def _chat_delta(message: dict[str, Any], delta: dict[str, Any]) -> None:
    for key in ("content", "refusal", "reasoning_content"):
        if isinstance(delta.get(key), str):
            message[key] = message.get(key, "") + delta[key]
    if delta.get("role"):
        message["role"] = delta["role"]
    calls = message.setdefault("tool_calls", {})
    for call in delta.get("tool_calls") or ():
        call = as_dict(call)
        into = calls.setdefault(int(call.get("index") or 0), {"type": "function", "function": {}})
        if call.get("id"):
            into["id"] = call["id"]
        function = as_dict(call.get("function"))
        if function.get("name"):
            into["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            into["function"]["arguments"] = into["function"].get("arguments", "") + function[
                "arguments"]  # fmt: skip


def _chat_message(assembled: dict[str, Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": None} | assembled
    calls = message.pop("tool_calls", {})
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


# -- OpenAI Responses ----------------------------------------------------------------------------
def _responses(got: dict[str, Any]) -> _Answer:
    items = [as_dict(i) for i in got.get("output") or ()]
    text = "".join(str(part.get("text") or "") for item in items if item.get("type") == "message"
                   for part in item.get("content") or () if isinstance(part, dict))  # fmt: skip
    calls = [{"id": i.get("call_id"), "name": i.get("name"),
              "arguments": i.get("arguments") if isinstance(i.get("arguments"), str)
              else canonical_json(i.get("arguments") or {})}
             for i in items if i.get("type") == "function_call"]  # fmt: skip
    usage = as_dict(got.get("usage"))
    extra = {k: got[k] for k in ("id", "status", "created_at", "service_tier",
                                 "incomplete_details", "previous_response_id")
             if got.get(k) is not None}  # fmt: skip
    if usage:
        extra["usage"] = usage
    error = None
    if got.get("status") == "failed" or got.get("error"):
        failure = as_dict(got.get("error"))
        error = f"{failure.get('code') or 'failed'}: {failure.get('message') or ''}".strip()
    message = {"role": "assistant", "content": text, "output": items}
    tokens = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
    return _Answer([message], calls, *tokens, _str(got.get("model")), extra, error)


def _responses_stream(events: list[tuple[str | None, Any]]) -> dict[str, Any]:
    """Responses stream events as the response they add up to: the terminal event's, else
    the created one's with the items and deltas streamed."""
    got: dict[str, Any] = {}
    items: dict[int, dict[str, Any]] = {}
    for name, event in events:
        event = as_dict(event)
        kind = str(event.get("type") or name or "")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            final = as_dict(event.get("response"))
            if final.get("output") or not items:
                return final
            return final | {"output": [items[i] for i in sorted(items)]}
        if isinstance(event.get("response"), dict):
            got = event["response"]
        elif kind in ("response.output_item.added", "response.output_item.done"):
            items[int(event.get("output_index") or 0)] = as_dict(event.get("item"))
        elif kind == "response.output_text.delta":
            _response_text(items, event)
        elif kind == "response.function_call_arguments.delta":
            item = items.setdefault(int(event.get("output_index") or 0), {})
            item["arguments"] = str(item.get("arguments") or "") + str(event.get("delta") or "")
    return got | {"output": [items[i] for i in sorted(items)]}


def _response_text(items: dict[int, dict[str, Any]], event: dict[str, Any]) -> None:
    item = items.setdefault(int(event.get("output_index") or 0), {"type": "message"})
    parts = item.setdefault("content", [])
    at = int(event.get("content_index") or 0)
    while len(parts) <= at:
        parts.append({"type": "output_text", "text": ""})
    parts[at]["text"] = str(parts[at].get("text") or "") + str(event.get("delta") or "")


# -- Anthropic Messages --------------------------------------------------------------------------
def _anthropic(got: dict[str, Any]) -> _Answer:
    blocks = [as_dict(b) for b in got.get("content") or ()]
    calls = [{"id": b.get("id"), "name": b.get("name"),
              "arguments": canonical_json(b.get("input") or {})}
             for b in blocks if b.get("type") in ("tool_use", "server_tool_use")]  # fmt: skip
    usage = as_dict(got.get("usage"))
    extra = {k: got[k] for k in ("id", "stop_reason", "stop_sequence") if got.get(k) is not None}
    if usage:
        extra["usage"] = usage
    error = None
    if got.get("type") == "error":
        failure = as_dict(got.get("error"))
        error = f"{failure.get('type') or 'error'}: {failure.get('message') or ''}"
    message = {"role": str(got.get("role") or "assistant"), "content": blocks}
    tokens = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
    return _Answer([message], calls, *tokens, _str(got.get("model")), extra, error)


def _anthropic_stream(events: list[tuple[str | None, Any]]) -> dict[str, Any]:
    """Raw message stream events as the message they add up to."""
    got: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for name, event in events:
        event = as_dict(event)
        kind = str(event.get("type") or name or "")
        if kind == "message_start":
            got = dict(as_dict(event.get("message")))
        elif kind == "content_block_start":
            blocks[int(event.get("index") or 0)] = dict(as_dict(event.get("content_block")))
        elif kind == "content_block_delta":
            _anthropic_delta(blocks, partial, event)
        elif kind == "message_delta":
            got |= {k: v for k, v in as_dict(event.get("delta")).items() if v is not None}
            usage = {k: v for k, v in as_dict(event.get("usage")).items() if v is not None}
            got["usage"] = as_dict(got.get("usage")) | usage
        elif kind == "error":
            got |= {"type": "error", "error": event.get("error")}
    for index, text in partial.items():
        block = blocks.setdefault(index, {})
        block["input"] = parsed(text) if text.strip() else {}
    return got | {"content": [blocks[i] for i in sorted(blocks)]}


def _anthropic_delta(
    blocks: dict[int, dict[str, Any]], partial: dict[int, str], event: dict[str, Any]
) -> None:
    index = int(event.get("index") or 0)
    block = blocks.setdefault(index, {})
    delta = as_dict(event.get("delta"))
    kind = delta.get("type")
    if kind == "input_json_delta":
        partial[index] = partial.get(index, "") + str(delta.get("partial_json") or "")
        return
    for field, key in (("text_delta", "text"), ("thinking_delta", "thinking"),
                       ("signature_delta", "signature"), ("citations_delta", None)):  # fmt: skip
        if kind == field and key:
            block[key] = str(block.get(key) or "") + str(delta.get(key) or "")
        elif kind == field:
            block.setdefault("citations", []).append(delta.get("citation"))


def _sse(text: str) -> list[tuple[str | None, Any]]:
    """Server-sent events: (event name, its data as JSON) each; ``[DONE]`` and non-JSON data
    left out."""
    found: list[tuple[str | None, Any]] = []
    for block in re.split(r"\r?\n\r?\n", text):
        name, data = None, []
        for line in block.splitlines():
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        joined = "\n".join(data).strip()
        if joined and joined != "[DONE]":
            try:
                found.append((name, json.loads(joined)))
            except ValueError:
                continue
    return found


# -- tool results the next request carries ---------------------------------------------------------
def _answered(
    run_id: str, name: str, x: _Exchange, pending: dict[str, _Pending], after: int | None, t: int
) -> Iterator[Unit]:
    """A unit per pending declared call whose result this request carries, in the time between
    the previous interaction (``after``) and this one."""
    if not pending or after is None:
        return
    results = [(i, r) for i, r in _results(_json(x.sent)) if i in pending]
    if not results:
        return
    slot = max((t - after) // (len(results) + 1), _US)
    for n, (call_id, (output, failed)) in enumerate(results):
        call = pending.pop(call_id).call
        start = after + slot * n + slot // 4
        end = after + slot * n + 3 * slot // 4
        arguments = parsed(call["arguments"])
        args = arguments if isinstance(arguments, dict) else {"input": arguments}
        tool = str(call["name"] or "tool")
        text = canonical_json(output)
        drafts = (Draft(start, 0, EventKind.TOOL_CALL, tool, call_id, canonical_json(args), None,
                        EventStatus.STARTED),
                  Draft(end, 1, EventKind.TOOL_RESULT, tool, call_id, None, text,
                        EventStatus.ERROR if failed else EventStatus.OK,
                        text if failed else None, latency_ms=(end - start) / MS))  # fmt: skip
        yield Unit(run_id, start, end, drafts, name)


def _results(sent: Any) -> Iterator[tuple[str, tuple[Any, bool]]]:
    """The tool results a request carries: (call id, (result, failed?))."""
    sent = as_dict(sent)
    given = sent.get("messages", sent.get("input"))
    for item in given if isinstance(given, list) else ():
        item = as_dict(item)
        if item.get("role") == "tool" and item.get("tool_call_id"):
            yield str(item["tool_call_id"]), (item.get("content"), False)
        elif item.get("type") == "function_call_output" and item.get("call_id"):
            yield str(item["call_id"]), (item.get("output"), False)
        elif isinstance(item.get("content"), list):
            for block in item["content"]:
                block = as_dict(block)
                if block.get("type") == "tool_result" and block.get("tool_use_id"):
                    result = (block.get("content"), bool(block.get("is_error")))
                    yield str(block["tool_use_id"]), result


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return str(value) if value else None
