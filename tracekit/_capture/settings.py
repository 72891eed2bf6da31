"""Process-wide settings and the recorder they select."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._base.redact import Redactor, make_redactor
from .._contain.guard import Guard, GuardRuntime, Halted, guard_from_mapping, load_project_settings
from .._control.backends import open_control
from .._control.base import ControlStore
from .._store.layout import Store, resolve_root
from ..errors import ControlError
from .recorder import Recorder

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
    guard: Guard | None = None
    control: str | None = None
    clock: Callable[[], float] | None = None

    @field_validator("store")
    @classmethod
    def _store_not_a_file(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"store {value} is a file; pass a directory (or set TRACEKIT_HOME)")
        return value


_lock = threading.RLock()
_settings: Settings | None = None
_recorder: Recorder | None = None
_runtime: GuardRuntime | None = None
_control: ControlStore | None = None  # the ledger's, when no guard has one
_pinned = False  # an agent replay holds the recorder and the guard: configure() keeps them


def configure(
    store: str | os.PathLike[str] | None = None,
    release: Release | dict[str, str] | None = None,
    redact: Redactor | dict[str, Any] | None = None,
    guard: Guard | dict[str, Any] | bool | None = None,
    control: str | None = None,
    clock: Callable[[], float] | None = None,
) -> Settings:
    """Set the store, the release triple, redaction rules and the guard for this process.

    ``guard`` is a ``tracekit.Guard`` (or its settings as a dict); None reads
    ``[tool.tracekit.guard]`` from the project's pyproject.toml (or a tracekit.toml) if there is
    one, and False turns the guard off. ``control`` is ``"sqlite"`` (the default, control.db in
    the store) or ``"redis://host:port/db"``; ``clock`` is the guard's clock (seconds).
    Events recorded before the call are flushed to the store they were recorded for.
    """
    global _settings
    project_guard, project_control = _project_guard() if guard is None else (None, None)
    new = Settings(
        store=resolve_root(store),
        release=release if isinstance(release, Release) else Release(**(release or {})),
        redactor=make_redactor(redact),
        guard=_guard_setting(guard) if guard is not None else project_guard,
        control=control or os.environ.get("TRACEKIT_CONTROL") or project_control,
        clock=clock,
    )
    with _lock:
        if not _pinned:
            _reset_recorder()
        _settings = new
    return new


def _guard_setting(guard: Guard | dict[str, Any] | bool) -> Guard | None:
    if guard is False:
        return None
    if guard is True:
        return Guard()
    if isinstance(guard, dict):
        return guard_from_mapping(guard, "configure(guard=...)")
    if isinstance(guard, Guard):
        return guard
    raise TypeError("configure(guard=...) takes a tracekit.Guard, a dict of its settings or False")


def _project_guard() -> tuple[Guard | None, str | None]:
    found = load_project_settings()
    if found is None:
        return None, None
    table, source = found
    control = table.get("control")
    guard = table.get("guard")
    if guard is not None and not isinstance(guard, dict):
        raise ValueError(f"{source}: 'guard' must be a table of settings")
    return (guard_from_mapping(guard, source) if guard is not None else None,
            str(control) if control else None)


def settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            guard, control = _project_guard()
            _settings = Settings(store=resolve_root(None), guard=guard, control=control)
        return _settings


def guard_runtime() -> GuardRuntime | None:
    """The process's guard (None when no guard is configured), started on first use."""
    global _runtime
    rt = _runtime
    if rt is not None:
        return rt
    current = settings()
    if current.guard is None:
        return None
    with _lock:
        if _runtime is None:
            try:
                control = open_control(  # SQLite is made on first use; Redis never is
                    current.control, current.store, current.guard.timeout_s,
                    create=not _is_redis(current.control))
            except ControlError as exc:  # fail closed: no control store, no guarded call
                raise Halted("store", current.control or "sqlite", str(exc),
                             signal="store_error") from None
            redactor = current.redactor
            _runtime = GuardRuntime(current.guard, control, current.clock or time.time,
                                    scrub=lambda text: redactor.redact_text(text)[0])
        return _runtime


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


def control_store() -> ControlStore:
    """The control store idempotent writes reserve in: the guard's, else one of its own."""
    global _control
    runtime = guard_runtime()
    if runtime is not None:
        return runtime.control
    with _lock:
        if _control is None:
            current = settings()
            _control = open_control(current.control, current.store,
                                    create=not _is_redis(current.control))
        return _control


def _is_redis(spec: str | None) -> bool:
    return bool(spec) and not str(spec).startswith("sqlite")


def flush(timeout: float | None = None) -> bool:
    """Block until every event recorded so far in this process is durable."""
    rec = _recorder
    return True if rec is None else rec.flush(timeout)


def shutdown(timeout: float = 30.0) -> bool:
    """Flush, stop the writer and compact its segment into Parquet. Recording restarts on use."""
    with _lock:
        return True if _pinned else _reset_recorder(timeout)


def _reset_recorder(timeout: float = 30.0) -> bool:
    global _recorder, _runtime, _control
    rec, _recorder = _recorder, None
    runtime, _runtime = _runtime, None
    control, _control = _control, None
    if runtime is not None:
        runtime.close()
    if control is not None:
        control.close()
    return True if rec is None else rec.shutdown(timeout)


@contextmanager
def pinned(recorder: Any, runtime: GuardRuntime | None) -> Iterator[None]:
    """Route every event to ``recorder`` and every guard check to ``runtime`` for the block
    (an agent replay): the process's own recorder and guard are set aside, then restored."""
    global _recorder, _runtime, _pinned, _settings
    with _lock:
        if _pinned:
            raise RuntimeError("an agent replay is already running in this process")
        saved = (_recorder, _runtime, _settings)
        _recorder, _runtime, _pinned = recorder, runtime, True
    try:
        yield
    finally:
        with _lock:  # settings too: an entry point that calls configure() leaves no trace
            _recorder, _runtime, _settings = saved
            _pinned = False


def _after_fork_in_child() -> None:
    global _recorder, _lock, _runtime, _control
    _lock = threading.RLock()
    _runtime = None
    _control = None
    _recorder = None  # the parent writes what it buffered; the child gets its own writer


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown)


def emit(row: tuple[Any, ...]) -> None:
    """Hand one event row to the current recorder (the hot path's only call into config)."""
    rec = _recorder
    if rec is None:
        rec = get_recorder()
    rec.emit(row)
