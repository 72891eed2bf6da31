"""OTLP/JSON traces read as spans: one ``ExportTraceServiceRequest`` document, or one per line
(what the OpenTelemetry Collector's file exporter writes), plain or gzipped.

Lines are read a 4 MB block at a time (Arrow's JSON reader, ``otlp_arrow``; Python's JSON for
what it will not read), so a file of a million spans is never in memory whole. Ids may be hex
(the OTLP/JSON encoding), base64 (protobuf's JSON mapping) or decimal; ``intValue`` may be a
string or a number; times are nanoseconds since the epoch, as strings or numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from ..errors import ImportFormatError
from .otlp_arrow import COMPLEX, spans_of_block
from .source import open_binary, open_text
from .span import Span, any_value, attributes, hex_id, span_of

__all__ = ["Span", "any_value", "attributes", "hex_id", "read_spans"]

_BLOCK = 4 * 1024 * 1024  # bytes of lines Arrow reads at once


def read_spans(path: Path) -> Iterator[Span]:
    """Every span of an OTLP/JSON file, in file order."""
    with open_text(path) as fh:
        first = _first_char(fh)
        if first != "{":
            raise ImportFormatError(f"{path}: not OTLP/JSON (expected a JSON object with "
                                    "'resourceSpans', one per line or one document)")  # fmt: skip
        if not _is_lines(fh):
            yield from _spans_of(_document(path, fh.read(), 1), path)
            return
    yield from _lines(path)


def _lines(path: Path) -> Iterator[Span]:
    """The spans of a file of one document a line: runs of plain lines a block at a time by
    Arrow, the rest (and any block Arrow will not read) a line at a time."""
    block: list[tuple[int, bytes]] = []
    size = 0
    with open_binary(path) as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if any(marker in line for marker in COMPLEX):
                yield from _block(path, block)
                block, size = [], 0
                yield from _spans_of(_document(path, line.decode(), number), path)
                continue
            block.append((number, line))
            size += len(line)
            if size >= _BLOCK:
                yield from _block(path, block)
                block, size = [], 0
    yield from _block(path, block)


def _block(path: Path, lines: list[tuple[int, bytes]]) -> Iterator[Span]:
    if not lines:
        return
    longest = max(len(line) for _, line in lines)
    try:
        spans = list(spans_of_block(b"".join(line for _, line in lines), path, 2 * longest))
    except pa.ArrowInvalid:  # not what Arrow reads as OTLP: the Python reader says why
        for number, line in lines:
            yield from _spans_of(_document(path, line.decode(), number), path)
        return
    yield from spans


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
                yield span_of(raw, resource, path)
