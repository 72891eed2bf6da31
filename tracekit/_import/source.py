"""Opening a trace file, plain or gzipped, and telling which format it is."""

from __future__ import annotations

import gzip
import importlib
from pathlib import Path
from types import ModuleType
from typing import IO

from ..errors import ImportFormatError
from . import FORMATS, READERS

__all__ = ["HEAD", "head", "open_binary", "open_text", "reader_for"]

HEAD = 64 * 1024


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it is gzipped (whatever its name)."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # type: ignore[return-value]


def open_text(path: Path) -> IO[str]:
    """The file as UTF-8 text, gunzipped when it is gzipped."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def head(path: Path) -> str:
    """The file's first 64 KiB as text (undecodable bytes replaced), gunzipped."""
    try:
        with open_binary(path) as fh:
            return fh.read(HEAD).decode("utf-8", errors="replace")
    except (EOFError, gzip.BadGzipFile) as exc:
        raise ImportFormatError(f"{path}: a damaged gzip file ({exc})") from None


def reader_for(path: Path, fmt: str) -> tuple[str, ModuleType]:
    """The format of ``path`` and the module that reads it: the one named, or (``auto``) the
    first whose ``sniff`` takes the file."""
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt, _module(READERS[fmt])
    text = head(path)
    for name, module in READERS.items():
        found = _module(module)
        if found.sniff(path, text):
            return name, found
    raise ImportFormatError(
        f"{path}: not a trace format tracekit knows; name one with --format "
        f"({', '.join(FORMATS[1:])})"
    )


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.{name}")
