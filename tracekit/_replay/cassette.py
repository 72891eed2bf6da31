"""The bundle's cassette, served in agent replay by vcrpy with record mode ``none``: a request
that is not in it fails instead of reaching the network. Method, URL and body must match; a
query parameter or a JSON body value recorded as redacted matches any value (the agent under
replay sends its own key)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._base.matching import same
from .._base.redact import MARKER
from .._base.urls import secret_param
from .._export.cassette import CASSETTE

__all__ = ["serving"]


def _query(r1: Any, r2: Any) -> None:
    """vcrpy's query matcher, where a recorded redacted value matches any value."""
    a, b = r1.query, r2.query
    if len(a) != len(b) or any(
        ka != kb or (va != vb and MARKER not in (va, vb))
        for (ka, va), (kb, vb) in zip(a, b, strict=True)
    ):
        raise AssertionError(f"query {_shown(a)} != {_shown(b)}")


def _shown(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A query as a near-miss message may show it: secret values masked."""
    return [(k, MARKER if secret_param(k) else v) for k, v in query]


def _body(r1: Any, r2: Any) -> None:
    """Request bodies match (a prompt sent over HTTP must be the recorded one): as JSON when
    both are, where a redacted recorded value matches any value."""
    a, b = _text(r1.body), _text(r2.body)
    if a == b:
        return
    try:
        left, right = json.loads(a), json.loads(b)
    except ValueError:
        raise AssertionError(f"body {a[:200]!r} != {b[:200]!r}") from None
    if not (same(left, right) or same(right, left)):
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
