"""Recording HTTP (tracekit.http): httpx and requests exchanges as ``http`` events, the bundle's
vcrpy cassette, and agent replay serving it.

Every exchange goes to a real server on 127.0.0.1 (an ephemeral port, a thread of this process):
a JSON echo, a gzip-compressed JSON answer, server-sent events flushed one at a time, plain text
and a 500. Nothing leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyarrow.parquet as pq
import pytest
import requests
import yaml

import tracekit
import tracekit.http
from tracekit.testing import Recording

GZ_DOC = {"compressed": True, "items": ["a", "b", "c"], "text": "gzip " * 40}
TEXT = "plain text answer: café ✓\nsecond line\n"
SSE_EVENTS = [{"n": i, "delta": f"token-{i}"} for i in range(4)]
SSE_TEXT = "".join(f"data: {json.dumps(e)}\n\n" for e in SSE_EVENTS)
COMPACT = b'{"zeta":1,"alpha":[1,2],"name":"caf\\u00e9"}'
ACK_TIMEOUT_S = 3.0

# credentials the agent sends (and one the server sets): none may reach a file; they match none
# of the redactor's value patterns, so only tracekit.http's own scrubbing can keep them out
AUTH = "Zx81-authz-4c1e9b7f"
API_KEY = "Qv27-apikey-91d0a3ce"
COOKIE = "Lm55-cookie-e2f84a10"
QUERY_KEY = "Pk13-querykey-7be3c6d9"
QUERY_TOKEN = "Wt64-querytoken-0a9f2e81"
SERVER_COOKIE = "Sc90-setcookie-5d7e1f23"
SECRETS = (AUTH, API_KEY, COOKIE, QUERY_KEY, QUERY_TOKEN, SERVER_COOKIE)


# -- the local server ----------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    acks: threading.Semaphore
    missed_acks: int
    seen: list[tuple[str, str]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # an idle keep-alive connection is dropped, so no thread lingers
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str, *extra: tuple[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.seen.append(("GET", self.path))
        if parts.path == "/text":
            self._send(200, TEXT.encode(), "text/plain; charset=utf-8",
                       ("Set-Cookie", f"sid={SERVER_COOKIE}; Path=/"))
        elif parts.path == "/gzip":
            self._send(200, gzip.compress(json.dumps(GZ_DOC).encode()), "application/json",
                       ("Content-Encoding", "gzip"))
        elif parts.path == "/compact":  # JSON as many APIs send it: compact, keys unsorted
            self._send(200, COMPACT, "application/json")
        elif parts.path == "/boom":
            self._send(500, json.dumps({"error": "boom"}).encode(), "application/json")
        elif parts.path == "/sse":
            self._sse("ack" in parse_qs(parts.query))
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        self.server.seen.append(("POST", self.path))
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(200, json.dumps({"echo": json.loads(data or b"null")}).encode(),
                   "application/json")

    def _sse(self, ack: bool) -> None:
        """Each event is its own chunk, flushed; with ``ack`` the next one is only sent once the
        test says it got this one (a client that buffers would make the server wait in vain)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in SSE_EVENTS:
            chunk = f"data: {json.dumps(event)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            if ack and not self.server.acks.acquire(timeout=ACK_TIMEOUT_S):
                self.server.missed_acks += 1
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@dataclass
class Server:
    url: str
    httpd: _Server
    thread: threading.Thread
    stopped: bool = False

    def ack(self) -> None:
        self.httpd.acks.release()

    @property
    def missed_acks(self) -> int:
        return self.httpd.missed_acks

    @property
    def seen(self) -> list[tuple[str, str]]:
        return self.httpd.seen

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.acks, httpd.missed_acks, httpd.seen = threading.Semaphore(0), 0, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    running = Server(f"http://127.0.0.1:{httpd.server_address[1]}", httpd, thread)
    yield running
    running.stop()


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- helpers -------------------------------------------------------------------------------------
def http_events(store: Path) -> list[dict[str, Any]]:
    rows = Recording(store).rows("SELECT * FROM events WHERE kind = 'http' ORDER BY seq")
    for row in rows:
        row["request"] = json.loads(row["args"])
        row["response"] = None if row["output"] is None else json.loads(row["output"])
    return rows


