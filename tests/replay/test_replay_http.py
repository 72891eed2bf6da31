"""HTTP in agent replay: request bodies are matched, divergence messages and stored errors show no
secret, and however a replay ends the process is as it was.

HTTP goes to a server on 127.0.0.1 run by this process; the agent's requests are served from the
bundle's cassette in replay.

As in test_agent_replay.py, the agents are module-level functions of this file, replayed with
``tracekit.replay(bundle, entrypoint=f"{__name__}:function")``. ``KNOBS`` varies an agent
between recording and replay, ``outputs`` carries back what it saw, ``WORLD`` counts what its
tools and models really did.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from _replaying import export, replay, replay_state

import tracekit
import tracekit.http
from tracekit.testing import Recording

KNOBS: dict[str, Any] = {}
outputs: list[Any] = []
WORLD: dict[str, int] = {}
_LOCK = threading.Lock()

# credentials that match none of the redactor's value patterns: only tracekit's own scrubbing
# (query parameter names, secret headers) can keep them out
QUERY_KEY = "Pk13-chatkey-7be3c6d9"
QUERY_TOKEN = "Wt64-othertoken-0a9f2e81"
BEARER = "Zx81-bearer-4c1e9b7f"


@pytest.fixture(autouse=True)
def _fresh_agents() -> Iterator[None]:
    KNOBS.clear()
    outputs.clear()
    WORLD.clear()
    yield
    KNOBS.clear()
    outputs.clear()
    WORLD.clear()


def _bump(counter: str) -> int:
    with _LOCK:
        WORLD[counter] = WORLD.get(counter, 0) + 1
        return WORLD[counter]


# -- the write tool the agent calls ----------------------------------------------------------------
@tracekit.tool(writes=True, destination="pay")
def pay_refund(order_id: str, amount: int) -> dict[str, Any]:
    _bump("pay_refund")
    return {"ok": True}


# -- the loopback server --------------------------------------------------------------------------
class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"echo": json.loads(body or b"null")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- t9, t10: HTTP bodies are matched, and a divergence shows no secret ----------------------------
@tracekit.entrypoint
def http_agent(base: str) -> None:
    with httpx.Client(transport=tracekit.http.HTTPXTransport(), timeout=10) as client, \
            tracekit.run(tenant="web"):
        # the model is called over HTTP: the prompt is the POST body
        prompt = KNOBS.get("prompt", "refund o1")
        answer = client.post(f"{base}/v1/chat?api_key={QUERY_KEY}",
                             json={"messages": [prompt]}).json()
        outputs.append(answer)
        if KNOBS.get("other"):
            client.get(f"{base}/v2/other?access_token={QUERY_TOKEN}",
                       headers={"Authorization": f"Bearer {BEARER}"})
        pay_refund(order_id="o1", amount=1)


@pytest.fixture
def http_bundle(store: Path, tmp_path: Path, server: str) -> Path:
    http_agent(server)
    assert outputs == [{"echo": {"messages": ["refund o1"]}}]
    return export(store, tmp_path, "http")


def test_an_http_request_body_that_differs_diverges(http_bundle: Path) -> None:
    outputs.clear()
    replay(http_bundle, http_agent)  # the same prompt: served from the cassette
    assert outputs == [{"echo": {"messages": ["refund o1"]}}]
    KNOBS["prompt"] = "refund o1 AND o2 AND o3 twice"
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(http_bundle, http_agent)
    assert caught.value.kind == "http"
    assert "refund o1 AND o2" in str(caught.value)  # the body is what differs
    assert len(outputs) == 1  # the changed prompt got no answer
    assert WORLD == {"pay_refund": 1}


def _other_request_divergence(http_bundle: Path) -> str:
    KNOBS["other"] = True  # a request the recording does not have, with secrets of its own
    with pytest.raises(tracekit.ReplayDivergence) as caught:
        replay(http_bundle, http_agent)
    assert caught.value.kind == "http"
    return str(caught.value)


def test_an_http_divergence_message_shows_the_urls_scrubbed(http_bundle: Path) -> None:
    message = _other_request_divergence(http_bundle)
    assert "/v2/other?access_token=[REDACTED]" in message  # the request vcrpy could not serve
    assert "/v1/chat?api_key=[REDACTED]" in message  # the closest recorded one
    assert BEARER not in message and QUERY_KEY not in message


def test_an_http_divergence_message_does_not_contain_the_query_secret(
        http_bundle: Path) -> None:
    message = _other_request_divergence(http_bundle)
    assert QUERY_TOKEN not in message


# -- t11: whatever way a replay ends, the process is as it was ------------------------------------
@tracekit.entrypoint
def crashing_agent(base: str) -> None:
    with tracekit.run(tenant="web"):
        raise KeyError("the agent's own bug")


def test_a_replay_that_raises_leaves_the_process_as_it_was(store: Path, http_bundle: Path,
                                                           server: str) -> None:
    tracekit.flush()
    count = "SELECT count(*) AS n FROM events"
    recorded = Recording(store).rows(count)
    before = replay_state()
    with pytest.raises(KeyError):
        tracekit.replay(http_bundle, guard=tracekit.Guard(),
                        entrypoint=f"{__name__}:crashing_agent")
    assert replay_state() == before
    KNOBS["prompt"] = "something else"
    with pytest.raises(tracekit.ReplayDivergence):
        replay(http_bundle, http_agent)
    assert replay_state() == before
    assert httpx.get(f"{server}/after").status_code == 200  # vcrpy and the socket guard gone
    tracekit.flush()
    assert Recording(store).rows(count) == recorded  # nothing of the replays in the store
    with tracekit.run(tenant="after"):
        pass
    tracekit.flush()
    assert Recording(store).rows("SELECT tenant FROM runs WHERE tenant = 'after'")


# -- t17: a URL-encoded query secret never reaches the stored error --------------------------------
def test_an_url_encoded_query_secret_never_reaches_the_stored_error(store: Path) -> None:
    signature = "Zm9vYmFy%2BYmF6%2FcXV4%3D"  # an Azure SAS signature, as sent
    url = f"http://127.0.0.1:{closed_port()}/blob?sv=2022&sig={signature}&sp=r"
    with tracekit.run(tenant="acme"), pytest.raises(requests.ConnectionError), \
            tracekit.http.instrument_requests(requests.Session()) as session:
        session.get(url, timeout=5)
    tracekit.flush()
    [event] = Recording(store).rows("SELECT args, error FROM events WHERE kind = 'http'")
    assert event["error"] and "ConnectionError" in event["error"]
    assert "sig=[REDACTED]" in event["error"]
    for text in (event["args"], event["error"]):
        assert "Zm9vYmFy" not in text and "cXV4" not in text
