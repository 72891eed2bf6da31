"""LiteLLM's chat completions (``litellm.completion`` / ``acompletion``), recorded and guarded.

LiteLLM answers in the OpenAI chat format whatever the provider, so this is the chat
completions description of ``calls.py`` with two differences: the cost is LiteLLM's own
(``response_cost``, which knows its providers' prices and a deployment's custom ones), the
shipped price table only when LiteLLM has none; and the recorded answer carries that cost in
its usage (as LiteLLM's streamed usage does), so agent replay counts the same spend.

Why not LiteLLM's callbacks: in litellm 1.110 a ``CustomLogger``'s success events run after
the call has returned (a thread pool for ``completion``, a task for ``acompletion``; dropped
when the pool is full), so an output recorded there lands after the agent's next tool call,
and a step or cost bound it trips cannot stop the agent. Recording happens here, in the
caller's own path, before the answer is handed back.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from .._base.encode import canonical_json
from .._capture.decorators import ModelCall, record_output
from .._capture.rows import Deferred
from .._capture.run import current_run
from .calls import (
    _STREAMS,
    Api,
    Usage,
    _ready,
    _RecordedAsyncStream,
    _RecordedStream,
    _Spec,
    _start,
    field,
)
from .openai import chat_stream_tool_calls, chat_tool_calls
from .prices import Prices

__all__ = ["in_wrapper", "wrap_completion"]

#: set while a call made through the wrapper is in litellm's hands, so the pre-call rule
#: (``tracekit.integrations.litellm.TracekitLogger``) leaves it to the wrapper's own check
in_wrapper: ContextVar[bool] = ContextVar("tracekit_litellm_call", default=False)
_POSITIONAL = ("model", "messages")


class _LiteLLMSpec(_Spec):
    """The chat completions spec, costed by LiteLLM first."""

    __slots__ = ()

    def price_model(self) -> str | None:
        return _table_model(self.name)

    def costed(self, result: Any, counts: Usage) -> float | None:
        chunks = getattr(result, "tracekit_chunks", None) if type(result) in _STREAMS else None
        usage = field(result, "usage") if chunks is None else _last_usage(chunks)
        cost = field(usage, "cost")  # a stream's own, or the one recorded with the answer
        if cost is None and chunks is None:
            cost = (getattr(result, "_hidden_params", None) or {}).get("response_cost")
        if cost is not None:
            return float(cost)
        return self._price(*counts)

    def _decode(self, value: Any) -> Any:
        decoded = super()._decode(value)
        cost = field(value, "usage", "cost")
        if cost is not None:  # as LiteLLM hands it to the caller
            decoded._hidden_params["response_cost"] = cost
        return decoded


def wrap_completion(
    original: Callable[..., Any], prices: Prices, asynchronous: bool
) -> Callable[..., Any]:
    """``litellm.completion`` (``acompletion`` when ``asynchronous``), recorded and guarded
    inside a run; outside one, LiteLLM's own."""
    api = _api()
    specs: dict[str | None, _LiteLLMSpec] = {}

    def spec_for(kwargs: dict[str, Any]) -> _LiteLLMSpec:
        model = kwargs.get("model")
        found = specs.get(model)
        if found is None:
            found = specs[model] = _LiteLLMSpec(api, prices, model, original)
        return found

    if asynchronous:

        @functools.wraps(original)
        async def acompletion(*args: Any, **kwargs: Any) -> Any:
            run = current_run()
            if run is None:
                return await original(*args, **kwargs)
            args, kwargs = _named(args, kwargs)
            call = _start(run, spec_for(kwargs), kwargs)
            if call.done:  # agent replay: the recorded answer
                return await _ready(call.result)
            kwargs = api.prepare(kwargs)
            token = in_wrapper.set(True)
            try:
                result = await original(*args, **kwargs)
            except Exception as exc:
                call.failed(exc)
                raise
            finally:
                in_wrapper.reset(token)
            if kwargs.get("stream"):
                return _RecordedAsyncStream(result, call)
            return _answered(call, result)

        return acompletion

    @functools.wraps(original)
    def completion(*args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None:
            return original(*args, **kwargs)
        args, kwargs = _named(args, kwargs)
        call = _start(run, spec_for(kwargs), kwargs)
        if call.done:
            return call.result
        kwargs = api.prepare(kwargs)
        token = in_wrapper.set(True)
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            call.failed(exc)
            raise
        finally:
            in_wrapper.reset(token)
        return _RecordedStream(result, call) if kwargs.get("stream") else _answered(call, result)

    return completion


def _named(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``completion("gpt-4o", messages)`` as keywords: the model names the call, the messages
    are its prompt."""
    if not args:
        return args, kwargs
    named = dict(zip(_POSITIONAL, args, strict=False))
    return args[len(named) :], {**named, **kwargs}


def _answered(call: ModelCall, result: Any) -> Any:
    """The output recorded (encoded on the writer thread) with LiteLLM's cost."""
    latency_ms = (time.perf_counter() - call.started) * 1000.0
    encoded = Deferred((_answer, result))
    record_output(call.run, call.spec, call.call_id, result, encoded, latency_ms)
    return result


def _answer(result: Any) -> str:
    """The answer with LiteLLM's cost in its usage (replay counts the same spend)."""
    encoded = canonical_json(result)
    cost = (getattr(result, "_hidden_params", None) or {}).get("response_cost")
    if cost is not None and field(result, "usage") is not None:
        doc = json.loads(encoded)
        if isinstance(doc.get("usage"), dict) and doc["usage"].get("cost") is None:
            doc["usage"]["cost"] = cost
            encoded = canonical_json(doc)
    return encoded


def _table_model(model: str | None) -> str | None:
    """The price table knows ``gpt-4o-mini``, LiteLLM routes ``openai/gpt-4o-mini``."""
    return model.split("/", 1)[1] if model and "/" in model else model


def _api() -> Api:
    from litellm import ModelResponse, ModelResponseStream

    return Api(
        prompt_keys=("messages", "tools"),
        decode=ModelResponse.model_validate,
        decode_chunk=ModelResponseStream.model_validate,
        usage=lambda r: _usage(field(r, "usage")),
        stream_usage=lambda chunks: _usage(_last_usage(chunks)),
        tool_calls=chat_tool_calls,  # litellm answers in the chat completions' shape
        stream_tool_calls=chat_stream_tool_calls,
        prepare=_ask_for_usage,
    )


def _ask_for_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A stream carries its usage (and LiteLLM's cost) only when asked: tracekit asks, so the
    guard's cost bounds count streamed calls too."""
    if kwargs.get("stream") and "stream_options" not in kwargs:
        return {**kwargs, "stream_options": {"include_usage": True}}
    return kwargs


def _usage(usage: Any) -> Usage:
    cached = field(usage, "prompt_tokens_details", "cached_tokens")
    return field(usage, "prompt_tokens"), field(usage, "completion_tokens"), cached


def _last_usage(chunks: list[Any]) -> Any:
    return next((field(c, "usage") for c in reversed(chunks) if field(c, "usage")), None)
