"""The decorators agent code puts on its tools, its model calls and its entry point.

- ``@tracekit.tool`` records each call made inside a run (guarded, and through the side-effect
  ledger for a write tool);
- ``@tracekit.model`` records a model call (its prompt and its answer) and, in agent replay,
  serves the recorded answer instead of calling the model;
- ``@tracekit.entrypoint`` records the input of the function that starts a run, so a replay
  can call it again with the same arguments.

Outside a run each of them calls the function as it is. A sync and an async function get the
same wrapper around one shared core.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .._base.encode import canonical_json
from .._base.redact import MARKER
from .._base.vocab import EventKind, EventStatus
from .run import EntryInput, Run, _current, describe, entry, exception_attrs
from .specs import Bounds, ModelSpec, ToolSpec, named_args, param_names
from .state import PROCESS

_PROMPT = EventKind.PROMPT

__all__ = ["entrypoint", "model", "record_output", "tool"]

F = TypeVar("F", bound=Callable[..., Any])


# -- @tracekit.tool ---------------------------------------------------------------------------
@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *,
    name: str | None = None,
    writes: bool = False,
    bounds: Bounds | None = None,
    destination: str | Callable[..., Any] | None = None,
    idempotency_key: str | Callable[..., Any] | None = None,
    reversible: bool | None = None,
    compensate: Callable[..., Any] | str | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    amount: float | Callable[..., Any] | None = None,
    currency: str | Callable[..., Any] | None = None,
    action: str | None = None,
) -> Callable[[F], F]: ...
def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    writes: bool = False,
    bounds: Bounds | None = None,
    destination: str | Callable[..., Any] | None = None,
    **ledger: Any,
) -> Any:
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
        return _wrap_tool(
            func, ToolSpec(name or func.__name__, writes, bounds, destination, **ledger)
        )

    return decorate(fn) if fn is not None else decorate


def _wrap_tool(func: F, spec: ToolSpec) -> F:
    params = param_names(func)

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            run = _current.get()
            if run is None:
                _outside_run(spec)
                return await func(*args, **kwargs)
            return await run._ainvoke(spec, func, params, args, kwargs)

        wrapper: Any = async_wrapper
    else:

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = _current.get()
            if run is None:
                _outside_run(spec)
                return func(*args, **kwargs)
            return run._invoke(spec, func, params, args, kwargs)

    wrapper.__tracekit_tool__ = {"name": spec.name, "writes": spec.writes}
    return wrapper  # type: ignore[no-any-return]


def _outside_run(spec: ToolSpec) -> None:
    """Outside a run a tool is the plain function; in agent replay that is a divergence."""
    if PROCESS.replay is not None:
        PROCESS.replay.outside_run(spec.name)


# -- @tracekit.model ------------------------------------------------------------------------------
@overload
def model(fn: F, /) -> F: ...
@overload
def model(
    *,
    name: str | None = None,
    cost: Callable[[Any], float | None] | None = None,
    usage: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
) -> Callable[[F], F]: ...
def model(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    cost: Callable[[Any], float | None] | None = None,
    usage: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
) -> Any:
    """Record each call of the decorated model function inside a run: its prompt (the
    ``messages`` argument, or all the arguments), then its answer as the model output.

    ``cost`` reads the cost in USD from an answer (the guard's cost bounds count it); ``usage``
    reads its token usage (default: the answer's ``usage``). In agent replay the function is not
    called: the recorded answer is served, decoded from JSON by ``decode`` (e.g.
    ``ChatCompletion.model_validate``) when given.
    """

    def decorate(func: F) -> F:
        spec = ModelSpec(func, name, cost, usage, decode)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = ModelCall.start(spec, args, kwargs)
                if call is None or call.done:
                    return await func(*args, **kwargs) if call is None else call.result
                try:
                    result = await func(*args, **kwargs)
                except Exception as exc:
                    call.failed(exc)
                    raise
                return call.answered(result)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = ModelCall.start(spec, args, kwargs)
            if call is None or call.done:
                return func(*args, **kwargs) if call is None else call.result
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                call.failed(exc)
                raise
            return call.answered(result)

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


class ModelCall:
    """One model call in flight: its prompt recorded, its answer (or error) to come."""

    __slots__ = ("call_id", "done", "result", "run", "spec", "started")

    def __init__(self, run: Run, spec: ModelSpec, call_id: str) -> None:
        self.run, self.spec, self.call_id = run, spec, call_id
        self.done, self.result = False, None
        self.started = time.perf_counter()

    @classmethod
    def start(
        cls, spec: ModelSpec, args: tuple[Any, ...], kwargs: dict[str, Any], run: Run | None = None
    ) -> ModelCall | None:
        """None outside a run (``run``: the current one, when the caller has it); a done call
        in agent replay (the recorded answer)."""
        if run is None:
            run = _current.get()
            if run is None:
                return None
        if run._served is not None:  # agent replay: the recorded answer
            call = cls(run, spec, "")
            prompt = spec.prompt_of(args, kwargs)
            call.done, call.result = True, run._served.model(run, spec, prompt)
            return call
        call = cls(run, spec, f"call_{next(run._calls)}")
        name = spec.name or run.release.model
        run._record(_PROMPT, name, call.call_id, spec.prompt_row(args, kwargs))
        return call

    def answered(self, result: Any) -> Any:
        record_output(
            self.run,
            self.spec,
            self.call_id,
            result,
            canonical_json(result),
            (time.perf_counter() - self.started) * 1000.0,
        )
        return result

    def failed(self, exc: BaseException) -> None:
        """A model call that raised: an ``error`` event with its call id (replay raises it
        again)."""
        run = self.run
        run._record(
            EventKind.ERROR,
            name=self.spec.name or run.release.model,
            call_id=self.call_id,
            status=EventStatus.ERROR,
            error=describe(exc),
            attrs=exception_attrs(exc),
        )


def record_output(
    run: Run, spec: ModelSpec, call_id: str, result: Any, encoded: Any, latency_ms: float | None
) -> None:
    """The model output event of a model call (recorded or served); ``encoded`` is its JSON
    text or a ``Deferred`` of it."""
    tokens_in, tokens_out, cost, attrs = spec.measure(result)
    run._counted_output(encoded, tokens_in, tokens_out, cost, spec.name, latency_ms, attrs, call_id)


# -- @tracekit.entrypoint ---------------------------------------------------------------------
@overload
def entrypoint(fn: F, /) -> F: ...
@overload
def entrypoint(*, secrets: tuple[str, ...] = ()) -> Callable[[F], F]: ...
def entrypoint(fn: F | None = None, /, *, secrets: tuple[str, ...] = ()) -> Any:
    """Record the arguments the decorated function was called with in the first run it opens.

    ``tracekit make-test NAME --entrypoint module:function`` calls it again with them (decoded
    from JSON) to replay the incident through the real agent code. The arguments named in
    ``secrets`` (say an API key) are recorded redacted, as are those the redaction rules catch;
    in replay the function gets the redaction marker for them.
    """
    if fn is None:
        return lambda func: _entrypoint(func, frozenset(secrets))
    return _entrypoint(fn, frozenset(secrets))


def _entrypoint(fn: F, secrets: frozenset[str]) -> F:
    params = param_names(fn)
    target = f"{fn.__module__}:{fn.__qualname__}"

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        named = named_args(params, args, kwargs)
        if secrets:
            named = {k: MARKER if k in secrets else v for k, v in named.items()}
        return entry.set(EntryInput(target, canonical_json(named)))

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_entry(*args: Any, **kwargs: Any) -> Any:
            token = bind(args, kwargs)
            try:
                return await fn(*args, **kwargs)
            finally:
                entry.reset(token)

        return async_entry  # type: ignore[return-value]

    @functools.wraps(fn)
    def sync_entry(*args: Any, **kwargs: Any) -> Any:
        token = bind(args, kwargs)
        try:
            return fn(*args, **kwargs)
        finally:
            entry.reset(token)

    return sync_entry  # type: ignore[return-value]
