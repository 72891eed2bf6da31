"""A block of OTLP/JSON lines read by Arrow's JSON reader (in C++, on every core) into spans.

Arrow parses the block against the OTLP schema strictly: a block it will not read so (an
``intValue`` given as a number, a ``doubleValue`` given as text, a status code given as its
name) raises ``pyarrow.ArrowInvalid``, and the caller reads those lines as Python JSON
instead. Lines with values the schema does not hold (arrays, key-value lists, bytes) are never
given to it. Fields the importers do not read (``kind``, ``links``, ``droppedAttributesCount``)
are ignored here as there.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ..errors import ImportFormatError
from .span import Span, hex_id, ns, status_error

__all__ = ["COMPLEX", "spans_of_block"]

#: what a line holds that the schema below does not: such lines are read as Python JSON
COMPLEX = (b'"arrayValue"', b'"kvlistValue"', b'"bytesValue"')

_VALUE = pa.struct([("stringValue", pa.string()), ("intValue", pa.string()),
                    ("doubleValue", pa.float64()), ("boolValue", pa.bool_())])  # fmt: skip
_ATTRIBUTES = pa.list_(pa.struct([("key", pa.string()), ("value", _VALUE)]))
_EVENT = pa.struct([("timeUnixNano", pa.string()), ("name", pa.string()),
                    ("attributes", _ATTRIBUTES)])  # fmt: skip
_SPAN = pa.struct([
    ("traceId", pa.string()), ("spanId", pa.string()), ("parentSpanId", pa.string()),
    ("name", pa.string()), ("startTimeUnixNano", pa.string()), ("endTimeUnixNano", pa.string()),
    ("attributes", _ATTRIBUTES), ("events", pa.list_(_EVENT)),
    ("status", pa.struct([("code", pa.int64()), ("message", pa.string())])),
])  # fmt: skip
_SCHEMA = pa.schema([("resourceSpans", pa.list_(pa.struct([
    ("resource", pa.struct([("attributes", _ATTRIBUTES)])),
    ("scopeSpans", pa.list_(pa.struct([("spans", pa.list_(_SPAN))]))),
])))])  # fmt: skip
_MIN_BLOCK = 1 << 20
_PARSE = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")


def spans_of_block(block: bytes, path: Path, line_size: int) -> list[Span]:
    """The spans of ``block`` (whole OTLP/JSON lines, none longer than ``line_size``), in
    order. Raises ``ArrowInvalid`` when Arrow will not read the block against the OTLP schema
    (before any span is given)."""
    options = pj.ReadOptions(block_size=max(line_size, _MIN_BLOCK))  # blocks parsed in parallel
    read = pj.read_json(io.BytesIO(block), parse_options=_PARSE, read_options=options)
    column = read["resourceSpans"]
    if column.null_count:  # the Python reader says which line is not OTLP
        raise pa.ArrowInvalid("a line without resourceSpans")
    return [span for chunk in column.chunks for span in _chunk(chunk, path)]


def _chunk(chunk: pa.ListArray, path: Path) -> Iterator[Span]:
    resources = pc.list_flatten(chunk)
    scopes = pc.list_flatten(resources.field("scopeSpans"))
    spans = pc.list_flatten(scopes.field("spans"))
    if len(spans) == 0:
        return iter(())
    resource_of = pc.take(pc.list_parent_indices(resources.field("scopeSpans")),
                          pc.list_parent_indices(scopes.field("spans"))).to_pylist()  # fmt: skip
    by_resource = _attribute_dicts(resources.field("resource").field("attributes"))
    return _spans(spans, [by_resource[r] for r in resource_of], path)


def _spans(spans: pa.StructArray, resources: list[dict[str, Any]], path: Path) -> Iterator[Span]:
    traces, ids, parents, names, starts, ends = (
        spans.field(f).to_pylist() for f in ("traceId", "spanId", "parentSpanId", "name",
                                              "startTimeUnixNano", "endTimeUnixNano"))  # fmt: skip
    attrs = _attribute_dicts(spans.field("attributes"))
    events = _events(spans.field("events"))
    status = spans.field("status")
    codes, messages = status.field("code").to_pylist(), status.field("message").to_pylist()
    for i, trace in enumerate(traces):
        trace_id, span_id = hex_id(trace, 32), hex_id(ids[i], 16)
        if trace_id is None or span_id is None:
            raise ImportFormatError(f"{path}: a span without traceId or spanId: {names[i]!r}")
        start = ns(starts[i])
        error = None if codes[i] is None else status_error({"code": codes[i],
                                                            "message": messages[i]})  # fmt: skip
        yield Span(trace_id, span_id, hex_id(parents[i], 16), names[i] or "", start,
                   ns(ends[i]) or start, attrs[i], events[i], error, resources[i])  # fmt: skip


def _attribute_dicts(lists: pa.ListArray) -> list[dict[str, Any]]:
    """Each attribute list as a dict of plain values (an ``intValue`` as an int)."""
    flat = pc.list_flatten(lists)
    keys = flat.field("key").to_pylist()
    values = _values(flat.field("value"))
    offsets = pc.list_value_length(lists).to_pylist()
    found, at = [], 0
    for n in offsets:
        n = n or 0
        found.append({k: v for k, v in zip(keys[at:at + n], values[at:at + n], strict=True)
                      if k is not None})  # fmt: skip
        at += n
    return found


def _values(values: pa.StructArray) -> list[Any]:
    """Each ``AnyValue`` as a plain value: most are strings, the rest patched in."""
    found: list[Any] = values.field("stringValue").to_pylist()
    if values.field("stringValue").null_count == 0:
        return found
    ints, doubles, bools = (values.field(f).to_pylist() for f in ("intValue", "doubleValue",
                                                                  "boolValue"))  # fmt: skip
    for i, value in enumerate(found):
        if value is None:
            found[i] = _scalar(ints[i], doubles[i], bools[i])
    return found


def _scalar(integer: str | None, double: float | None, boolean: bool | None) -> Any:
    if integer is not None:
        return int(integer)
    return double if double is not None else boolean


def _events(lists: pa.ListArray) -> list[tuple[tuple[int, str, dict[str, Any]], ...]]:
    """Each span's events as ``(time_ns, name, attributes)``."""
    lengths = pc.list_value_length(lists).to_pylist()
    if not any(lengths):
        return [()] * len(lengths)
    flat = pc.list_flatten(lists)
    times, names = flat.field("timeUnixNano").to_pylist(), flat.field("name").to_pylist()
    attrs = _attribute_dicts(flat.field("attributes"))
    each = [(ns(t), n or "", a) for t, n, a in zip(times, names, attrs, strict=True)]
    found, at = [], 0
    for n in lengths:
        n = n or 0
        found.append(tuple(each[at : at + n]))
        at += n
    return found
