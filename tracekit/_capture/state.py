"""Everything tracekit holds for this process, in one object: the settings, the sink events go
to (the recorder), the guard's runtime, the ledger's control store and the agent replay in
progress. ``tracekit.testing.reset()`` empties it.

The sink, the guard runtime and the control store start on first use and stop at
``shutdown`` (and at exit); a forked child starts its own. An agent replay *pins* its own sink
and guard for its duration, and ``configure`` inside it changes nothing else.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from .._control.backends import is_shared_server, open_control
from .._control.base import GuardControl, LedgerControl
from .._store.layout import Store
from ..errors import ControlError, Halted
from .recorder import Recorder
from .rows import EventRow, Sink
from .settings import Settings, default_settings, make_settings

if TYPE_CHECKING:
    from .._contain.runtime import GuardRuntime
    from .run import Run
    from .specs import ModelSpec, ToolSpec

__all__ = ["PROCESS", "Process", "Replaying", "configure", "flush", "settings", "shutdown"]


class Replaying(Protocol):
    """What a run asks of the agent replay in progress (the recording serves the world)."""

    def run_id_for(
        self, tenant: str, run_id: str | None, parent: Any, attrs: dict[str, Any] | None
    ) -> str: ...
    def tool(
        self,
        run: Run,
        spec: ToolSpec,
        params: tuple[str, ...] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any: ...
    def prompt(self, run: Run, encoded: str) -> Any: ...
    def model(self, run: Run, spec: ModelSpec, prompt: str) -> Any: ...
    def draw(self, run: Run | None, kind: str) -> Any: ...
    def outside_run(self, name: str) -> None: ...


class Process:
    """The process's tracekit state (one instance: ``PROCESS``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._settings: Settings | None = None
        self._sink: Sink | None = None
        #: hands one event row to the sink: the hot path's only call into the process state
        #: (the sink's own ``emit`` once one runs; until then, one that starts the recorder)
        self.emit: Callable[[EventRow], None] = self._emit_first
        self.runtime: GuardRuntime | None = None
        self.control: LedgerControl | None = None  # the ledger's own, when no guard has one
        self.replay: Replaying | None = None  # read on every run start and tool call
        self.pinned = False  # an agent replay holds the sink and the guard

    # -- settings ---------------------------------------------------------------------------
    def settings(self) -> Settings:
        current = self._settings
        if current is not None:
            return current
        with self.lock:
            if self._settings is None:
                self._settings = default_settings()
            return self._settings

    def configure(self, new: Settings) -> Settings:
        """New settings; events recorded before are flushed to the store they were for."""
        with self.lock:
            if not self.pinned:
                self._stop()
            self._settings = new
        return new

    # -- what starts on first use -------------------------------------------------------------
    @property
    def sink(self) -> Sink | None:
        return self._sink

    @sink.setter
    def sink(self, sink: Sink | None) -> None:
        self._sink = sink
        self.emit = self._emit_first if sink is None else sink.emit

    def _emit_first(self, row: EventRow) -> None:
        self.recorder().emit(row)

    def recorder(self) -> Sink:
        """The sink for the configured store, started on first use."""
        with self.lock:
            if self.sink is None:
                current = self.settings()
                self.sink = Recorder(Store(current.store), current.redactor, **_tuning())
            return self.sink

    def capture_failure(self) -> str | None:
        """Why the trace or the ledger cannot be written now (None when both can)."""
        failure = getattr(self._sink, "failure", None)
        return failure() if callable(failure) else None

    def guard_runtime(self) -> GuardRuntime | None:
        """The process's guard (None when no guard is configured), started on first use."""
        runtime = self.runtime
        if runtime is not None:
            return runtime
        current = self.settings()
        if current.guard is None:
            return None
        with self.lock:
            if self.runtime is None:
                self.runtime = _start_runtime(current, self.capture_failure)
            return self.runtime

    def ledger_control(self) -> LedgerControl:
        """The control store idempotent writes reserve in: the guard's, else one of its own."""
        runtime = self.guard_runtime()
        if runtime is not None:
            return runtime.control  # type: ignore[return-value]
        with self.lock:
            if self.control is None:
                current = self.settings()
                self.control = open_control(
                    current.control, current.store, create=not is_shared_server(current.control)
                )
            return self.control

    # -- stopping ---------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        sink = self.sink
        return True if sink is None else sink.flush(timeout)

    def shutdown(self, timeout: float = 30.0) -> bool:
        with self.lock:
            return True if self.pinned else self._stop(timeout)

    def _stop(self, timeout: float = 30.0) -> bool:
        sink, self.sink = self.sink, None
        runtime, self.runtime = self.runtime, None
        control, self.control = self.control, None
        if runtime is not None:
            runtime.close()
        if control is not None:
            control.close()
        return True if sink is None else sink.shutdown(timeout)

    def reset(self) -> None:
        """Stop everything and forget the settings (the next use starts from the defaults)."""
        with self.lock:
            self.pinned = False
            self.replay = None
            self._stop()
            self._settings = None

    @contextmanager
    def pin(self, sink: Sink, runtime: GuardRuntime | None) -> Iterator[None]:
        """Route every event to ``sink`` and every guard check to ``runtime`` for the block
        (an agent replay): the process's own are set aside, then restored."""
        with self.lock:
            if self.pinned:
                raise RuntimeError("an agent replay is already running in this process")
            saved = (self.sink, self.runtime, self._settings)
            self.sink, self.runtime, self.pinned = sink, runtime, True
        try:
            yield
        finally:
            with self.lock:  # settings too: an entry point that calls configure() leaves no trace
                self.sink, self.runtime, self._settings = saved
                self.pinned = False

    def after_fork_in_child(self) -> None:
        self.lock = threading.RLock()
        self.runtime = None
        self.control = None
        self.sink = None  # the parent writes what it buffered; the child gets its own writer


