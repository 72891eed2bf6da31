"""Runs and tools: the recording API an agent loop calls."""

from __future__ import annotations

import functools
import inspect
import itertools
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, TypeVar, overload

from .._base.encode import canonical_json
from .._base.ids import new_id
from .._contain.guard import Halted, RunGuard
from .._ledger.effects import Effect
from ..errors import ControlError
from . import settings as _config
from .settings import Release

__all__ = ["Run", "current_run", "run", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

_current: ContextVar[Run | None] = ContextVar("tracekit_run", default=None)
_entry: ContextVar[list[Any] | None] = ContextVar("tracekit_entry", default=None)
_now_us = time.time_ns
#: the agent replay in progress (set by tracekit._agentreplay), else None
_replay: Any = None
_WRITES_ATTRS = canonical_json({"writes": True})


def current_run() -> Run | None:
    """The run recording in this thread or asyncio task, if any."""
    return _current.get()


class Run:
    """One agent run: a context manager that records its decisions in order."""

    __slots__ = (
        "_calls", "_guard", "_parent", "_seq", "_served", "_static", "_token", "attrs", "depth",
        "parent_run_id", "release", "root_run_id", "run_id", "step", "tenant", "tools",
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
        self._served = _replay
        if _replay is not None:  # agent replay: the recorded run this one replays
            run_id = _replay.run_id_for(tenant, run_id, parent, attrs)
        self.run_id = run_id or new_id("run_")
        self.parent_run_id, self.root_run_id, self.depth = _lineage(self.run_id, parent)
        self.release = release or _config.settings().release
        self.attrs = attrs or {}
        self.tools = set(tools) if tools is not None else None
        self._parent = parent if isinstance(parent, Run) else None
        self._guard: RunGuard | None = None
        self.step = 0
        self._seq = itertools.count()
        self._calls = itertools.count(1)
        self._token: Token[Run | None] | None = None
        self._static = (
            self.run_id, self.parent_run_id, self.root_run_id, tenant, self.release.release_id,
            self.release.model, self.release.prompt, self.release.tools,
        )

    # -- the one place an event row is built ------------------------------------------------
    def _record(
        self, kind: str, name: str | None = None, call_id: str | None = None,
        args: str | None = None, output: str | None = None, status: str | None = None,
        error: str | None = None, tokens_in: int | None = None, tokens_out: int | None = None,
        cost_usd: float | None = None, latency_ms: float | None = None, attrs: str | None = None,
    ) -> None:
        _config.emit((
            self._static, next(self._seq), self.step, _now_us() // 1000, kind, name, call_id,
            args, output, status, error, tokens_in, tokens_out, cost_usd, latency_ms, attrs,
        ))

    # -- context management -----------------------------------------------------------------
    def __enter__(self) -> Run:
        runtime = _config.guard_runtime()
        if runtime is not None:
            self._guard = RunGuard(runtime, self, self.tools)
            if self._parent is None and self.parent_run_id is not None:
                self._adopt_lineage(self._guard)
            self._resume(self._guard)
        self._token = _current.set(self)
        attrs = canonical_json(self.attrs) if self.attrs else None
        self._record("run_start", status="running", attrs=attrs)
        entry = _entry.get()
        if entry is not None and not entry[2] and self.parent_run_id is None:
            entry[2] = True  # the entry point's input, for agent replay
            self._record("entry", name=entry[0], args=entry[1])
        if self._guard is not None:
            try:
                self._guard.check_start()
            except Halted as halt:
                self._refused(halt)
                self.__exit__(type(halt), halt, None)
                raise
        return self

    def _adopt_lineage(self, guard: RunGuard) -> None:
        """A parent given by id (from another process): its depth and root, if it was guarded."""
        try:
            lineage = guard.parent_lineage(str(self.parent_run_id))
        except Halted as exc:
            guard.rt.failure = exc.reason
            return
        if lineage is not None:
            self.depth, self.root_run_id = lineage
            self._static = (self._static[0], self._static[1], self.root_run_id, *self._static[3:])

    def _resume(self, guard: RunGuard) -> None:
        """A run_id seen before continues: its steps, spend and windows do not restart.

        The saved state is reconciled with the durable trace, which may be ahead of it (a
        process killed between two saves).
        """
        try:
            saved = guard.resume()
        except ControlError as exc:  # fail closed: a budget never restarts from zero
            raise Halted("store", guard.rt.control.url,
                         f"cannot resume run {self.run_id}: {exc}", signal="store_error") from None
        if not saved:
            return
        step, seq = int(saved.get("steps", 0)), int(saved.get("seq", 0))
        trace = _trace_so_far(self.run_id)
        if trace is not None:
            step, seq = max(step, trace["steps"]), max(seq, trace["seq"])
            guard.adopt_trace(trace)
        self.step = step
        self._seq = itertools.count(seq)

    def next_seq(self) -> int:
        """The seq the next event will get (without taking it)."""
        try:
            return int(self._seq.__reduce__()[1][0])  # type: ignore[index]
        except Exception:
            return 0

    def _refused(self, halt: Halted, name: str | None = None, args: str | None = None,
                 writes: bool = False) -> None:
        """Record the guard's refusal as a ``guard`` event (of a call: its tool and arguments)."""
        attrs = halt.as_attrs()
        if writes:
            attrs["writes"] = True
        self._record("guard", name=name or halt.signal, args=args, status=halt.status,
                     error=str(halt), attrs=canonical_json(attrs))

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._guard is not None:
            self._guard.finish()
        if exc is None:
            self._record("run_end", status="ok")
        else:
            self._record("run_end", status=_status_of(exc), error=_describe(exc))
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
        self._record("prompt", name=model or self.release.model, args=encoded,
                     attrs=canonical_json(attrs) if attrs else None)

    def model_output(
        self, content: Any, tool_calls: Any = None, usage: Any = None,
        cost_usd: float | None = None, model: str | None = None,
        latency_ms: float | None = None, **attrs: Any,
    ) -> None:
        """Record what the model answered; each model output starts a new step."""
        body = {"content": content} if tool_calls is None else {
            "content": content, "tool_calls": tool_calls}
        self._output(canonical_json(body), usage, cost_usd, model, latency_ms,
                     canonical_json(attrs) if attrs else None)

    def _output(self, encoded: str, usage: Any, cost_usd: float | None, model: str | None,
                latency_ms: float | None, attrs: str | None = None,
                call_id: str | None = None) -> None:
        """Record a model output (a new step), then let the guard see its cost."""
        self.step += 1
        tokens_in, tokens_out = _usage(usage)
        self._record("model_output", name=model or self.release.model, call_id=call_id,
                     output=encoded, status="ok", tokens_in=tokens_in, tokens_out=tokens_out,
                     cost_usd=cost_usd, latency_ms=latency_ms, attrs=attrs)
        if self._guard is not None:
            try:
                self._guard.after_model_output(_float_or_none(cost_usd))
            except Halted as halt:
                self._refused(halt)
                raise

    def progress(self, label: str, **attrs: Any) -> None:
        """Mark a closed loop or a real change of state (the runaway detectors count these)."""
        self._record("progress", name=str(label), status="ok",
                     attrs=canonical_json(attrs) if attrs else None)
        if self._guard is not None:
            self._guard.after_progress()

    def error(self, error: BaseException | str, **attrs: Any) -> None:
        """Record an error the agent handled (an unhandled one ends the run with it)."""
        text = _describe(error) if isinstance(error, BaseException) else str(error)
        self._record("error", status="error", error=text,
                     attrs=canonical_json(attrs) if attrs else None)

    def event(
        self, kind: str, name: str | None = None, *, args: Any = None, output: Any = None,
        attrs: Any = None, **columns: Any,
    ) -> None:
        """Record a raw event of ``kind`` (for integrations).

        ``args``, ``output`` and ``attrs`` are encoded as JSON unless already text; other
        keywords are the event's columns (call_id, status, error, tokens_in, cost_usd, ...).
        """
        self._record(
            kind, name, args=_as_json(args), output=_as_json(output), attrs=_as_json(attrs),
            **columns,
        )

    def call_tool(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call an undecorated ``fn`` as tool ``name``, recording the call and its result."""
        return self._invoke(ToolSpec(name), fn, None, args, kwargs)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything recorded so far (by any run in this process) is durable."""
        return _config.flush(timeout)

    # -- tools --------------------------------------------------------------------------------
    def _begin_call(
        self, spec: ToolSpec, params: tuple[str, ...] | None, args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[str, dict[str, Any], str]:
        named = _named(params, args, kwargs)
        encoded = canonical_json(named)
        if self._guard is not None:
            self._check(spec, named, encoded)
        call_id = f"call_{next(self._calls)}"
        self._record("tool_call", name=spec.name, call_id=call_id, args=encoded,
                     status="started", attrs=spec.attrs)
        return call_id, named, encoded

    def _check(self, spec: ToolSpec, named: dict[str, Any], encoded: str) -> None:
        guard = self._guard
        assert guard is not None
        try:
            guard.check_call(spec.name, encoded, spec.writes)
            if spec.bounds:
                guard.check_bounds(spec.name, spec.bounds, named)
            if spec.destination is not None:
                alert = guard.check_destination(spec.name, spec.destination_of(named))
                if alert is not None:
                    self._refused(alert, spec.name, encoded)
            guard.passed(spec.name, encoded)
        except Halted as halt:
            self._refused(halt, spec.name, encoded, spec.writes)
            raise

    def _end_call(self, name: str, call_id: str, started: float, result: Any) -> None:
        self._record("tool_result", name=name, call_id=call_id, output=canonical_json(result),
                     status="ok", latency_ms=(time.perf_counter() - started) * 1000.0)

    def _fail_call(self, name: str, call_id: str, started: float, exc: BaseException) -> None:
        self._record("tool_result", name=name, call_id=call_id, status=_status_of(exc),
                     error=_describe(exc), latency_ms=(time.perf_counter() - started) * 1000.0,
                     attrs=exception_attrs(exc))

    def _invoke(
        self, spec: ToolSpec, fn: Callable[..., Any], params: tuple[str, ...] | None,
        args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> Any:
        if self._served is not None:  # agent replay: served from the recording, never run
            return self._served.tool(self, spec, params, args, kwargs)
        call_id, named, encoded = self._begin_call(spec, params, args, kwargs)
        started = time.perf_counter()
        effect = self._reserve(spec, call_id, named, encoded, started) if spec.writes else None
        if effect is not None and effect[0] is None:
            return effect[1]  # a duplicate: the first outcome, the tool not run again
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if effect is not None:
                effect[0].failed(exc)
            self._fail_call(spec.name, call_id, started, exc)
            raise
        if effect is not None:
            effect[0].fired(result)
        self._end_call(spec.name, call_id, started, result)
        return result

    async def _ainvoke(
        self, spec: ToolSpec, fn: Callable[..., Any], params: tuple[str, ...] | None,
        args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> Any:
        if self._served is not None:
            return self._served.tool(self, spec, params, args, kwargs)
        call_id, named, encoded = self._begin_call(spec, params, args, kwargs)
        started = time.perf_counter()
        effect = self._reserve(spec, call_id, named, encoded, started) if spec.writes else None
        if effect is not None and effect[0] is None:
            return effect[1]
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            if effect is not None:
                effect[0].failed(exc)
            self._fail_call(spec.name, call_id, started, exc)
            raise
        if effect is not None:
            effect[0].fired(result)
        self._end_call(spec.name, call_id, started, result)
        return result

    def _reserve(self, spec: ToolSpec, call_id: str, named: dict[str, Any], encoded: str,
                 started: float) -> tuple[Effect | None, Any]:
        """Through the ledger: (effect, None) to run it; (None, first result) for a duplicate."""
        effect = Effect(self, spec, call_id, named, encoded)
        try:
            owner, result = effect.reserve()
        except BaseException as exc:
            self._fail_call(spec.name, call_id, started, exc)
            raise
        if owner:
            return effect, None
        self._record("tool_result", name=spec.name, call_id=call_id,
                     output=canonical_json(result), status="duplicate",
                     latency_ms=(time.perf_counter() - started) * 1000.0)
        return None, result

    def __repr__(self) -> str:
        return f"<tracekit.Run {self.run_id} tenant={self.tenant!r} step={self.step}>"


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


class ToolSpec:
    """What the decorator knows about a tool: its name, whether it writes, its argument bounds."""

    __slots__ = ("action", "amount", "attrs", "bounds", "compensate", "currency", "destination",
                 "idempotency_key", "name", "retry_on", "reversible", "writes")

    def __init__(self, name: str, writes: bool = False,
                 bounds: dict[str, tuple[float | None, float | None]] | None = None,
                 destination: str | Callable[..., Any] | None = None,
                 **ledger: Any) -> None:
        self.name = name
        self.writes = writes
        self.destination = destination
        self.idempotency_key = ledger.pop("idempotency_key", None)
        self.reversible = ledger.pop("reversible", None)
        self.compensate = ledger.pop("compensate", None)
        self.retry_on = tuple(ledger.pop("retry_on", ()) or ())
        self.amount = ledger.pop("amount", None)
        self.currency = ledger.pop("currency", None)
        self.action = ledger.pop("action", None)
        if ledger:
            raise TypeError(f"@tracekit.tool got unknown options {sorted(ledger)}; known: "
                            "idempotency_key, reversible, compensate, retry_on, amount, "
                            "currency, action")
        if self.compensate is not None:
            from .._ledger.compensate import register_compensator

            register_compensator(name, self.compensate)
        self.bounds = dict(bounds or {})
        for arg, pair in self.bounds.items():
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ValueError(f"bounds for {name}({arg}=...) must be a (low, high) pair; "
                                 "use None for an open end, e.g. {'amount': (0, 200)}")
        self.attrs = _WRITES_ATTRS if writes else None

    def destination_of(self, named: dict[str, Any]) -> str | None:
        """Where a write goes: the declared value, or the callable's answer for these args."""
        dest = self.destination
        if dest is None or not self.writes:
            return None
        if callable(dest):
            try:
                dest = dest(**named)
            except Exception as exc:
                return f"<destination unknown: {type(exc).__name__}>"
        return None if dest is None else str(dest)


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(*, name: str | None = None, writes: bool = False,
         bounds: dict[str, tuple[float | None, float | None]] | None = None,
         destination: str | Callable[..., Any] | None = None,
         ) -> Callable[[F], F]: ...
def tool(fn: F | None = None, /, *, name: str | None = None, writes: bool = False,
         bounds: dict[str, tuple[float | None, float | None]] | None = None,
         destination: str | Callable[..., Any] | None = None, **ledger: Any) -> Any:
    """Record every call of the decorated function made inside a run as a tool call.

    Outside a run the function is called as it is. ``writes=True`` marks a tool that changes the
    world (the guard and the side-effect ledger act on it). ``bounds`` limits numeric arguments,
    e.g. ``{"amount": (0, 200)}``: a call outside them is refused before it runs.
    ``destination`` (a value, or a callable of the arguments) names where a write goes, for the
    guard's first-seen-destination detector and the ledger.

    A write tool goes through the side-effect ledger: ``idempotency_key`` (a value or a callable
    of the arguments; default: the run, the tool and the canonical arguments) makes a repeated
    call return the first outcome instead of firing again; ``retry_on`` names the exceptions a
    retry may run again for; ``reversible``, ``compensate``, ``amount``, ``currency`` and
    ``action`` describe the effect for ``tracekit scope`` and compensation.
    """
    def decorate(func: F) -> F:
        return _wrap(func, ToolSpec(name or func.__name__, writes, bounds, destination, **ledger))
    return decorate(fn) if fn is not None else decorate


def _wrap(func: F, spec: ToolSpec) -> F:
    params = _param_names(func)
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            current = _current.get()
            if current is None:
                if _replay is not None:
                    _replay.outside_run(spec.name)
                return await func(*args, **kwargs)
            return await current._ainvoke(spec, func, params, args, kwargs)
        wrapper: Any = async_wrapper
    else:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current = _current.get()
            if current is None:
                if _replay is not None:
                    _replay.outside_run(spec.name)
                return func(*args, **kwargs)
            return current._invoke(spec, func, params, args, kwargs)
    wrapper.__tracekit_tool__ = {"name": spec.name, "writes": spec.writes}
    return wrapper  # type: ignore[no-any-return]


def _param_names(func: Callable[..., Any]) -> tuple[str, ...] | None:
    """Names for positional arguments; None when the signature cannot name them all."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in sig.parameters.values() if p.kind in kinds)


def _named(
    params: tuple[str, ...] | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    if not args:
        return kwargs
    if params is None or len(args) > len(params):
        named = dict(zip(params or (), args, strict=False))
        named["*args"] = list(args[len(named):])
    else:
        named = dict(zip(params, args, strict=False))
    named.pop("self", None)
    named.pop("cls", None)
    named.update(kwargs)
    return named


def _lineage(run_id: str, parent: Run | str | None) -> tuple[str | None, str, int]:
    if parent is None:
        return None, run_id, 0
    if isinstance(parent, Run):
        return parent.run_id, parent.root_run_id, parent.depth + 1
    if isinstance(parent, str) and parent:
        return parent, parent, 1
    raise TypeError("tracekit.run(parent=...) takes a Run or a run id")


def _usage(usage: Any) -> tuple[int | None, int | None]:
    """Token counts from an OpenAI- or Anthropic-style usage dict or object."""
    if usage is None:
        return None, None
    get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
    tokens_in = get("input_tokens")
    if tokens_in is None:
        tokens_in = get("prompt_tokens")
    tokens_out = get("output_tokens")
    if tokens_out is None:
        tokens_out = get("completion_tokens")
    return _int_or_none(tokens_in), _int_or_none(tokens_out)


_TRACE_SQL = """
SELECT max(step), max(seq) + 1, coalesce(sum(cost_usd), 0),
       count(*) FILTER (WHERE kind = 'progress'),
       greatest(coalesce(max(step) FILTER (WHERE kind = 'progress'), 0),
                coalesce((SELECT max(first) FROM (SELECT min(step) AS first FROM events
                          WHERE run_id = $1 AND kind = 'tool_call' GROUP BY name, args)), 0))
FROM events WHERE run_id = $1
"""


def _trace_so_far(run_id: str) -> dict[str, Any] | None:
    """What the durable trace shows of a run: steps, next seq, cost, progress marks, the last
    change of state and the tool calls made (it may be ahead of the guard's saved state)."""
    from .._query.views import connect

    _config.flush()
    try:
        with connect(_config.settings().store) as con:
            row = con.execute(_TRACE_SQL, [run_id]).fetchone()
            calls = con.execute("SELECT DISTINCT name, args FROM events WHERE run_id = ? AND "
                                "kind = 'tool_call'", [run_id]).fetchall()
    except Exception:  # the saved state alone, then
        return None
    if row is None or row[1] is None:
        return None
    return {"steps": int(row[0] or 0), "seq": int(row[1]), "cost": float(row[2]),
            "progress": int(row[3]), "last_change_step": int(row[4] or 0), "calls": calls}


def _as_json(value: Any) -> str | None:
    return value if value is None or type(value) is str else canonical_json(value)


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _status_of(exc: BaseException) -> str:
    return "halted" if getattr(exc, "tracekit_halt", False) else "error"


def exception_attrs(exc: BaseException) -> str:
    """Where a failure's type lives, so agent replay can raise the same type again."""
    kind = type(exc)
    return canonical_json({"exception": f"{kind.__module__}:{kind.__qualname__}"})


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
