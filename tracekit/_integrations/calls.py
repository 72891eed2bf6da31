"""An SDK's model call, recorded and guarded: the one wrapper every integration uses.

Before the call the guard's kill switch is checked (a run halted by its step, cost or spend
bounds is refused before it spends more); the prompt is recorded, the SDK called, and its
answer recorded as the model output with usage, cost (from the price table) and its tool calls
normalised as ``[{"id", "name", "arguments"}]`` in the output's attrs. In the caller's step only
the kill switch, the usage and the cost (the guard counts it) are worked out; the prompt (a
snapshot: list arguments copied), the answer and its tool calls are handed to the recorder as
``Deferred`` columns and encoded on its writer thread. A stream is handed back
wrapped: the caller reads it as it comes, and the output is recorded when it ends or is closed.
In agent replay the SDK is not called: the recorded answer is served as the SDK's own object,
a stream as a stream of the SDK's own chunks.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from .._capture.decorators import ModelCall, record_output
from .._capture.rows import Deferred
from .._capture.run import Run, _current, _now_us
from .._capture.specs import ModelSpec, float_or_none
from .._capture.state import PROCESS
from .._contain.runguard import RunGuard
from ..errors import Halted
from .prices import Prices

__all__ = ["Api", "ReplayedStream", "Usage", "field", "given", "is_async_client", "wrap"]

_PROMPT, _MODEL_OUTPUT = EventKind.PROMPT, EventKind.MODEL_OUTPUT
_OK = EventStatus.OK
_perf = time.perf_counter
_monotonic = time.monotonic
#: tokens in, tokens out, of the tokens in those read from the provider's cache
Usage = tuple[int | None, int | None, int | None]


def is_async_client(client: Any) -> bool:
    """An SDK's async client (``AsyncOpenAI``, ``AsyncAnthropic``): its methods are awaited."""
    return type(client).__name__.startswith("Async")


def given(value: Any) -> bool:
    """False for the SDKs' "not given" sentinels (``NOT_GIVEN``, ``omit``), which their own
    helpers pass for every argument the caller left out."""
    return type(value).__name__ not in ("NotGiven", "Omit")


def field(obj: Any, *path: str) -> Any:
    """``obj.a.b`` for an SDK object or ``obj["a"]["b"]`` for a dict; None where missing."""
    for key in path:
        if obj is None:
            return None
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return obj


@dataclass(frozen=True)
class Api:
    """What tracekit reads of one SDK method."""

    prompt_keys: tuple[str, ...]  # the keyword arguments recorded as the prompt
    decode: Callable[[Any], Any]  # a recorded answer (JSON) as the SDK's object
    decode_chunk: Callable[[Any], Any]  # a recorded stream chunk as the SDK's object
    usage: Callable[[Any], Usage]
    stream_usage: Callable[[list[Any]], Usage]
    tool_calls: Callable[[Any], list[dict[str, Any]]]
    stream_tool_calls: Callable[[list[Any]], list[dict[str, Any]]]
    #: a streamed (or async) call's keyword arguments before they are sent (a sync plain
    #: call takes the short path, ``_Spec.answer``, and is sent as given)
    prepare: Callable[[dict[str, Any]], dict[str, Any]] = lambda kwargs: kwargs
    #: in agent replay, the decoded answer as the method returns it, from the call's arguments
    #: (``parse`` parses it again into the caller's output type)
    served: Callable[[Any, dict[str, Any]], Any] | None = None


