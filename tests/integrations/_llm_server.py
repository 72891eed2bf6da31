"""A loopback stand-in for the OpenAI and Anthropic APIs, answering as they document.

``/v1/chat/completions``, ``/v1/responses`` and ``/v1/messages``, plain JSON or server-sent
events when the request asks to stream. In ``runaway`` mode the model asks for the same refund
again and again; in ``healthy`` mode it asks once, then answers once it has the tool's result.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CALL = {"name": "refund", "arguments": '{"order_id":"42","amount":30}'}
USAGE_IN, USAGE_OUT = 120, 30


class LLMServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "runaway"
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LLMServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        path = self.path.split("?")[0]
        self.server.requests.append((path, body))
        answer_tool = self.server.mode == "runaway" or not _has_tool_result(path, body)
        kind = path.rsplit("/", 1)[-1]
        if body.get("stream"):
            self._sse(STREAMS[kind](answer_tool, body))
        else:
            self._json(ANSWERS[kind](answer_tool, body))

    def _json(self, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, dict[str, Any] | str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            chunk = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
            raw = chunk.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _has_tool_result(path: str, body: dict[str, Any]) -> bool:
    if path.endswith("/responses"):
        items = body.get("input") if isinstance(body.get("input"), list) else []
        return any(i.get("type") == "function_call_output" for i in items)
    for message in body.get("messages", []):
        if message.get("role") == "tool":
            return True
        content = message.get("content")
        if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
            return True
    return False


# -- chat completions -------------------------------------------------------------------------
def _structured(body: dict[str, Any]) -> bool:
    """Asked for structured output (``parse``): the answer is the refund as JSON."""
    chat = (body.get("response_format") or {}).get("type") == "json_schema"
    anthropic = ((body.get("output_config") or {}).get("format") or {}).get("type")
    responses = ((body.get("text") or {}).get("format") or {}).get("type")
    return chat or "json_schema" in (anthropic, responses)


def _chat(tool: bool, body: dict[str, Any]) -> dict[str, Any]:
    tool = tool and not _structured(body)
    text = CALL["arguments"] if _structured(body) else "refunded"
    message: dict[str, Any] = {"role": "assistant", "content": None if tool else text}
    if tool:
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": CALL}]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if tool else "stop"}],
            "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                      "total_tokens": USAGE_IN + USAGE_OUT}}


def _chat_stream(tool: bool, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": body["model"]}
    if tool:
        deltas = [{"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "refund", "arguments": ""}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": CALL["arguments"][:10]}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": CALL["arguments"][10:]}}]}]
    else:
        deltas = [{"role": "assistant", "content": "refun"}, {"content": "ded"}]
    events: list[tuple[str | None, Any]] = [
        (None, {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
        for d in deltas]
    events.append((None, {**base, "choices": [
        {"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool else "stop"}]}))
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append((None, {**base, "choices": [], "usage": {
            "prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
            "total_tokens": USAGE_IN + USAGE_OUT}}))
    events.append((None, "[DONE]"))
    return events


# -- the Responses API ------------------------------------------------------------------------
def _response(tool: bool, body: dict[str, Any]) -> dict[str, Any]:
    tool = tool and not _structured(body)
    text = CALL["arguments"] if _structured(body) else "refunded"
    if tool:
        output: list[dict[str, Any]] = [{"type": "function_call", "id": "fc_1",
                                         "call_id": "call_1", "status": "completed", **CALL}]
    else:
        output = [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    return {"id": "resp_1", "object": "response", "created_at": 1, "model": body["model"],
            "status": "completed", "output": output, "parallel_tool_calls": True,
            "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT,
                      "total_tokens": USAGE_IN + USAGE_OUT,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


def _response_stream(tool: bool, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    done = _response(tool, body)
    created = {**done, "status": "in_progress", "output": [], "usage": None}
    return [("response.created", {"type": "response.created", "sequence_number": 0,
                                   "response": created}),
            ("response.completed", {"type": "response.completed", "sequence_number": 1,
                                     "response": done})]


# -- Anthropic Messages -----------------------------------------------------------------------
def _message(tool: bool, body: dict[str, Any]) -> dict[str, Any]:
    tool = tool and not _structured(body)
    text = CALL["arguments"] if _structured(body) else "refunded"
    content: list[dict[str, Any]] = (
        [{"type": "tool_use", "id": "toolu_1", "name": "refund",
          "input": json.loads(CALL["arguments"])}]
        if tool else [{"type": "text", "text": text}])
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": "tool_use" if tool else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT}}


def _message_stream(tool: bool, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    start = {**_message(tool, body), "content": [], "stop_reason": None,
             "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}
    tool = tool and not _structured(body)
    text = CALL["arguments"] if _structured(body) else "refunded"
    if tool:
        block: dict[str, Any] = {"type": "tool_use", "id": "toolu_1", "name": "refund",
                                 "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": CALL["arguments"][:10]},
                  {"type": "input_json_delta", "partial_json": CALL["arguments"][10:]}]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": part} for part in (text[:5], text[5:])]
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": block})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
               for d in deltas]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": "tool_use" if tool else "end_turn",
                                            "stop_sequence": None},
                                  "usage": {"output_tokens": USAGE_OUT}}),
               ("message_stop", {"type": "message_stop"})]
    return events


ANSWERS = {"completions": _chat, "responses": _response, "messages": _message}
STREAMS = {"completions": _chat_stream, "responses": _response_stream,
           "messages": _message_stream}
