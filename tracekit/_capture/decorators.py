"""What agent code calls so that agent replay can run it again exactly.

- ``@tracekit.entrypoint`` records the input of the function that starts a run, so a replay can
  call it with the same arguments;
- ``@tracekit.model`` records a model call (its prompt and its answer) and, in agent replay,
  serves the recorded answer instead of calling the model;
- ``tracekit.now()`` and ``tracekit.random()`` are the clock and the dice, recorded as ``clock``
  and ``random`` events and served from the recording in replay.

Outside a run each of them is the plain thing: the function is called, the time is now.
"""

from __future__ import annotations

import functools
import inspect
import random as _random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

from .._base.encode import canonical_json
from .._base.redact import MARKER
from . import run as _run

__all__ = ["entrypoint", "model", "now", "random"]

F = TypeVar("F", bound=Callable[..., Any])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    params = _run._param_names(fn)
    target = f"{fn.__module__}:{fn.__qualname__}"

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        named = _run._named(params, args, kwargs)
        if secrets:
            named = {k: MARKER if k in secrets else v for k, v in named.items()}
        return _run._entry.set([target, canonical_json(named), False])

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_entry(*args: Any, **kwargs: Any) -> Any:
            token = bind(args, kwargs)
            try:
                return await fn(*args, **kwargs)
            finally:
                _run._entry.reset(token)
        return async_entry  # type: ignore[return-value]

    @functools.wraps(fn)
    def entry(*args: Any, **kwargs: Any) -> Any:
        token = bind(args, kwargs)
        try:
            return fn(*args, **kwargs)
        finally:
            _run._entry.reset(token)
    return entry  # type: ignore[return-value]


class ModelSpec:
    """What ``@tracekit.model`` knows: the model's name and how to read cost and usage."""

    __slots__ = ("cost", "decode", "name", "params", "usage")

    def __init__(self, fn: Callable[..., Any], name: str | None,
                 cost: Callable[[Any], float | None] | None,
                 usage: Callable[[Any], Any] | None,
                 decode: Callable[[Any], Any] | None) -> None:
        self.name = name
        self.params = _run._param_names(fn)
        self.cost = cost
        self.usage = usage or _usage_of
        self.decode = decode

    def prompt_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The prompt recorded for a call: its ``messages`` argument, else all its arguments."""
        named = _run._named(self.params, args, kwargs)
        return canonical_json(named.get("messages", named))

    def cost_of(self, result: Any) -> float | None:
        return None if self.cost is None else _run._float_or_none(self.cost(result))


@overload
def model(fn: F, /) -> F: ...
@overload
def model(*, name: str | None = None, cost: Callable[[Any], float | None] | None = None,
          usage: Callable[[Any], Any] | None = None,
          decode: Callable[[Any], Any] | None = None) -> Callable[[F], F]: ...
def model(fn: F | None = None, /, *, name: str | None = None,
          cost: Callable[[Any], float | None] | None = None,
          usage: Callable[[Any], Any] | None = None,
          decode: Callable[[Any], Any] | None = None) -> Any:
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
                current = _run._current.get()
                if current is None:
                    return await func(*args, **kwargs)
                if current._served is not None:  # agent replay: the recorded answer
                    return current._served.model(current, spec, spec.prompt_of(args, kwargs))
                call_id = _begin_model(current, spec, args, kwargs)
                started = time.perf_counter()
                try:
                    result = await func(*args, **kwargs)
                except Exception as exc:
                    _model_failed(current, spec, call_id, exc)
                    raise
                return _end_model(current, spec, call_id, result, started)
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current = _run._current.get()
            if current is None:
                return func(*args, **kwargs)
            if current._served is not None:
                return current._served.model(current, spec, spec.prompt_of(args, kwargs))
            call_id = _begin_model(current, spec, args, kwargs)
            started = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                _model_failed(current, spec, call_id, exc)
                raise
            return _end_model(current, spec, call_id, result, started)
        return wrapper  # type: ignore[return-value]
    return decorate(fn) if fn is not None else decorate


def _begin_model(run: _run.Run, spec: ModelSpec, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> str:
    """Record the prompt of a model call; its call id links the answer."""
    call_id = f"call_{next(run._calls)}"
    run._record("prompt", name=spec.name or run.release.model, call_id=call_id,
                args=spec.prompt_of(args, kwargs))
    return call_id


def _end_model(run: _run.Run, spec: ModelSpec, call_id: str, result: Any,
               started: float) -> Any:
    record_output(run, spec, call_id, result, canonical_json(result),
                  (time.perf_counter() - started) * 1000.0)
    return result


def _model_failed(run: _run.Run, spec: ModelSpec, call_id: str, exc: BaseException) -> None:
    """A model call that raised: an ``error`` event with its call id (replay raises it again)."""
    run._record("error", name=spec.name or run.release.model, call_id=call_id, status="error",
                error=_run._describe(exc), attrs=_run.exception_attrs(exc))


def record_output(run: _run.Run, spec: ModelSpec, call_id: str, result: Any, encoded: str,
                  latency_ms: float | None) -> None:
    """The model output event of a model call (recorded or served)."""
    run._output(encoded, spec.usage(result), spec.cost_of(result), spec.name, latency_ms,
                call_id=call_id)


def _usage_of(result: Any) -> Any:
    if isinstance(result, dict):
        return result.get("usage")
    return getattr(result, "usage", None)


def now() -> datetime:
    """The current time (UTC), recorded in the run as a ``clock`` event; replay serves it."""
    current = _run._current.get()
    replay = _run._replay
    if replay is not None:
        return _from_us(replay.draw(current, "clock"))
    us = time.time_ns() // 1000
    if current is not None:
        current._record("clock", name="now", output=str(us))
    return _from_us(us)


def random() -> float:
    """A random float in [0, 1), recorded as a ``random`` event; replay serves it."""
    current = _run._current.get()
    replay = _run._replay
    if replay is not None:
        return float(replay.draw(current, "random"))
    value = _random.random()
    if current is not None:
        current._record("random", name="random", output=repr(value))
    return value


def _from_us(us: int | float) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))