def _start_runtime(current: Settings, capture_failure: Callable[[], str | None]) -> GuardRuntime:
    from .._contain.runtime import GuardRuntime

    guard = current.guard
    assert guard is not None
    try:  # SQLite is made on first use; Redis never is
        control: GuardControl = open_control(
            current.control,
            current.store,
            guard.timeout_s,
            create=not is_shared_server(current.control),
        )
    except ControlError as exc:  # fail closed: no control store, no guarded call
        raise Halted.store_unavailable(current.control or "sqlite", exc) from None
    redactor = current.redactor
    return GuardRuntime(
        guard,
        control,
        current.clock or time.time,
        scrub=lambda text: redactor.redact_text(text)[0],
        capture_failure=capture_failure,
    )


def _tuning() -> dict[str, Any]:
    """Writer tuning from the environment (used by crash tests and benchmarks)."""
    tuning: dict[str, Any] = {}
    if rows := os.environ.get("TRACEKIT_SEGMENT_ROWS"):
        tuning["rotate_rows"] = int(rows)
    if interval := os.environ.get("TRACEKIT_FLUSH_INTERVAL"):
        tuning["interval"] = float(interval)
    return tuning


PROCESS = Process()
os.register_at_fork(after_in_child=PROCESS.after_fork_in_child)
atexit.register(lambda: PROCESS.shutdown())


# -- the public functions -----------------------------------------------------------------------
def configure(
    store: str | os.PathLike[str] | None = None,
    release: Any = None,
    redact: Any = None,
    guard: Any = None,
    control: str | None = None,
    clock: Callable[[], float] | None = None,
) -> Settings:
    """Set the store, the release triple, redaction rules and the guard for this process.

    ``release`` is a ``tracekit.Release`` (or its fields as a dict); ``redact`` a
    ``tracekit.Redactor`` (or ``{"keys": [...], "patterns": [...]}``). ``guard`` is a
    ``tracekit.Guard`` (or its settings as a dict); None reads ``[tool.tracekit.guard]`` from the
    project's pyproject.toml (or a tracekit.toml) if there is one, and False turns the guard
    off. ``control`` is ``"sqlite"`` (the default, control.db in the store), ``"memory:"`` or
    ``"redis://host:port/db"``; ``clock`` is the guard's clock (seconds). Events recorded before
    the call are flushed to the store they were recorded for.
    """
    return PROCESS.configure(make_settings(store, release, redact, guard, control, clock))


def settings() -> Settings:
    """The process's settings (configured, or the defaults)."""
    return PROCESS.settings()


def flush(timeout: float | None = None) -> bool:
    """Block until every event recorded so far in this process is durable."""
    return PROCESS.flush(timeout)


def shutdown(timeout: float = 30.0) -> bool:
    """Flush, stop the writer and compact its segment into Parquet. Recording restarts on use."""
    return PROCESS.shutdown(timeout)
