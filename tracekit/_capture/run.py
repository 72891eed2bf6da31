"""Runs: the recording API an agent loop calls, with the guard checked before every tool call.

A run records its decisions in order (``seq`` gap-free, ``step`` = model outputs so far) as
event rows handed to the process's sink. When a guard is configured each tool call goes
through the run's guard first (a refusal is recorded as a ``guard`` event and raised), and a
write tool through the side-effect ledger.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from .._base.encode import canonical_json
from .._base.ids import new_id
from .._base.vocab import EventKind, EventStatus
from .._contain.runguard import Call, RunGuard
from .._ledger.effects import Effect
from ..errors import ControlError, Halted
from .resume import trace_so_far
from .rows import Deferred, RunStatic
from .settings import Release
from .specs import ToolSpec, float_or_none, named_args, token_usage
from .state import PROCESS

__all__ = ["Run", "current_run", "exception_attrs", "run"]

_current: ContextVar[Run | None] = ContextVar("tracekit_run", default=None)


@dataclass
class EntryInput:
    """What ``@tracekit.entrypoint`` bound: the function, its arguments (JSON), and whether the
    first run it opened has recorded them yet."""

    target: str
    args: str
    recorded: bool = False


entry: ContextVar[EntryInput | None] = ContextVar("tracekit_entry", default=None)
_now_us = time.time_ns
_perf = time.perf_counter
# the hot paths' words, looked up once (an enum member's attribute lookup costs ~50 ns)
_TOOL_CALL, _TOOL_RESULT, _GUARD = EventKind.TOOL_CALL, EventKind.TOOL_RESULT, EventKind.GUARD
_MODEL_OUTPUT, _PROGRESS = EventKind.MODEL_OUTPUT, EventKind.PROGRESS
_OK, _STARTED, _DUPLICATE = EventStatus.OK, EventStatus.STARTED, EventStatus.DUPLICATE
_ERROR = EventStatus.ERROR


def current_run() -> Run | None:
    """The run recording in this thread or asyncio task, if any."""
    return _current.get()


class Run:
    """One agent run: a context manager that records its decisions in order."""

    __slots__ = (
        "_calls",
        "_guard",
        "_parent",
        "_seq",
        "_served",
        "_static",
        "_token",
        "attrs",
        "depth",
        "parent_run_id",
        "release",
        "release_id",
        "root_run_id",
        "run_id",
        "step",
        "tenant",
        "tools",
    )

    def __init__(
        self,
        tenant: str,
        run_id: str | None = None,
        parent: Run | str | None = None,
        release: Release | None = None,
        attrs: dict[str, Any] | None = None,
        tools: set[str] | None = None,
    ) -> None:
        if not isinstance(tenant, str) or not tenant:
            raise ValueError("tracekit.run(tenant=...) needs a non-empty tenant name")
        self.tenant = tenant
        self._served = replay = PROCESS.replay
        if replay is not None:  # agent replay: the recorded run this one replays
            run_id = replay.run_id_for(tenant, run_id, parent, attrs)
        self.run_id = run_id or new_id("run_")
        self.parent_run_id, self.root_run_id, self.depth = _lineage(self.run_id, parent)
        self.release = release or PROCESS.settings().release
        self.release_id = self.release.release_id
        self.attrs = attrs or {}
        self.tools = set(tools) if tools is not None else None
        self._parent = parent if isinstance(parent, Run) else None
        self._guard: RunGuard | None = None
        self.step = 0
        self._seq = 0
        self._calls = itertools.count(1)
        self._token: Token[Run | None] | None = None
        self._static: RunStatic = (
            self.run_id,
            self.parent_run_id,
            self.root_run_id,
            tenant,
            self.release_id,
            self.release.model,
            self.release.prompt,
            self.release.tools,
        )

    # -- every event of the run goes through here -------------------------------------------
    def _record(
        self,
        kind: str,
        name: str | None = None,
        call_id: str | None = None,
        args: str | Deferred | None = None,
        output: str | Deferred | None = None,
        status: str | None = None,
        error: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        cost_usd: float | None = None,
        latency_ms: float | None = None,
        attrs: str | Deferred | None = None,
    ) -> None:
        """Append one event row to the process's sink (JSON columns as text, or ``Deferred``
        to be encoded by the writer)."""
        seq = self._seq
        self._seq = seq + 1
        # event_row's tuple, built inline: this runs for every event
        ts = _now_us() // 1000
        row = (self._static, seq, self.step, ts, kind, name, call_id, args, output, status,
               error, tokens_in, tokens_out, cost_usd, latency_ms, attrs)  # fmt: skip
        PROCESS.emit(row)

    def next_seq(self) -> int:
        """The seq the next event will get (without taking it)."""
        return self._seq

    def rebind(self, run_id: str) -> None:
        """This run replays another recorded run (agent replay matched it again)."""
        self.run_id = run_id
        self._static = (run_id, *self._static[1:])
        if self._guard is not None:
            self._guard.rebind(run_id)

    # -- context management -----------------------------------------------------------------
    def __enter__(self) -> Run:
        runtime = PROCESS.guard_runtime()
        if runtime is not None:
            self._guard = RunGuard(runtime, self, self.tools)
            if self._parent is None and self.parent_run_id is not None:
                self._adopt_lineage(self._guard)
            self._resume(self._guard)
        self._token = _current.set(self)
        attrs = canonical_json(self.attrs) if self.attrs else None
        in_force = runtime.settings_json if runtime is not None else None  # for the manifest
        self._record(EventKind.RUN_START, status=EventStatus.RUNNING, output=in_force, attrs=attrs)
        self._record_entry()
        if self._guard is not None:
            try:
                self._guard.start()
            except Halted as halt:
                self._refused(halt)
                self.__exit__(type(halt), halt, None)
                raise
        return self

    def _record_entry(self) -> None:
        found = entry.get()
        if found is not None and not found.recorded and self.parent_run_id is None:
            found.recorded = True  # the entry point's input, for agent replay
            self._record(EventKind.ENTRY, name=found.target, args=found.args)

    def _adopt_lineage(self, guard: RunGuard) -> None:
        """A parent given by id (from another process): its depth and root, if it was guarded."""
        try:
            lineage = guard.parent_lineage(str(self.parent_run_id))
        except Halted as exc:
            guard.rt.fail(exc.reason)
            return
        if lineage is not None:
            self.depth, self.root_run_id = lineage
            self._static = (*self._static[:2], self.root_run_id, *self._static[3:])

    def _resume(self, guard: RunGuard) -> None:
        """A run_id seen before continues: its steps, spend and windows do not restart.

        The saved state is reconciled with the durable trace, which may be ahead of it (a
        process killed between two saves).
        """
        try:
            saved = guard.resume()
        except ControlError as exc:  # fail closed: a budget never restarts from zero
            raise Halted.store_unavailable(
                guard.rt.control.url, exc, f"cannot resume run {self.run_id}"
            ) from None
        if not saved:
            return
        step, seq = int(saved.get("steps", 0)), int(saved.get("seq", 0))
        trace = trace_so_far(self.run_id)
        if trace is not None:
            step, seq = max(step, trace.steps), max(seq, trace.seq)
            guard.adopt_trace(trace)
        self.step = step
        self._seq = seq

    def _refused(
        self, halt: Halted, name: str | None = None, args: str | None = None, writes: bool = False
    ) -> None:
        """Record the guard's refusal as a ``guard`` event (of a call: its tool and arguments)."""
        attrs = halt.as_attrs()
        if writes:
            attrs["writes"] = True
        self._record(
            _GUARD,
            name=name or halt.signal,
            args=args,
            status=halt.status,
            error=str(halt),
            attrs=canonical_json(attrs),
        )

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._guard is not None:
            self._guard.finish()
        if exc is None:
            self._record(EventKind.RUN_END, status=_OK)
        else:
            self._record(EventKind.RUN_END, status=status_of(exc), error=describe(exc))
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decisions --------------------------------------------------------------------------
    def prompt(self, messages: Any, model: str | None = None, **attrs: Any) -> None:
        """Record what was sent to the model."""
        encoded = canonical_json(messages)
        if self._served is not None:
            self._served.prompt(self, encoded)
        self._record(
            EventKind.PROMPT,
            name=model or self.release.model,
            args=encoded,
            attrs=canonical_json(attrs) if attrs else None,
        )

    def model_output(
        self,
        content: Any,
        tool_calls: Any = None,
        usage: Any = None,
        cost_usd: float | None = None,
        model: str | None = None,
        latency_ms: float | None = None,
        **attrs: Any,
    ) -> None:
        """Record what the model answered; each model output starts a new step."""
        body = (
            {"content": content}
            if tool_calls is None
            else {"content": content, "tool_calls": tool_calls}
        )
        self._output(
            canonical_json(body),
            usage,
            cost_usd,
            model,
            latency_ms,
            canonical_json(attrs) if attrs else None,
        )

    def _output(
        self,
        encoded: str,
        usage: Any,
        cost_usd: float | None,
        model: str | None,
        latency_ms: float | None,
        attrs: str | None = None,
        call_id: str | None = None,
    ) -> None:
        """Record a model output (a new step), then let the guard see its cost."""
        tokens_in, tokens_out = token_usage(usage)
        self._counted_output(
            encoded, tokens_in, tokens_out, cost_usd, model, latency_ms, attrs, call_id
        )

    def _counted_output(
        self,
        encoded: Any,
        tokens_in: int | None,
        tokens_out: int | None,
        cost_usd: float | None,
        model: str | None,
        latency_ms: float | None,
        attrs: Any,
        call_id: str | None,
    ) -> None:
        """``_output`` with the tokens already counted (``encoded`` and ``attrs`` JSON text or
        ``Deferred``)."""
        self.step = step = self.step + 1
        seq = self._seq
        self._seq = seq + 1
        # _record's row, built here: this runs after every model call
        row = (self._static, seq, step, _now_us() // 1000, _MODEL_OUTPUT,
               model or self.release.model, call_id, None, encoded, _OK, None, tokens_in,
               tokens_out, cost_usd, latency_ms, attrs)  # fmt: skip
        PROCESS.emit(row)
        if self._guard is not None:
            if type(cost_usd) is not float:
                cost_usd = float_or_none(cost_usd)
            try:
                self._guard.after_model_output(cost_usd)
            except Halted as halt:
                self._refused(halt)
                raise

    def progress(self, label: str, **attrs: Any) -> None:
        """Mark a closed loop or a real change of state (the runaway detectors count these)."""
        encoded = canonical_json(attrs) if attrs else None
        self._record(_PROGRESS, str(label), None, None, None, _OK, None, None, None, None, None,
                     encoded)  # fmt: skip
        if self._guard is not None:
            self._guard.after_progress()

    def error(self, error: BaseException | str, **attrs: Any) -> None:
        """Record an error the agent handled (an unhandled one ends the run with it)."""
        text = describe(error) if isinstance(error, BaseException) else str(error)
        self._record(
            EventKind.ERROR,
            status=EventStatus.ERROR,
            error=text,
            attrs=canonical_json(attrs) if attrs else None,
        )

    def event(
        self,
        kind: str,
        name: str | None = None,
        *,
        args: Any = None,
        output: Any = None,
        attrs: Any = None,
        **columns: Any,
    ) -> None:
        """Record a raw event of ``kind`` (for integrations).

        ``args``, ``output`` and ``attrs`` are encoded as JSON unless already text; other
        keywords are the event's columns (call_id, status, error, tokens_in, cost_usd, ...).
        """
        if columns:
            self._record(
                kind,
                name,
                args=_as_json(args),
                output=_as_json(output),
                attrs=_as_json(attrs),
                **columns,
            )
            return
        self._record(kind, name, None, _as_json(args), _as_json(output), None, None, None, None,
                     None, None, _as_json(attrs))  # fmt: skip

    def call_tool(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call an undecorated ``fn`` as tool ``name``, recording the call and its result."""
        spec = _PLAIN_TOOLS.get(name) or _PLAIN_TOOLS.setdefault(name, ToolSpec(name))
        return self._invoke(spec, fn, None, args, kwargs)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything recorded so far (by any run in this process) is durable."""
        return PROCESS.flush(timeout)

    # -- tools: one core for sync and async tools ------------------------------------------------
    def _invoke(
        self,
        spec: ToolSpec,
        fn: Callable[..., Any],
        params: tuple[str, ...] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if self._served is not None:  # agent replay: served from the recording, never run
            return self._served.tool(self, spec, params, args, kwargs)
        call_id, effect, started = self._start_call(spec, params, args, kwargs)
        if effect is _DONE:
            return started  # a duplicate write: the first outcome
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._failed(spec, call_id, started, effect, exc)
            raise
        return self._returned(spec, call_id, started, effect, result)

    async def _ainvoke(
        self,
        spec: ToolSpec,
        fn: Callable[..., Any],
        params: tuple[str, ...] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if self._served is not None:
            return self._served.tool(self, spec, params, args, kwargs)
        call_id, effect, started = self._start_call(spec, params, args, kwargs)
        if effect is _DONE:
            return started
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._failed(spec, call_id, started, effect, exc)
            raise
        return self._returned(spec, call_id, started, effect, result)

    def _start_call(
        self,
        spec: ToolSpec,
        params: tuple[str, ...] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[str, Any, Any]:
        """Up to the tool running: checked, recorded, reserved. Returns (call id, the ledger's
        effect or None, when it started); for a duplicate write (call id, _DONE, its result)."""
        named = named_args(params, args, kwargs)
        encoded = canonical_json(named)
        if self._guard is not None:
            self.check(spec, named, encoded)
        call_id = f"call_{next(self._calls)}"
        self._record(_TOOL_CALL, spec.name, call_id, encoded, None, _STARTED, None, None, None,
                     None, None, spec.attrs)  # fmt: skip
        started = _perf()
        if not spec.writes:
            return call_id, None, started
        return self._reserve(spec, call_id, named, encoded, started)

    def _reserve(
        self, spec: ToolSpec, call_id: str, named: dict[str, Any], encoded: str, started: float
    ) -> tuple[str, Any, Any]:
        """A write goes through the ledger first; a duplicate returns the first outcome."""
        try:  # not yet this call's effect: a failure here fires nothing, settles nothing
            effect = _effect(self, spec, call_id, named, encoded)
            owner, first = effect.reserve()
        except BaseException as exc:
            self._failed(spec, call_id, started, None, exc)
            raise
        if owner:
            return call_id, effect, started
        self.result(spec.name, call_id, started, canonical_json(first), _DUPLICATE)
        return call_id, _DONE, first

    def _returned(
        self, spec: ToolSpec, call_id: str, started: float, effect: Effect | None, result: Any
    ) -> Any:
        if effect is not None:
            effect.fired(result)
        latency_ms = (_perf() - started) * 1000.0  # what result() records, inline: every call
        self._record(_TOOL_RESULT, spec.name, call_id, None, canonical_json(result), _OK, None,
                     None, None, None, latency_ms, None)  # fmt: skip
        guard = self._guard
        if guard is not None and guard.wants_results:
            guard.after_result(spec.name, True)
        return result

    def _failed(
        self,
        spec: ToolSpec,
        call_id: str,
        started: float,
        effect: Effect | None,
        exc: BaseException,
    ) -> None:
        if effect is not None:
            effect.failed(exc)
        self.result(
            spec.name, call_id, started, None, status_of(exc), describe(exc), exception_attrs(exc)
        )

    def check(self, spec: ToolSpec, named: dict[str, Any], encoded: str) -> None:
        """The guard, before the tool runs: a refusal is recorded, then raised."""
        guard = self._guard
        assert guard is not None
        try:
            alerts = guard.check_call(Call(spec.name, encoded, spec.writes, spec, named))
            for alert in alerts or ():
                self._refused(alert, spec.name, encoded)
        except Halted as halt:
            self._refused(halt, spec.name, encoded, spec.writes)
            raise

    def result(
        self,
        name: str,
        call_id: str,
        started: float | None,
        output: str | None,
        status: str = _OK,
        error: str | None = None,
        attrs: str | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Record a tool's result (and let the guard see whether it failed)."""
        if started is not None:
            latency_ms = (_perf() - started) * 1000.0
        self._record(_TOOL_RESULT, name, call_id, None, output, status, error, None, None, None,
                     latency_ms, attrs)  # fmt: skip
        guard = self._guard
        if guard is not None and guard.wants_results:
            guard.after_result(name, status != _ERROR)

    def __repr__(self) -> str:
        return f"<tracekit.Run {self.run_id} tenant={self.tenant!r} step={self.step}>"


_PLAIN_TOOLS: dict[str, ToolSpec] = {}  # run.call_tool's tools: one declaration per name
_DONE = object()  # the call is done without running: its first outcome is known


def _effect(run: Run, spec: ToolSpec, call_id: str, named: dict[str, Any], encoded: str) -> Effect:
    try:
        control = PROCESS.ledger_control()
    except ControlError as exc:  # no reservation, no effect: fail closed
        raise Halted.store_unavailable(
            None, exc, "control store unavailable for an idempotent write"
        ) from None
    return Effect(
        run,
        spec,
        call_id,
        named,
        encoded,
        control=control,
        ledger=PROCESS.recorder().ledger,  # type: ignore[attr-defined]
        redactor=PROCESS.settings().redactor,
    )


def run(
    tenant: str,
    run_id: str | None = None,
    parent: Run | str | None = None,
    *,
    release: Release | None = None,
    tools: set[str] | None = None,
    **attrs: Any,
) -> Run:
    """Start recording a run: ``with tracekit.run(tenant="acme") as run: ...``.

    ``parent`` (a Run or a run id) makes this a sub-agent run; ``release`` overrides the
    configured release for this run (a canary); ``tools`` is the set of tools the run may use
    (least privilege: the guard refuses any other); other keyword arguments are kept in ``attrs``.
    """
    return Run(tenant, run_id=run_id, parent=parent, release=release, attrs=attrs, tools=tools)


def _lineage(run_id: str, parent: Run | str | None) -> tuple[str | None, str, int]:
    if parent is None:
        return None, run_id, 0
    if isinstance(parent, Run):
        return parent.run_id, parent.root_run_id, parent.depth + 1
    if isinstance(parent, str) and parent:
        return parent, parent, 1
    raise TypeError("tracekit.run(parent=...) takes a Run or a run id")


def _as_json(value: Any) -> str | None:
    return value if value is None or type(value) is str else canonical_json(value)


def status_of(exc: BaseException) -> str:
    return EventStatus.HALTED if getattr(exc, "tracekit_halt", False) else EventStatus.ERROR


def exception_attrs(exc: BaseException) -> str:
    """Where a failure's type lives, so agent replay can raise the same type again."""
    kind = type(exc)
    return canonical_json({"exception": f"{kind.__module__}:{kind.__qualname__}"})


def describe(exc: BaseException | str) -> str:
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
