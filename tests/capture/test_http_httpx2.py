"""Recording HTTP through httpx2, the fork of httpx under today's openai and anthropic SDKs.

The same ``tracekit.http`` transports speak whichever library hands them the request: inside
``httpx2.Client``, the SDKs' ``DefaultHttpxClient`` and the real ``openai`` and ``anthropic``
clients, every exchange is recorded, streamed bodies as read, and agent replay serves them from
the bundle's cassette with the server gone. The server is test_http.py's loopback server, with
an OpenAI chat completion and an Anthropic message added.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from test_http import (
    GZ_DOC,
    SSE_EVENTS,
    SSE_TEXT,
    TEXT,
    Server,
    _Handler,
    all_file_bytes,
    http_events,
    record_and_export,
    sse_data,
)

import tracekit
import tracekit.http

API_KEY = "sk-Rt58-openai-2c7e91d4"
ANTHROPIC_KEY = "Ak31-anthropic-0f9b2e6c"
COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "refund issued"}}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}
MESSAGE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
    "content": [{"type": "text", "text": "order found"}], "stop_reason": "end_turn",
    "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 2},
}


class _SDKHandler(_Handler):
    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        if path.endswith("/chat/completions") or path.endswith("/messages"):
            self.server.seen.append(("POST", self.path))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = COMPLETION if path.endswith("/chat/completions") else MESSAGE
            self._send(200, json.dumps(body).encode(), "application/json")
        else:
            super().do_POST()


@pytest.fixture
def server() -> Iterator[Server]:
    import threading

    from test_http import _Server

    httpd = _Server(("127.0.0.1", 0), _SDKHandler)
    httpd.acks, httpd.missed_acks, httpd.seen = threading.Semaphore(0), 0, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    assert isinstance(httpd, ThreadingHTTPServer)
    running = Server(f"http://127.0.0.1:{httpd.server_address[1]}", httpd, thread)
    yield running
    running.stop()


def test_httpx2_exchanges_are_recorded_and_the_caller_gets_httpx2_responses(
        store: Path, server: Server) -> None:
    got: list[str] = []
    with tracekit.run(tenant="acme"), httpx2.Client(
            transport=tracekit.http.HTTPXTransport(), base_url=server.url, timeout=10) as client:
        echoed = client.post("/echo", json={"q": "hi"})
        zipped = client.get("/gzip")
        with client.stream("GET", "/sse", params={"ack": "1"}) as response:
            for line in response.iter_lines():
                got.append(line)
                if line.startswith("data:"):
                    server.ack()  # each event reached the caller before the next was sent
    assert isinstance(echoed, httpx2.Response) and echoed.json() == {"echo": {"q": "hi"}}
    assert zipped.json() == GZ_DOC
    assert sse_data(got) == SSE_EVENTS and server.missed_acks == 0
    post, gz, sse = (e["response"] for e in http_events(store))
    assert json.loads(post["text"]) == {"echo": {"q": "hi"}}
    assert json.loads(gz["text"]) == GZ_DOC and "content-encoding" not in gz["headers"]
    assert sse["text"] == SSE_TEXT and sse["streamed"] is True


def test_async_httpx2_exchanges_are_recorded(store: Path, server: Server) -> None:
    async def agent() -> tuple[Any, str]:
        with tracekit.run(tenant="acme"):
            async with httpx2.AsyncClient(transport=tracekit.http.AsyncHTTPXTransport(),
                                          base_url=server.url, timeout=10) as client:
                return (await client.post("/echo", json={"a": 1})).json(), (
                    await client.get("/text")).text

    assert asyncio.run(agent()) == ({"echo": {"a": 1}}, TEXT)
    assert [e["request"]["method"] for e in http_events(store)] == ["POST", "GET"]


def test_the_openai_and_anthropic_sdks_are_recorded_and_their_keys_never_reach_disk(
        store: Path, server: Server, tmp_path: Path) -> None:
    with tracekit.run(tenant="acme") as run:
        oa = openai.OpenAI(api_key=API_KEY, base_url=f"{server.url}/v1", http_client=(
            openai.DefaultHttpxClient(transport=tracekit.http.HTTPXTransport())))
        reply = oa.chat.completions.create(model="gpt-x",
                                           messages=[{"role": "user", "content": "refund?"}])
        an = anthropic.Anthropic(api_key=ANTHROPIC_KEY, base_url=server.url, http_client=(
            anthropic.DefaultHttpxClient(transport=tracekit.http.HTTPXTransport())))
        message = an.messages.create(model="claude-x", max_tokens=50,
                                     messages=[{"role": "user", "content": "order?"}])
    assert reply.choices[0].message.content == "refund issued"
    assert message.content[0].text == "order found"  # type: ignore[union-attr]
    chat, msg = http_events(store)
    assert chat["request"]["url"] == f"{server.url}/v1/chat/completions"
    assert json.loads(chat["request"]["text"])["messages"][0]["content"] == "refund?"
    assert json.loads(chat["response"]["text"]) == COMPLETION
    assert msg["request"]["url"] == f"{server.url}/v1/messages"
    assert json.loads(msg["response"]["text"]) == MESSAGE
    tracekit.flush()
    bundle = tracekit.export_incident([run.run_id], "sdks", tmp_path / "fixtures", store)
    for path, data in all_file_bytes(store, bundle).items():
        for secret in (API_KEY, ANTHROPIC_KEY):
            assert secret.encode() not in data, f"an SDK key is in {path}"


SDK_AGENT = """
import httpx2
import openai

import tracekit
import tracekit.http

RESULTS = []


@tracekit.entrypoint
def handle(base: str) -> None:
    with tracekit.run(tenant="acme"):
        client = openai.OpenAI(api_key="sk-live-in-the-agent", base_url=base + "/v1",
                               http_client=openai.DefaultHttpxClient(
                                   transport=tracekit.http.HTTPXTransport()))
        reply = client.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "refund?"}])
        with httpx2.Client(transport=tracekit.http.HTTPXTransport(), timeout=10) as http:
            with http.stream("GET", base + "/sse") as response:
                events = [line for line in response.iter_lines() if line.startswith("data:")]
    RESULTS.append([reply.choices[0].message.content, reply.usage.total_tokens, events])
"""


def test_agent_replay_serves_httpx2_and_the_openai_sdk_from_the_cassette(
        store: Path, server: Server, tmp_path: Path, make_agent: Any) -> None:
    agent = make_agent(SDK_AGENT)
    bundle = record_and_export(agent, store, server, tmp_path)  # the server is gone after
    [recorded] = agent.RESULTS
    assert recorded[:2] == ["refund issued", 10] and sse_data(recorded[2]) == SSE_EVENTS
    agent.RESULTS.clear()
    verdict = tracekit.replay(bundle, guard=tracekit.Guard(),
                              entrypoint=f"{agent.__name__}:handle")
    assert [recorded] == agent.RESULTS and verdict.mode == "agent"
