"""Process-wide settings and the recorder they select."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._recorder import Recorder
from ._redact import Redactor, make_redactor
from ._store import Store, resolve_root

__all__ = [
    "Release", "Settings", "configure", "emit", "flush", "get_recorder", "settings", "shutdown",
]


class Release(BaseModel):
    """The release triple stamped on every event: model, prompt and tool-contract versions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(default="unknown", min_length=1)
    prompt: str = Field(default="unknown", min_length=1)
    tools: str = Field(default="unknown", min_length=1)

    @property
    def release_id(self) -> str:
        """A short stable hash of the triple: the same versions give the same id everywhere."""
        text = json.dumps([self.model, self.prompt, self.tools])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class Settings(BaseModel):
    """What ``tracekit.configure`` set; validated once, never on the hot path."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    store: Path
    release: Release = Release()
    redactor: Redactor = Redactor()

    @field_validator("store")
    @classmethod
    def _store_not_a_file(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"store {value} is a file; pass a directory (or set TRACEKIT_HOME)")
        return value


_lock = threading.RLock()
_settings: Settings | None = None
_recorder: Recorder | None = None


def configure(
    store: str | os.PathLike[str] | None = None,
    release: Release | dict[str, str] | None = None,
    redact: Redactor | dict[str, Any] | None = None,
) -> Settings:
    """Set the store root, the release triple and extra redaction rules for this process.

    Events recorded before the call are flushed to the store they were recorded for.
    """
    global _settings
    new = Settings(
        store=resolve_root(store),
        release=release if isinstance(release, Release) else Release(**(release or {})),
        redactor=make_redactor(redact),
    )
    with _lock:
        _reset_recorder()
        _settings = new
    return new


def settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings(store=resolve_root(None))
        return _settings


def get_recorder() -> Recorder:
    """The process's recorder for the configured store, started on first use."""
    global _recorder
    rec = _recorder
    if rec is not None:
        return rec
    with _lock:
        if _recorder is None:
            current = settings()
            _recorder = Recorder(Store(current.store), current.redactor, **_tuning())
        return _recorder


def _tuning() -> dict[str, Any]:
    """Writer tuning from the environment (used by crash tests and benchmarks)."""
    tuning: dict[str, Any] = {}
    if rows := os.environ.get("TRACEKIT_SEGMENT_ROWS"):
        tuning["rotate_rows"] = int(rows)
    if interval := os.environ.get("TRACEKIT_FLUSH_INTERVAL"):
        tuning["interval"] = float(interval)
    return tuning


def flush(timeout: float | None = None) -> bool:
    """Block until every event recorded so far in this process is durable."""
    rec = _recorder
    return True if rec is None else rec.flush(timeout)


def shutdown(timeout: float = 30.0) -> bool:
    """Flush, stop the writer and compact its segment into Parquet. Recording restarts on use."""
    with _lock:
        return _reset_recorder(timeout)


def _reset_recorder(timeout: float = 30.0) -> bool:
    global _recorder
    rec, _recorder = _recorder, None
    return True if rec is None else rec.shutdown(timeout)


def _after_fork_in_child() -> None:
    global _recorder, _lock
    _lock = threading.RLock()
    _recorder = None  # the parent writes what it buffered; the child gets its own writer


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown)


def emit(row: tuple[Any, ...]) -> None:
    """Hand one event row to the current recorder (the hot path's only call into config)."""
    rec = _recorder
    if rec is None:
        rec = get_recorder()
    rec.emit(row)
