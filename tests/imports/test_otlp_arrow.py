"""The two ways an OTLP/JSON lines file is read give the same spans: Arrow's JSON reader a block
at a time, and Python's JSON a line at a time (which takes every line Arrow will not read:
arrays, key-value lists, bytes, ints given as numbers, status codes given by name, odd ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracekit._import.otlp import _document, _spans_of, read_spans
from tracekit._import.otlp_arrow import spans_of_block
from tracekit._import.span import Span

_text = st.text(max_size=12)
_scalar = st.one_of(
    st.builds(lambda s: {"stringValue": s}, _text),
    st.builds(lambda i: {"intValue": str(i)}, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda i: {"intValue": i}, st.integers(-(2**53), 2**53)),  # a number: Python reads it
    st.builds(lambda d: {"doubleValue": d}, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda b: {"boolValue": b}, st.booleans()),
    st.just({}),
)
_value = st.one_of(
    _scalar,
    st.builds(lambda v: {"arrayValue": {"values": v}}, st.lists(_scalar, max_size=3)),
    st.builds(lambda v: {"bytesValue": v}, st.just("AAEC")),
)
_attributes = st.lists(st.builds(lambda k, v: {"key": k, "value": v},
                                 st.sampled_from(["gen_ai.operation.name", "a", "b", "c.d"]),
                                 _value), max_size=5)  # fmt: skip
_hex = st.integers(1, 2**64 - 1).map(lambda n: f"{n:016x}")
_status = st.one_of(
    st.just({}),
    st.builds(lambda m: {"code": 2, "message": m}, _text),
    st.just({"code": 1}),
    st.just({"code": "STATUS_CODE_ERROR", "message": "by name"}),
)


@st.composite
def _span(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(st.integers(0, 2**62))
    span: dict[str, Any] = {
        "traceId": draw(
            st.sampled_from(
                ["5b8efff798038103d269b633813fc60c", "W47/95gDgQPSabYzgT/GDA==", "12345"]
            )
        ),
        "spanId": draw(_hex),
        "name": draw(_text),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + draw(st.integers(0, 10**9))),
        "attributes": draw(_attributes),
        "events": draw(
            st.lists(
                st.builds(
                    lambda t, n, a: {"timeUnixNano": str(t), "name": n, "attributes": a},
                    st.integers(0, 2**62),
                    _text,
                    _attributes,
                ),
                max_size=2,
            )
        ),
        "status": draw(_status),
        "kind": 1,
    }
    if draw(st.booleans()):
        span["parentSpanId"] = draw(_hex)
    return span


@st.composite
def _line(draw: st.DrawFn) -> str:
    resource = {"attributes": draw(_attributes)}
    spans = draw(st.lists(_span(), min_size=1, max_size=4))
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [
        {"scope": {"name": "agent"}, "spans": spans}]}]})  # fmt: skip


def _by_python(path: Path) -> list[Span]:
    lines = path.read_text().splitlines()
    return [s for n, line in enumerate(lines, 1) for s in _spans_of(_document(path, line, n), path)]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_line(), min_size=1, max_size=6))
def test_arrow_and_python_read_every_file_alike(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert list(read_spans(path)) == _by_python(path)


def test_arrow_reads_plain_genai_lines_itself(tmp_path: Path) -> None:
    """The Collector's usual output (strings, ints as strings, hex ids) is Arrow's to read."""
    attrs = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}]  # fmt: skip
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "051581bf3cb55c13",
            "name": "chat", "startTimeUnixNano": "5", "endTimeUnixNano": "9",
            "attributes": attrs, "status": {"code": 2, "message": "boom"}}  # fmt: skip
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n"
    (read,) = spans_of_block(line.encode(), tmp_path / "x.jsonl", len(line))
    assert read.attrs == {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12}
    assert (read.start_ns, read.end_ns, read.error, read.parent_id) == (5, 9, "boom", None)
