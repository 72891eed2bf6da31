"""One OTLP span as the importers read it, from its OTLP/JSON object: ids in hex (given in
hex, base64 or decimal), times in nanoseconds, attributes as plain values."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ImportFormatError

__all__ = ["Span", "any_value", "attributes", "hex_id", "ns", "span_of", "status_error"]


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


def span_of(raw: dict[str, Any], resource: dict[str, Any], path: Path) -> Span:
    """The span of one OTLP/JSON span object (``resource``: its resource's attributes)."""
    trace_id, span_id = hex_id(raw.get("traceId"), 32), hex_id(raw.get("spanId"), 16)
    if trace_id is None or span_id is None:
        raise ImportFormatError(f"{path}: a span without traceId or spanId: {raw.get('name')!r}")
    start = ns(raw.get("startTimeUnixNano"))
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=hex_id(raw.get("parentSpanId"), 16),
        name=str(raw.get("name") or ""),
        start_ns=start,
        end_ns=ns(raw.get("endTimeUnixNano")) or start,
        attrs=attributes(raw.get("attributes")),
        events=tuple(_event(e) for e in raw.get("events") or ()),
        error=status_error(raw.get("status")),
        resource=resource,
    )


def _event(raw: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    return ns(raw.get("timeUnixNano")), str(raw.get("name") or ""), attributes(
        raw.get("attributes"))  # fmt: skip


def status_error(status: Any) -> str | None:
    """The status message of an ERROR span (code 2, or its enum name); None otherwise."""
    if not isinstance(status, dict) or status.get("code") not in (2, "2", "STATUS_CODE_ERROR"):
        return None
    return str(status.get("message") or "")


def ns(value: Any) -> int:
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