class _Spec(ModelSpec):
    """The ``@tracekit.model`` spec of one SDK method and model: the prompt is the named
    keyword arguments; usage, cost and tool calls read from the answer or the stream."""

    __slots__ = ("_price", "api", "keys", "prices", "rates")

    def __init__(self, api: Api, prices: Prices, model: str | None, fn: Callable[..., Any]):
        super().__init__(fn, model, None, None, None)
        self.api, self.keys, self.prices = api, api.prompt_keys, prices
        self._price = prices.pricer(self.price_model())
        #: the price table's rates (fresh, cached, output), priced inline, when the model is in
        #: the table and ``costed`` is not overridden
        found = prices.rates(self.price_model() or "")
        own = type(self).costed is _Spec.costed
        self.rates = None if found is None or not own else (
            found["input"], found["cached_input"], found["output"])  # fmt: skip
        self.decode = self._decode

    def price_model(self) -> str | None:
        """The model's name in the price table."""
        return self.name

    def prompt_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return _prompt_text(self._sent(kwargs))

    def prompt_row(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Deferred:
        """Encoded on the writer thread, from a snapshot: each list argument (the messages)
        is copied, so messages the agent appends after the call are not in this prompt."""
        return Deferred((_prompt_text, self._sent(kwargs)))

    def _sent(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The prompt's arguments as the call has them now (lists copied); the rest of the
        work (the SDK's "not given" sentinels left out, an output type as its schema) is
        ``_prompt_text``'s, on the writer thread."""
        sent = {}
        for key in self.keys:
            if key in kwargs:
                value = kwargs[key]
                sent[key] = value[:] if type(value) is list else value
        return sent

    def measure(self, result: Any) -> tuple[int | None, int | None, float | None, Any]:
        """Usage and cost read now (the guard counts the cost); the tool calls are read and
        encoded on the writer thread."""
        if type(result) in _STREAMS:
            counts = self.api.stream_usage(result.tracekit_chunks)
            attrs = Deferred((self._stream_attrs, result.tracekit_chunks))
        else:
            counts = self.api.usage(result)
            attrs = Deferred((self._answer_attrs, result))
        return counts[0], counts[1], self.costed(result, counts), attrs

    def costed(self, result: Any, counts: Usage) -> float | None:
        """The answer's cost: from the price table (an SDK that reports its own cost reads
        that first)."""
        return self._price(*counts)

    def _answer_attrs(self, result: Any) -> str | None:
        calls = self.api.tool_calls(result)
        return canonical_json({"tool_calls": calls}) if calls else None

    def _stream_attrs(self, chunks: list[Any]) -> str | None:
        calls = self.api.stream_tool_calls(chunks)
        return canonical_json({"tool_calls": calls}) if calls else None

    def _decode(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"stream"}:
            return ReplayedStream([self.api.decode_chunk(c) for c in value["stream"]])
        return self.api.decode(value)


def _prompt_text(sent: dict[str, Any]) -> str:
    """A prompt's JSON: the arguments given (not the SDKs' sentinels), an output type (the
    pydantic model ``parse`` takes) as its JSON schema."""
    return canonical_json({k: _as_recorded(v) for k, v in sent.items() if given(v)})


def _as_recorded(value: Any) -> Any:
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return _output_type(value)
    return value


@functools.cache
def _output_type(cls: Any) -> dict[str, Any]:
    """An output type as the prompt records it; worked out once per type (pydantic builds
    the schema anew on each ``model_json_schema()``)."""
    return {"json_schema": cls.model_json_schema(), "name": cls.__name__}


def wrap(
    original: Callable[..., Any], api: Api, prices: Prices, asynchronous: bool
) -> Callable[..., Any]:
    """``original`` (a bound SDK method; of an async client when ``asynchronous``), recorded
    and guarded inside a run. A live, plain (not streamed) call of a sync client, the call in
    every step of most agents, is recorded on the wrapper's own frame: what ``_start``,
    ``ModelCall`` and ``_answered`` do, with the prompt's snapshot (``_Spec._sent``), the
    event rows (``Run._record``, ``Run._counted_output``) and the price (``Prices.pricer``)
    inline, since each frame more costs ~0.5-1 µs right after the SDK's own work."""
    specs: dict[str | None, _Spec] = {}

    def spec_for(model: Any) -> _Spec:
        found = specs[model] = _Spec(api, prices, model, original)
        return found

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        run = _current.get()
        if run is None:
            return original(*args, **kwargs)
        model = kwargs.get("model")
        spec = specs.get(model) or spec_for(model)
        if asynchronous or run._served is not None or kwargs.get("stream") is True:
            return _call(run, spec, original, args, kwargs, asynchronous)
        guard = run._guard
        if guard is not None and _monotonic() > guard.rt.clear_until:  # when it could refuse
            _check_flags(run, guard)
        sent = {}
        for key in spec.keys:
            if key in kwargs:
                value = kwargs[key]
                sent[key] = value[:] if type(value) is list else value
        call_id = f"call_{next(run._calls)}"
        name = spec.name or run.release.model
        seq = run._seq
        run._seq = seq + 1
        emit = PROCESS.emit
        prompt = Deferred((_prompt_text, sent))
        emit((run._static, seq, run.step, _now_us() // 1000, _PROMPT, name, call_id, prompt,
              None, None, None, None, None, None, None, None))  # fmt: skip
        started = _perf()
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            ModelCall(run, spec, call_id).failed(exc)
            raise
        latency_ms = (_perf() - started) * 1000.0
        tin, tout, cached = api.usage(result)
        rates = spec.rates
        if rates is None:  # not in the table, or the spec's own costing
            cost = float_or_none(spec.costed(result, (tin, tout, cached)))
        elif tin is None and tout is None:
            cost = None
        else:
            fresh, cached_rate, out_rate = rates
            given_in = int(tin or 0)
            cached_in = min(int(cached or 0), given_in)
            tokens_out = int(tout or 0)
            cost = ((given_in - cached_in) * fresh + cached_in * cached_rate
                    + tokens_out * out_rate) / 1e6  # fmt: skip
        run.step = step = run.step + 1
        seq = run._seq
        run._seq = seq + 1
        emit((run._static, seq, step, _now_us() // 1000, _MODEL_OUTPUT, name, call_id, None,
              Deferred((_answer, result)), _OK, None, tin, tout, cost, latency_ms,
              Deferred((spec._answer_attrs, result))))  # fmt: skip
        if guard is not None:
            try:
                guard.after_model_output(cost)
            except Halted as halt:
                run._refused(halt)
                raise
        return result

    return create


def _call(
    run: Run,
    spec: _Spec,
    original: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    asynchronous: bool,
) -> Any:
    """A call of an async client, a stream, or a call in agent replay."""
    call = _start(run, spec, kwargs)
    api = spec.api
    if call.done:  # agent replay: the recorded answer, awaitable for an async client
        result = call.result if api.served is None else api.served(call.result, kwargs)
        return _ready(result) if asynchronous else result
    kwargs = api.prepare(kwargs)
    stream = kwargs.get("stream") is True
    try:
        result = original(*args, **kwargs)
    except Exception as exc:
        call.failed(exc)
        raise
    if asynchronous:
        return _answered_async(result, call, stream)
    return _RecordedStream(result, call) if stream else _answered(call, result)


def _answered(call: ModelCall, result: Any) -> Any:
    """The answer recorded (encoded on the writer thread: SDK answers are not changed after)."""
    latency_ms = (time.perf_counter() - call.started) * 1000.0
    spec = call.spec
    tokens_in, tokens_out, cost, attrs = spec.measure(result)
    call.run._counted_output(Deferred((_answer, result)), tokens_in, tokens_out, cost, spec.name,
                             latency_ms, attrs, call.call_id)  # fmt: skip
    return result


def _answer(result: Any) -> str:
    """An answer as the fields the provider sent (not every null the SDK's model fills in):
    what replay decodes back to the same object, at half the encoding."""
    dump = getattr(type(result), "model_dump", None)
    return canonical_json(result.model_dump(exclude_unset=True) if dump is not None else result)


async def _ready(result: Any) -> Any:
    return result


async def _answered_async(pending: Any, call: ModelCall, stream: bool) -> Any:
    try:
        result = await pending
    except Exception as exc:
        call.failed(exc)
        raise
    return _RecordedAsyncStream(result, call) if stream else _answered(call, result)


def _start(run: Run, spec: _Spec, kwargs: dict[str, Any]) -> ModelCall:
    """The kill switch first (a refusal recorded, then raised), then the call begins."""
    guard = run._guard
    if guard is not None:
        _check_flags(run, guard)
    call = ModelCall.start(spec, (), kwargs, run)
    assert call is not None  # inside a run
    return call


def _check_flags(run: Run, guard: RunGuard) -> None:
    """The kill switch before a model call: a refusal is recorded, then raised."""
    try:
        guard.check_flags()
    except Halted as halt:
        run._refused(halt)
        raise


class _Recording:
    """A stream being read: its chunks kept, the output recorded once, when it ends."""

    def __init__(self, inner: Any, call: ModelCall) -> None:
        self._inner, self._call = inner, call
        self.tracekit_chunks: list[Any] = []
        self._recorded = False

    def _record(self) -> None:
        if self._recorded:
            return
        self._recorded = True
        call = self._call
        encoded = Deferred((canonical_json, {"stream": self.tracekit_chunks}))
        latency_ms = (time.perf_counter() - call.started) * 1000.0
        record_output(call.run, call.spec, call.call_id, self, encoded, latency_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _RecordedStream(_Recording):
    def __iter__(self) -> Iterator[Any]:
        for chunk in self._inner:
            self.tracekit_chunks.append(chunk)
            yield chunk
        self._record()

    def __next__(self) -> Any:
        try:
            chunk = next(self._inner)
        except StopIteration:
            self._record()
            raise
        self.tracekit_chunks.append(chunk)
        return chunk

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._record()

    def __enter__(self) -> _RecordedStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _RecordedAsyncStream(_Recording):
    async def __aiter__(self) -> AsyncIterator[Any]:
        async for chunk in self._inner:
            self.tracekit_chunks.append(chunk)
            yield chunk
        self._record()

    async def close(self) -> None:
        try:
            await self._inner.close()
        finally:
            self._record()

    async def __aenter__(self) -> _RecordedAsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class _Closed:
    """What ``ReplayedStream.close()`` returns: ignored by a sync caller, awaited by an async."""

    def __await__(self) -> Iterator[None]:
        return iter(())


class ReplayedStream:
    """A recorded stream served in agent replay: the SDK's own chunks, sync or async."""

    def __init__(self, chunks: list[Any]) -> None:
        self.tracekit_chunks = chunks

    def __iter__(self) -> Iterator[Any]:
        return iter(self.tracekit_chunks)

    async def __aiter__(self) -> AsyncIterator[Any]:
        for chunk in self.tracekit_chunks:
            yield chunk

    def close(self) -> Any:
        """Nothing to close; awaitable too, as an async SDK stream's ``close()`` is."""
        return _Closed()

    def __enter__(self) -> ReplayedStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    async def __aenter__(self) -> ReplayedStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        pass


#: what a spec reads as a stream (its chunks), not as one answer
_STREAMS = (_RecordedStream, _RecordedAsyncStream, ReplayedStream)
