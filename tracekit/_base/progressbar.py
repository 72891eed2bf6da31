"""A progress bar for long operations: drawn on a terminal, silent when output is not one."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]

_WIDTH = 24
_EVERY_S = 0.1


class Progress:
    """``with Progress(total, "exporting") as bar: ... bar.advance("writing events")``.

    Drawn on ``stream`` (default stderr) only when it is a terminal and TRACEKIT_PROGRESS is not
    "0"; TRACEKIT_PROGRESS=1 forces it (for tests and logs that want it).
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total, self.label, self.done = max(total, 1), label, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _wanted(self.stream)
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        self._draw("", force=True)
        return self

    def advance(self, what: str = "", by: int = 1) -> None:
        self.done = min(self.total, self.done + by)
        self._draw(what, force=self.done == self.total)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[2K")  # clear the line: the command's own output follows
            self.stream.flush()

    def _draw(self, what: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < _EVERY_S):
            return
        self._drawn = now
        filled = _WIDTH * self.done // self.total
        bar = "#" * filled + "." * (_WIDTH - filled)
        self.stream.write(f"\r\x1b[2K{self.label} [{bar}] {self.done}/{self.total} {what}")
        self.stream.flush()


def _wanted(stream: TextIO) -> bool:
    setting = os.environ.get("TRACEKIT_PROGRESS")
    if setting is not None:
        return setting == "1"
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
