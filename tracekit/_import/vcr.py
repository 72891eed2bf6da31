"""vcrpy cassettes (YAML, format version 1) of model API traffic as runs: ``vcr-<digest>``.

A first cut: each interaction with a JSON request and a plain JSON (or gzipped) response body is
a prompt and a model output, on a fixed clock (2000-01-01 UTC, 1 s an interaction); headers are
never read. Not read yet: SSE streams, the tool calls an answer declares and the results the next
request carries, and ``http`` events that would keep the cassette for agent replay.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from ..errors import ImportFormatError
from .drafts import Draft, Unit
from .jsonfile import FIXED_EPOCH_NS, MS, digest_of
from .source import open_text

__all__ = ["read", "sniff"]

_WHAT = "a vcrpy cassette (YAML with 'interactions:' and 'version:')"
_TOP = re.compile(r"^interactions:", re.M)


def sniff(path: Path, head: str) -> bool:
    return bool(_TOP.search(head)) and ("version:" in head or "- request:" in head)


def read(path: Path, fmt: str) -> Iterator[Unit]:
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    try:
        with open_text(path) as fh:
            loaded = deserialize(fh.read(), yamlserializer)
    except Exception as exc:  # YAML, shape: any failure means not a cassette
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ImportFormatError(f"{path}: not {_WHAT} ({line})") from None
    requests, responses = loaded[0], loaded[1]
    keys = [[r.method, r.uri, _text(r.body_bytes)] for r in requests]
    run_id = f"vcr-{digest_of(canonical_json(keys))}"
    t = FIXED_EPOCH_NS
    for request, response in zip(requests, responses, strict=True):
        drafts = list(_call(request, response, t))
        yield Unit(run_id, t, t + MS, drafts, path.stem, True, source="vcr")
        t += 1000 * MS


def _text(body: Any) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return "" if body is None else str(body)


def _body(response: dict[str, Any]) -> Any:
    raw = (response.get("body") or {}).get("string") or b""
    if isinstance(raw, str):
        raw = raw.encode()
    if raw[:2] == b"\x1f\x8b":
        raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _call(request: Any, response: dict[str, Any], t: int) -> Iterator[Draft]:
    try:
        sent = json.loads(_text(request.body_bytes))
    except ValueError:
        return
    got = _body(response)
    if not isinstance(sent, dict) or not isinstance(got, dict):
        return
    model = str(got.get("model") or sent.get("model") or "") or None
    prompt = {"messages": sent.get("messages") or sent.get("input") or []}
    for key in ("system", "tools", "instructions"):
        if sent.get(key) is not None:
            prompt[key] = sent[key]
    if "choices" in got:
        out = [c.get("message") for c in got["choices"]]
    else:
        out = [{"role": "assistant", "content": got.get("content") or got.get("output")}]
    usage = got.get("usage") or {}
    tin = usage.get("prompt_tokens", usage.get("input_tokens"))
    tout = usage.get("completion_tokens", usage.get("output_tokens"))
    call_id = f"vcr_{t}"
    yield Draft(t, 0, EventKind.PROMPT, model, call_id, canonical_json(prompt))
    yield Draft(t + MS, 1, EventKind.MODEL_OUTPUT, model, call_id, None,
                canonical_json({"messages": out}), EventStatus.OK, None, tin, tout,
                model=model)  # fmt: skip
