"""The break-glass halt file: ``control.halts.json`` beside the embedded control store.

Every guard on an embedded (SQLite) store reads it with the flags, so a halt still reaches
every worker when the store itself is damaged or locked: ``tracekit halt`` writes here when it
cannot write to the store, and says so. The file holds flags as the store does
(``{"version": 1, "flags": {key: info}}``), written atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ControlError

__all__ = ["BreakGlass"]

_VERSION = 1


class BreakGlass:
    """The halt file of the control store at ``store_path``."""

    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name("control.halts.json")
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the last read
        self._flags: dict[str, dict[str, Any]] = {}

    def flags(self) -> dict[str, dict[str, Any]]:
        """The halts in the file (read again only when it changed); {} when there is none."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._flags = None, {}
            return {}
        if (st.st_mtime_ns, st.st_size) != self._seen:
            self._flags = self._read()
            self._seen = (st.st_mtime_ns, st.st_size)
        return dict(self._flags)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:  # unreadable: a guard must not take it for none
            raise ControlError(f"break-glass halt file {self.path} is unreadable: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("version") != _VERSION:
            raise ControlError(f"break-glass halt file {self.path} is not version {_VERSION}")
        flags = doc.get("flags")
        return flags if isinstance(flags, dict) else {}

    def set_flag(self, key: str, info: dict[str, Any]) -> None:
        self._write({**self._current(), key: info})

    def clear_flag(self, key: str) -> bool:
        flags = self._current()
        if key not in flags:
            return False
        del flags[key]
        if flags:
            self._write(flags)
        else:
            self.path.unlink(missing_ok=True)
        return True

    def _current(self) -> dict[str, dict[str, Any]]:
        return self._read() if self.path.exists() else {}

    def _write(self, flags: dict[str, dict[str, Any]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            json.dump({"version": _VERSION, "flags": flags}, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
