"""The incident's HTTP exchanges as a vcrpy cassette (the writing half; agent replay serves it:
``tracekit/_replay/cassette.py``).

``export`` writes ``cassette.yaml`` from the ``http`` events (recorded by ``tracekit.http``,
already scrubbed) that got a response. An exchange that failed (connection refused, timeout)
is in the trace but not in the cassette: vcrpy replays responses, not transport errors, so in
replay it is a divergence.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CASSETTE", "cassette_text"]

CASSETTE = "cassette.yaml"


def cassette_text(events: pa.Table) -> str | None:
    """The vcrpy cassette (YAML) of the ``http`` events, in recorded order; None if none."""
    if "kind" not in events.column_names:
        return None
    table = events.filter(pc.equal(events["kind"], "http"))
    rows = [
        r
        for r in table.select(["ts", "seq", "args", "output"]).to_pylist()
        if r["output"] is not None
    ]
    if not rows:
        return None
    from vcr.request import Request
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    rows.sort(key=lambda r: (r["ts"], r["seq"]))
    requests, responses = [], []
    for row in rows:
        sent, got = json.loads(row["args"]), json.loads(row["output"])
        requests.append(
            Request(sent["method"], sent["url"], _bytes(sent), dict(sent.get("headers") or {}))
        )
        responses.append(
            {
                "status": {"code": got["status"], "message": got.get("reason") or ""},
                "headers": {k: [v] for k, v in (got.get("headers") or {}).items()},
                "body": {"string": _bytes(got) or b""},
            }
        )
    return str(serialize({"requests": requests, "responses": responses}, yamlserializer))


def _bytes(doc: dict[str, Any]) -> bytes | None:
    if "text" in doc:
        return str(doc["text"]).encode()
    if "base64" in doc:
        return base64.b64decode(doc["base64"])
    return None