def root_runs(store: Path) -> list[str]:
    rows = Recording(store).rows("SELECT run_id FROM runs WHERE parent_run_id IS NULL "
                                 "ORDER BY run_id")
    return [r["run_id"] for r in rows]


def sse_data(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]


def all_file_bytes(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


# -- 1. httpx, sync ------------------------------------------------------------------------------
def test_httpx_exchanges_are_recorded_and_the_caller_sees_them_unchanged(
        store: Path, server: Server) -> None:
    with tracekit.run(tenant="acme"), httpx.Client(
            transport=tracekit.http.HTTPXTransport(), base_url=server.url) as client:
        echoed = client.post("/echo", json={"question": "hi", "n": [1, 2]})
        zipped = client.get("/gzip")
        text = client.get("/text")
    assert echoed.status_code == 200 and echoed.json() == {"echo": {"question": "hi",
                                                                    "n": [1, 2]}}
    assert zipped.json() == GZ_DOC and zipped.headers["content-encoding"] == "gzip"
    assert text.text == TEXT and text.headers["content-type"].startswith("text/plain")
    with httpx.Client(base_url=server.url) as bare_client:  # the same, without tracekit
        for seen, path in ((zipped, "/gzip"), (text, "/text")):
            bare = bare_client.get(path)
            assert (seen.status_code, seen.content, seen.encoding) == (
                bare.status_code, bare.content, bare.encoding)
            assert {k: v for k, v in seen.headers.items() if k != "date"} == {
                k: v for k, v in bare.headers.items() if k != "date"}

    events = http_events(store)
    assert [(e["request"]["method"], e["request"]["url"]) for e in events] == [
        ("POST", f"{server.url}/echo"), ("GET", f"{server.url}/gzip"),
        ("GET", f"{server.url}/text")]
    host = urlsplit(server.url).netloc
    assert [e["name"] for e in events] == [f"POST {host}/echo", f"GET {host}/gzip",
                                           f"GET {host}/text"]
    assert all(e["status"] == "ok" and e["error"] is None for e in events)
    assert all(e["latency_ms"] is not None and e["latency_ms"] >= 0 for e in events)
    post, gz, plain = (e["response"] for e in events)
    assert json.loads(events[0]["request"]["text"]) == {"question": "hi", "n": [1, 2]}
    assert events[0]["request"]["headers"]["content-type"] == "application/json"
    assert post["status"] == 200
    assert json.loads(post["text"]) == {"echo": {"question": "hi", "n": [1, 2]}}
    assert gz["status"] == 200
    assert json.loads(gz["text"]) == GZ_DOC  # decoded, not base64 of gzip bytes
    assert "content-encoding" not in gz["headers"]
    assert plain["text"] == TEXT and plain["reason"] == "OK"
    assert not any(r.get("streamed") for r in (post, gz, plain))


# -- 2. server-sent events -----------------------------------------------------------------------
def test_httpx_sse_reaches_the_caller_event_by_event_and_is_recorded_whole(
        store: Path, server: Server) -> None:
    got: list[str] = []
    with tracekit.run(tenant="acme"), httpx.Client(
            transport=tracekit.http.HTTPXTransport(), timeout=10) as client, \
            client.stream("GET", f"{server.url}/sse", params={"ack": "1"}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            got.append(line)
            if line.startswith("data:"):
                # the event arrived before the server sent the next one: it was not held back
                assert sse_data([line]) == [SSE_EVENTS[len(sse_data(got)) - 1]]
                server.ack()
    assert server.missed_acks == 0
    assert sse_data(got) == SSE_EVENTS
    [event] = http_events(store)
    assert event["status"] == "ok"
    assert event["response"]["streamed"] is True
    assert event["response"]["text"] == SSE_TEXT
    assert event["response"]["headers"]["content-type"] == "text/event-stream"


def test_requests_sse_reaches_the_caller_event_by_event_and_is_recorded_whole(
        store: Path, server: Server) -> None:
    got: list[str] = []
    with tracekit.run(tenant="acme"), tracekit.http.instrument_requests(
            requests.Session()) as session:
        response = session.get(f"{server.url}/sse?ack=1", stream=True, timeout=10)
        for raw in response.iter_lines():
            line = raw.decode()
            got.append(line)
            if line.startswith("data:"):
                assert sse_data([line]) == [SSE_EVENTS[len(sse_data(got)) - 1]]
                server.ack()
        response.close()
    assert server.missed_acks == 0
    assert sse_data(got) == SSE_EVENTS
    [event] = http_events(store)
    assert event["status"] == "ok" and event["request"]["url"] == f"{server.url}/sse?ack=1"
    assert event["response"]["streamed"] is True
    assert event["response"]["text"] == SSE_TEXT


# -- 3. httpx, async -----------------------------------------------------------------------------
def test_async_httpx_exchanges_are_recorded(store: Path, server: Server) -> None:
    async def agent() -> tuple[Any, Any, str, list[str]]:
        with tracekit.run(tenant="acme"):
            async with httpx.AsyncClient(transport=tracekit.http.AsyncHTTPXTransport(),
                                         base_url=server.url, timeout=10) as client:
                echoed = (await client.post("/echo", json={"async": True})).json()
                zipped = (await client.get("/gzip")).json()
                text = (await client.get("/text")).text
                lines: list[str] = []
                async with client.stream("GET", "/sse", params={"ack": "1"}) as response:
                    async for line in response.aiter_lines():
                        lines.append(line)
                        if line.startswith("data:"):
                            server.ack()
        return echoed, zipped, text, lines

    echoed, zipped, text, lines = asyncio.run(agent())
    assert echoed == {"echo": {"async": True}} and zipped == GZ_DOC and text == TEXT
    assert sse_data(lines) == SSE_EVENTS and server.missed_acks == 0
    events = http_events(store)
    assert [e["request"]["method"] for e in events] == ["POST", "GET", "GET", "GET"]
    post, gz, plain, sse = (e["response"] for e in events)
    assert json.loads(events[0]["request"]["text"]) == {"async": True}
    assert json.loads(post["text"]) == {"echo": {"async": True}}
    assert json.loads(gz["text"]) == GZ_DOC and "content-encoding" not in gz["headers"]
    assert plain["text"] == TEXT
    assert sse["text"] == SSE_TEXT and sse["streamed"] is True
    assert {e["status"] for e in events} == {"ok"}


# -- 4. requests ---------------------------------------------------------------------------------
def test_requests_exchanges_are_recorded_with_bodies_decoded(store: Path, server: Server) -> None:
    with tracekit.run(tenant="acme"), tracekit.http.instrument_requests(
            requests.Session()) as session:
        echoed = session.post(f"{server.url}/echo", json={"via": "requests"}, timeout=10)
        zipped = session.get(f"{server.url}/gzip", timeout=10)
        text = session.get(f"{server.url}/text", timeout=10)
    assert echoed.json() == {"echo": {"via": "requests"}}
    assert zipped.json() == GZ_DOC and text.text == TEXT
    events = http_events(store)
    assert [(e["request"]["method"], e["request"]["url"]) for e in events] == [
        ("POST", f"{server.url}/echo"), ("GET", f"{server.url}/gzip"),
        ("GET", f"{server.url}/text")]
    post, gz, plain = (e["response"] for e in events)
    assert json.loads(events[0]["request"]["text"]) == {"via": "requests"}
    assert post["status"] == 200 and json.loads(post["text"]) == {"echo": {"via": "requests"}}
    assert json.loads(gz["text"]) == GZ_DOC and "content-encoding" not in gz["headers"]
    assert plain["text"] == TEXT
    assert not any(r.get("streamed") for r in (post, gz, plain))
    assert {e["status"] for e in events} == {"ok"}


# -- 5. secrets ----------------------------------------------------------------------------------
def test_credentials_never_reach_the_store_the_bundle_or_the_cassette(
        store: Path, server: Server, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {AUTH}", "x-api-key": API_KEY,
               "Cookie": f"pref={COOKIE}"}
    query = {"api_key": QUERY_KEY, "token": QUERY_TOKEN, "q": "visible-query-value"}
    with tracekit.run(tenant="acme"):
        with httpx.Client(transport=tracekit.http.HTTPXTransport(), headers=headers,
                          timeout=10) as client:
            assert client.get(f"{server.url}/text", params=query).text == TEXT
            with client.stream("GET", f"{server.url}/sse", params=query) as response:
                assert sse_data(list(response.iter_lines())) == SSE_EVENTS
        with tracekit.http.instrument_requests(requests.Session()) as session:
            session.headers.update(headers)
            assert session.get(f"{server.url}/text", params=query, timeout=10).text == TEXT
            assert session.post(f"{server.url}/echo", params=query, json={"x": 1},
                                timeout=10).json() == {"echo": {"x": 1}}
    # the server did get the credentials: they were sent, and only kept out of the record
    assert any(QUERY_KEY in path for _, path in server.seen)

    events = http_events(store)
    assert len(events) == 4
    for event in events:
        sent = event["request"]
        assert sent["headers"]["authorization"] == "[REDACTED]"
        assert sent["headers"]["x-api-key"] == "[REDACTED]"
        assert sent["headers"]["cookie"] == "[REDACTED]"
        assert parse_qs(urlsplit(sent["url"]).query) == {
            "api_key": ["[REDACTED]"], "token": ["[REDACTED]"], "q": ["visible-query-value"]}
    assert events[0]["response"]["headers"]["set-cookie"] == "[REDACTED]"

    bundle = tracekit.export_incident(root_runs(store), "secrets", tmp_path / "fixtures", store,
                                      jsonl=True)
    files = all_file_bytes(store, bundle)
    assert bundle / "cassette.yaml" in files and bundle / "events.jsonl" in files
    for path, data in files.items():
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} found in {path}"
    # the plain-text files do hold the exchanges (so the check above can see a leak) ...
    for name in ("cassette.yaml", "events.jsonl"):
        assert b"visible-query-value" in files[bundle / name]
        assert b"[REDACTED]" in files[bundle / name]
    # ... and so do the decoded tables of the store and the bundle
    decoded = [json.dumps(e, default=str) for e in Recording(store).events()]
    decoded += [json.dumps(e, default=str)
                for e in pq.read_table(bundle / "events.parquet").to_pylist()]
    text = "\n".join(decoded)
    assert "visible-query-value" in text
    for secret in SECRETS:
        assert secret not in text


# -- 6. outside a run ----------------------------------------------------------------------------
def test_outside_a_run_exchanges_pass_through_unrecorded(store: Path, server: Server) -> None:
    with httpx.Client(transport=tracekit.http.HTTPXTransport(), base_url=server.url) as client:
        assert client.post("/echo", json={"a": 1}).json() == {"echo": {"a": 1}}
        assert client.get("/gzip").json() == GZ_DOC
        with client.stream("GET", "/sse") as response:
            assert sse_data(list(response.iter_lines())) == SSE_EVENTS

    async def async_calls() -> Any:
        async with httpx.AsyncClient(transport=tracekit.http.AsyncHTTPXTransport(),
                                     base_url=server.url) as client:
            return (await client.get("/gzip")).json()

    assert asyncio.run(async_calls()) == GZ_DOC
    with tracekit.http.instrument_requests(requests.Session()) as session:
        assert session.get(f"{server.url}/text", timeout=10).text == TEXT
        assert session.get(f"{server.url}/gzip", timeout=10).json() == GZ_DOC
    with tracekit.run(tenant="acme") as run:  # a run, so the store is there to be queried
        run.progress("no http in here")
    assert len(server.seen) == 6
    assert Recording(store).count("SELECT count(*) FROM events") > 0
    assert Recording(store).count("SELECT count(*) FROM events WHERE kind = 'http'") == 0


# -- 7. failures ---------------------------------------------------------------------------------
def test_an_error_status_is_recorded_as_an_error(store: Path, server: Server) -> None:
    with tracekit.run(tenant="acme"):
        with httpx.Client(transport=tracekit.http.HTTPXTransport()) as client:
            boom = client.get(f"{server.url}/boom")
        with tracekit.http.instrument_requests(requests.Session()) as session:
            boom2 = session.get(f"{server.url}/boom", timeout=10)
    assert boom.status_code == 500 and boom.json() == {"error": "boom"}
    assert boom2.status_code == 500 and boom2.json() == {"error": "boom"}
    events = http_events(store)
    assert len(events) == 2
    for event in events:
        assert event["status"] == "error"
        assert event["response"]["status"] == 500
        assert json.loads(event["response"]["text"]) == {"error": "boom"}
        assert event["response"]["reason"] == "Internal Server Error"


def test_a_refused_connection_is_recorded_and_reraised_as_the_clients_own_error(
        store: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/nothing"

    async def async_call() -> None:
        async with httpx.AsyncClient(transport=tracekit.http.AsyncHTTPXTransport()) as client:
            await client.get(url)

    with tracekit.run(tenant="acme"):
        with pytest.raises(httpx.ConnectError), httpx.Client(
                transport=tracekit.http.HTTPXTransport()) as client:
            client.get(url)
        with pytest.raises(httpx.ConnectError):
            asyncio.run(async_call())
        with pytest.raises(requests.ConnectionError), tracekit.http.instrument_requests(
                requests.Session()) as session:
            session.get(url, timeout=10)
    events = http_events(store)
    assert [e["request"]["url"] for e in events] == [url] * 3
    assert [e["status"] for e in events] == ["error"] * 3
    assert [e["response"] for e in events] == [None] * 3
    assert events[0]["error"].startswith("ConnectError: ")
    assert events[1]["error"].startswith("ConnectError: ")
    assert events[2]["error"].startswith("ConnectionError: ")


# -- 8. export: the cassette -------------------------------------------------------------------
def test_export_writes_one_cassette_interaction_per_exchange(
        store: Path, server: Server, tmp_path: Path) -> None:
    with tracekit.run(tenant="acme"):
        with httpx.Client(transport=tracekit.http.HTTPXTransport(), base_url=server.url) as client:
            client.post("/echo", json={"k": "v"})
            client.get("/gzip")
            with client.stream("GET", "/sse") as response:
                response.read()
        with tracekit.http.instrument_requests(requests.Session()) as session:
            session.get(f"{server.url}/text", timeout=10)
            session.get(f"{server.url}/boom", timeout=10)
    with tracekit.run(tenant="acme") as quiet:
        quiet.progress("no http")
    runs = root_runs(store)
    bundle = tracekit.export_incident([r for r in runs if r != quiet.run_id], "with-http",
                                      tmp_path / "fixtures", store)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["http_exchanges"] == 5
    cassette = yaml.safe_load((bundle / "cassette.yaml").read_text())
    got = [(i["request"]["method"], i["request"]["uri"], i["response"]["status"]["code"])
           for i in cassette["interactions"]]
    assert got == [("POST", f"{server.url}/echo", 200), ("GET", f"{server.url}/gzip", 200),
                   ("GET", f"{server.url}/sse", 200), ("GET", f"{server.url}/text", 200),
                   ("GET", f"{server.url}/boom", 500)]
    bodies = [i["response"]["body"]["string"] for i in cassette["interactions"]]
    assert json.loads(bodies[0]) == {"echo": {"k": "v"}}
    assert json.loads(bodies[1]) == GZ_DOC
    assert bodies[2] == SSE_TEXT and bodies[3] == TEXT
    assert json.loads(bodies[4]) == {"error": "boom"}
    assert json.loads(cassette["interactions"][0]["request"]["body"]) == {"k": "v"}
    gz_headers = {k.lower() for k in cassette["interactions"][1]["response"]["headers"]}
    assert "content-encoding" not in gz_headers  # the body is stored decoded

    plain = tracekit.export_incident([quiet.run_id], "no-http", tmp_path / "fixtures", store)
    assert not (plain / "cassette.yaml").exists()
    assert json.loads((plain / "manifest.json").read_text())["http_exchanges"] == 0


# -- 9. agent replay -----------------------------------------------------------------------------
AGENT = """
import asyncio
import json

import httpx
import requests

import tracekit
import tracekit.http

KEY = "{key}"
EXTRA = []  # paths the agent also fetches (a replayed agent that wanders off the recording)
RESULTS = []


async def fetch_async(base):
    async with httpx.AsyncClient(transport=tracekit.http.AsyncHTTPXTransport(),
                                 base_url=base, timeout=10) as client:
        return (await client.post("/echo", json={{"async": True}})).json()


@tracekit.entrypoint
def handle(base: str, ticket: str) -> str:
    with tracekit.run(tenant="acme", ticket=ticket):
        with httpx.Client(transport=tracekit.http.HTTPXTransport(), base_url=base,
                          headers={{"Authorization": f"Bearer {{KEY}}"}}, timeout=10) as client:
            echo = client.post("/echo", json={{"ticket": ticket}}).json()
            zipped = client.get("/gzip").json()
            with client.stream("GET", "/sse", params={{"api_key": KEY}}) as response:
                events = [line for line in response.iter_lines() if line.startswith("data:")]
        echoed_async = asyncio.run(fetch_async(base))
        with tracekit.http.instrument_requests(requests.Session()) as session:
            text = session.get(f"{{base}}/text", headers={{"x-api-key": KEY}}, timeout=10).text
            streamed = session.get(f"{{base}}/sse", stream=True, timeout=10)
            lines = [raw.decode() for raw in streamed.iter_lines() if raw]
            boom = session.get(f"{{base}}/boom", timeout=10)
            extra = [session.get(f"{{base}}{{path}}", timeout=10).text for path in EXTRA]
    result = json.dumps([echo, zipped, events, echoed_async, text, lines, boom.status_code,
                         boom.json(), extra])
    RESULTS.append(result)
    return result
"""


@pytest.fixture
def agent(make_agent: Any) -> Any:
    return make_agent(AGENT.format(key=QUERY_KEY))


def record_and_export(agent: Any, store: Path, server: Server, tmp_path: Path,
                      **kwargs: Any) -> Path:
    """Run the agent against the server, shut the server down, export the bundle."""
    agent.handle(base=server.url, **kwargs)
    server.stop()  # from here on nothing listens: replay must not need the network
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/text")
    return tracekit.export_incident(root_runs(store), "agent-http", tmp_path / "fixtures", store)


def replay(bundle: Path, agent: Any) -> tracekit.Verdict:
    return tracekit.replay(bundle, guard=tracekit.Guard(), entrypoint=f"{agent.__name__}:handle")


def test_agent_replay_serves_the_recorded_http(store: Path, server: Server, tmp_path: Path,
                                               agent: Any) -> None:
    bundle = record_and_export(agent, store, server, tmp_path, ticket="T-7")
    [recorded] = agent.RESULTS
    echo, zipped, events, echoed_async, text, lines, status, boom, extra = json.loads(recorded)
    assert echo == {"echo": {"ticket": "T-7"}} and zipped == GZ_DOC and text == TEXT
    assert echoed_async == {"echo": {"async": True}}
    assert sse_data(events) == SSE_EVENTS and sse_data(lines) == SSE_EVENTS
    assert (status, boom, extra) == (500, {"error": "boom"}, [])
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["entrypoint"] == f"{agent.__name__}:handle"
    assert manifest["http_exchanges"] == 7
    cassette = yaml.safe_load((bundle / "cassette.yaml").read_text())
    assert len(cassette["interactions"]) == 7

    agent.RESULTS.clear()
    agent.KEY = "another-key-in-replay"  # the agent sends its own key: a redacted one matches it
    verdict = replay(bundle, agent)
    assert [recorded] == agent.RESULTS  # same input, same responses, no network
    assert not verdict.contained and verdict.mode == "agent"


def test_agent_replay_of_a_request_not_in_the_cassette_diverges(
        store: Path, server: Server, tmp_path: Path, agent: Any) -> None:
    bundle = record_and_export(agent, store, server, tmp_path, ticket="T-7")
    agent.RESULTS.clear()
    agent.EXTRA.append("/not-recorded")
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(bundle, agent)
    assert caught.value.kind == "http"
    assert "/not-recorded" in str(caught.value)
    assert agent.RESULTS == []


# -- bugs found (tracekit/ is not changed here: each test states what should hold) ---------------
def test_requests_raw_body_is_what_the_caller_would_get_without_tracekit(
        store: Path, server: Server) -> None:
    with requests.Session() as plain:
        untouched = plain.get(f"{server.url}/gzip", stream=True, timeout=10).raw.read()
    assert untouched[:2] == b"\x1f\x8b"  # plain requests: the bytes on the wire
    with tracekit.run(tenant="acme"), tracekit.http.instrument_requests(
            requests.Session()) as session:
        raw = session.get(f"{server.url}/gzip", stream=True, timeout=10).raw.read()
    assert json.loads(gzip.decompress(raw)) == GZ_DOC


@pytest.mark.parametrize("client", ["httpx", "requests"])
def test_a_password_in_the_url_never_reaches_the_store(store: Path, server: Server,
                                                       client: str) -> None:
    password = "Up77-userinfo-c3a0e5b9"
    url = server.url.replace("http://", f"http://agent:{password}@") + "/text"
    with tracekit.run(tenant="acme"):
        if client == "httpx":
            with httpx.Client(transport=tracekit.http.HTTPXTransport()) as http:
                assert http.get(url).text == TEXT
        else:
            with tracekit.http.instrument_requests(requests.Session()) as session:
                assert session.get(url, timeout=10).text == TEXT
    [event] = http_events(store)
    assert event["request"]["headers"]["authorization"] == "[REDACTED]"
    for path, data in all_file_bytes(store).items():
        assert password.encode() not in data, f"the URL's password is in {path}"


def test_a_query_secret_never_reaches_the_store_through_an_error(store: Path) -> None:
    secret = "Gk42-googlekey-8f1d7c0a"
    url = f"http://127.0.0.1:{closed_port()}/v1/models?key={secret}"
    with tracekit.run(tenant="acme"), pytest.raises(requests.ConnectionError), \
            tracekit.http.instrument_requests(requests.Session()) as session:
        session.get(url, timeout=10)
    [event] = http_events(store)
    assert event["request"]["url"].endswith("/v1/models?key=[REDACTED]")  # scrubbed here ...
    assert secret not in (event["error"] or "")  # ... but not in the error text
    for path, data in all_file_bytes(store).items():
        assert secret.encode() not in data, f"the query key is in {path}"


COMPACT_AGENT = """
import httpx
import requests

import tracekit
import tracekit.http

RESULTS = []


@tracekit.entrypoint
def handle(base: str) -> None:
    with tracekit.run(tenant="acme"):
        with httpx.Client(transport=tracekit.http.HTTPXTransport(), timeout=10) as client:
            first = client.get(f"{base}/compact")
        with tracekit.http.instrument_requests(requests.Session()) as session:
            second = session.get(f"{base}/compact", timeout=10)
    RESULTS.append([first.text, list(first.json()), second.text, list(second.json())])
"""


def test_agent_replay_serves_json_bodies_byte_for_byte(
        store: Path, server: Server, tmp_path: Path, make_agent: Any) -> None:
    agent = make_agent(COMPACT_AGENT)
    bundle = record_and_export(agent, store, server, tmp_path)
    [recorded] = agent.RESULTS
    assert recorded[0] == COMPACT.decode() and recorded[1] == ["zeta", "alpha", "name"]
    agent.RESULTS.clear()
    replay(bundle, agent)
    assert [recorded] == agent.RESULTS


FALLBACK_AGENT = """
import httpx

import tracekit
import tracekit.http

RESULTS = []


@tracekit.entrypoint
def handle(base: str, dead: str) -> None:
    with tracekit.run(tenant="acme"), httpx.Client(
            transport=tracekit.http.HTTPXTransport(), timeout=10) as client:
        try:
            answer = client.get(f"{dead}/primary").text
        except httpx.ConnectError:  # the primary is down: use the fallback
            answer = "fallback: " + client.get(f"{base}/text").text
    RESULTS.append(answer)
"""


def test_a_recorded_connection_error_is_a_divergence_in_agent_replay(
        store: Path, server: Server, tmp_path: Path, make_agent: Any) -> None:
    """vcrpy replays responses, not transport errors: the failed exchange is in the trace, not
    in the cassette, and replay says which request it could not serve."""
    agent = make_agent(FALLBACK_AGENT)
    bundle = record_and_export(agent, store, server, tmp_path,
                               dead=f"http://127.0.0.1:{closed_port()}")
    assert [f"fallback: {TEXT}"] == agent.RESULTS
    assert json.loads((bundle / "manifest.json").read_text())["http_exchanges"] == 1
    errors = [e for e in pq.read_table(bundle / "events.parquet").to_pylist()
              if e["kind"] == "http" and e["error"]]
    assert len(errors) == 1 and "ConnectError" in errors[0]["error"]
    agent.RESULTS.clear()
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(bundle, agent)
    assert caught.value.kind == "http" and "/primary" in str(caught.value)
