"""The incident's HTTP exchanges as a vcrpy cassette, and the cassette served in agent replay.

``export`` writes ``cassette.yaml`` from the ``http`` events (recorded by ``tracekit.http``,
already scrubbed) that got a response; agent replay serves it with record mode ``none``,
so a request that is not in it fails instead of reaching the network. An exchange that
failed (connection refused, timeout) is in the trace but not in the cassette: vcrpy
replays responses, not transport errors, so in replay it is a divergence. A query
parameter recorded as redacted matches any value (the agent under replay sends its own key).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._base.redact import MARKER

__all__ = ["CASSETTE", "cassette_text", "serving"]

CASSETTE = "cassette.yaml"


def cassette_text(events: pa.Table) -> str | None:
    """The vcrpy cassette (YAML) of the ``http`` events, in recorded order; None if none."""
    if "kind" not in events.column_names:
        return None
    table = events.filter(pc.equal(events["kind"], "http"))
    rows = [r for r in table.select(["ts", "seq", "args", "output"]).to_pylist()
            if r["output"] is not None]
    if not rows:
        return None
    from vcr.request import Request
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    rows.sort(key=lambda r: (r["ts"], r["seq"]))
    requests, responses = [], []
    for row in rows:
        sent, got = json.loads(row["args"]), json.loads(row["output"])
        requests.append(Request(sent["method"], sent["url"], _bytes(sent),
                                dict(sent.get("headers") or {})))
        responses.append({
            "status": {"code": got["status"], "message": got.get("reason") or ""},
            "headers": {k: [v] for k, v in (got.get("headers") or {}).items()},
            "body": {"string": _bytes(got) or b""},
        })
    return str(serialize({"requests": requests, "responses": responses}, yamlserializer))


def _bytes(doc: dict[str, Any]) -> bytes | None:
    if "text" in doc:
        return str(doc["text"]).encode()
    if "base64" in doc:
        return base64.b64decode(doc["base64"])
    return None


def _query(r1: Any, r2: Any) -> None:
    """vcrpy's query matcher, where a recorded redacted value matches any value."""
    a, b = r1.query, r2.query
    if len(a) != len(b) or any(
            ka != kb or (va != vb and MARKER not in (va, vb))
            for (ka, va), (kb, vb) in zip(a, b, strict=True)):
        raise AssertionError(f"query {_shown(a)} != {_shown(b)}")


def _shown(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A query as a near-miss message may show it: secret values masked."""
    from ..http import _secret_param

    return [(k, MARKER if _secret_param(k) else v) for k, v in query]


def _body(r1: Any, r2: Any) -> None:
    """Request bodies match (a prompt sent over HTTP must be the recorded one): as JSON when
    both are, where a redacted recorded value matches any value."""
    from .._replay.agent import _same

    a, b = _text(r1.body), _text(r2.body)
    if a == b:
        return
    try:
        left, right = json.loads(a), json.loads(b)
    except ValueError:
        raise AssertionError(f"body {a[:200]!r} != {b[:200]!r}") from None
    if not (_same(left, right) or _same(right, left)):
        raise AssertionError(f"JSON body {a[:200]} != {b[:200]}")


def _text(body: Any) -> str:
    if body is None:
        return ""
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)


@contextmanager
def serving(bundle: Path) -> Iterator[None]:
    """HTTP served by vcrpy from the bundle's cassette, record mode none (never recorded).
    Without a cassette nothing is patched: every connection is refused anyway."""
    if not (bundle / CASSETTE).is_file():
        yield
        return
    import vcr

    recorder = vcr.VCR(record_mode="none", decode_compressed_response=False)
    recorder.register_matcher("query", _query)
    recorder.register_matcher("tracekit_body", _body)
    match_on = ("method", "scheme", "host", "port", "path", "query", "tracekit_body")
    with recorder.use_cassette(str(bundle / CASSETTE), match_on=match_on):
        yield
