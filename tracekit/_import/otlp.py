"""OTLP/JSON traces read as spans: one ``ExportTraceServiceRequest`` document, or one per line
(what the OpenTelemetry Collector's file exporter writes), plain or gzipped.

Read a line at a time, so a file of a million spans is never in memory whole. Ids may be hex
(the OTLP/JSON encoding), base64 (protobuf's JSON mapping) or decimal; ``intValue`` may be a
string or a number; times are nanoseconds since the epoch, as strings or numbers.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ImportFormatError
from .source import open_text

__all__ = ["Span", "any_value", "attributes", "hex_id", "read_spans"]


@dataclass(frozen=True, slots=True)
class Span:
    """One span as the importers read it (attributes decoded to plain values)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attrs: dict[str, Any]
    events: tuple[tuple[int, str, dict[str, Any]], ...]  # (time_ns, name, attributes)
    error: str | None  # the status message of a span whose status is ERROR ("" if none given)
    resource: dict[str, Any]


def read_spans(path: Path) -> Iterator[Span]:
    """Every span of an OTLP/JSON file, in file order."""
    with open_text(path) as fh:
        first = _first_char(fh)
        if first != "{":
            raise ImportFormatError(f"{path}: not OTLP/JSON (expected a JSON object with "
                                    "'resourceSpans', one per line or one document)")  # fmt: skip
        text = fh.read() if not _is_lines(fh) else None
        if text is not None:
            yield from _spans_of(_document(path, text, 1), path)
            return
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield from _spans_of(_document(path, line, number), path)


def _first_char(fh: IO[str]) -> str:
    while True:
        ch = fh.read(1)
        if not ch or not ch.isspace():
            fh.seek(0)
            return ch


def _is_lines(fh: IO[str]) -> bool:
    """One document per line: the first line is a whole JSON document."""
    first = fh.readline()
    fh.seek(0)
    try:
        json.loads(first)
    except ValueError:
        return False
    return True


def _document(path: Path, text: str, line: int) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ImportFormatError(f"{path}:{line}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or "resourceSpans" not in doc:
        raise ImportFormatError(
            f"{path}:{line}: not OTLP/JSON (expected an object with 'resourceSpans')"
        )
    return doc


def _spans_of(doc: dict[str, Any], path: Path) -> Iterator[Span]:
    for resource_spans in doc.get("resourceSpans") or []:
        resource = attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans") or []:
            for raw in scope_spans.get("spans") or []:
                yield _span(raw, resource, path)


def _span(raw: dict[str, Any], resource: dict[str, Any], path: Path) -> Span:
    trace_id, span_id = hex_id(raw.get("traceId"), 32), hex_id(raw.get("spanId"), 16)
    if trace_id is None or span_id is None:
        raise ImportFormatError(f"{path}: a span without traceId or spanId: {raw.get('name')!r}")
    start = _ns(raw.get("startTimeUnixNano"))
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=hex_id(raw.get("parentSpanId"), 16),
        name=str(raw.get("name") or ""),
        start_ns=start,
        end_ns=_ns(raw.get("endTimeUnixNano")) or start,
        attrs=attributes(raw.get("attributes")),
        events=tuple(_event(e) for e in raw.get("events") or ()),
        error=_error(raw.get("status")),
        resource=resource,
    )


def _event(raw: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    return _ns(raw.get("timeUnixNano")), str(raw.get("name") or ""), attributes(
        raw.get("attributes"))  # fmt: skip


def _error(status: Any) -> str | None:
    """The status message of an ERROR span (code 2, or its enum name); None otherwise."""
    if not isinstance(status, dict) or status.get("code") not in (2, "2", "STATUS_CODE_ERROR"):
        return None
    return str(status.get("message") or "")


def _ns(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def attributes(raw: Any) -> dict[str, Any]:
    """An OTLP attribute list (``[{"key", "value": AnyValue}]``) as a dict of plain values."""
    found: dict[str, Any] = {}
    for kv in raw or ():
        value = kv.get("value")
        if type(value) is dict and len(value) == 1 and "stringValue" in value:  # most are
            found[kv["key"]] = value["stringValue"]
        elif "key" in kv:
            found[kv["key"]] = any_value(value)
    return found


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a plain value (an int given as a string, as the JSON encoding
    of 64-bit integers does, as an int)."""
    if not isinstance(value, dict) or not value:
        return None
    (kind, inner), *_ = value.items()
    if kind == "intValue":
        return int(inner)
    if kind == "doubleValue":
        return float(inner)
    if kind == "arrayValue":
        return [any_value(v) for v in (inner or {}).get("values") or ()]
    if kind == "kvlistValue":
        return attributes((inner or {}).get("values"))
    return inner  # stringValue, boolValue, bytesValue (base64 text)


def hex_id(value: Any, width: int) -> str | None:
    """A trace (32 hex digits) or span id (16) from hex, base64 or decimal; None if empty."""
    if value is None or value == "" or value == 0:
        return None
    text = str(value)
    if len(text) == width and _is_hex(text):
        return text.lower()
    if text.isdigit():
        return format(int(text), f"0{width}x")[-width:]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text
    return raw.hex().rjust(width, "0") if raw else None


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
