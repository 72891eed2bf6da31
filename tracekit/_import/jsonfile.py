"""What the readers of agents' own log files share: the file as one JSON document (or one a
line), a digest of its bytes for a run id, and a clock for logs that record no time."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ImportFormatError
from .source import open_binary, open_text

__all__ = [
    "FIXED_EPOCH_NS",
    "MS",
    "as_dict",
    "digest",
    "digest_of",
    "iso_ns",
    "load_document",
    "load_lines",
    "parsed",
]

MS = 1_000_000
#: 2000-01-01T00:00:00Z: where a log that records no time starts (never the import's own time)
FIXED_EPOCH_NS = 946_684_800 * 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def digest(path: Path, size: int = 16) -> str:
    """The first ``size`` hex digits of the SHA-256 of the file's (gunzipped) bytes."""
    sha = hashlib.sha256()
    with open_binary(path) as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()[:size]


def digest_of(text: str, size: int = 16) -> str:
    """The first ``size`` hex digits of the SHA-256 of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def load_document(path: Path, what: str) -> Any:
    """The file as one JSON document; ``what`` names the format in the error when it is not."""
    try:
        with open_text(path) as fh:
            return json.load(fh)
    except (ValueError, EOFError, gzip.BadGzipFile) as exc:  # UnicodeDecodeError is one
        raise ImportFormatError(f"{path}: not {what} (not JSON: {_first_line(exc)})") from None


def load_lines(path: Path, what: str) -> Iterator[Any]:
    """The file's JSON documents, one a line (blank lines skipped)."""
    try:
        with open_text(path) as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    yield _line(path, what, number, line)
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise ImportFormatError(f"{path}: not {what} ({_first_line(exc)})") from None


def _line(path: Path, what: str, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise ImportFormatError(
            f"{path}: not {what} (line {number} is not JSON: {_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else an empty one (logs leave fields out or null)."""
    return value if isinstance(value, dict) else {}


def parsed(value: Any) -> Any:
    """JSON given as text (arguments, configs, states), parsed; anything else as it is."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def iso_ns(text: str) -> int:
    """An ISO-8601 time as ns since the epoch (``Z`` or an offset; none: UTC); ValueError when
    it is not one."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000
