"""The OpenAI Agents SDK: a tracing processor records the runs, ``guard(agent)`` stops them.

Two pieces, each one line:

- ``agents.set_trace_processors([TracekitProcessor(tenant="acme")])`` (or
  ``agents.add_trace_processor``, which keeps the SDK's own exporter uploading to OpenAI): every
  agent span is a tracekit run, an agent handed off to is a sub-run of the agent that handed off
  (``handoff_from`` in its attrs), an agent run as a tool a sub-run of the agent calling it. A
  generation span (chat completions) or response span (Responses API) is a ``prompt`` and a
  ``model_output`` with usage, cost from tracekit's price table and its tool calls normalised
  as ``[{"id", "name", "arguments"}]``; a function span is a ``tool_call`` and its
  ``tool_result``. A run the caller opened with ``tracekit.run`` is recorded into, not nested.
- ``guard(agent, writes={"issue_refund"})``: each ``FunctionTool`` of the agent (and of the
  agents it hands off to or runs as tools) is guarded before it runs, recorded (its function
  span is then not recorded again) and, for a write, taken through the side-effect ledger; the
  agent's hooks check the kill switch before each model call and stop the run right after an
  answer that broke a step or cost bound.

A halt raises ``RunHalted``, a ``tracekit.Halted`` that is also the SDK's ``AgentsException``
(the SDK turns any other exception out of a tool into a ``UserError``): ``Runner.run`` ends with
it and ``except tracekit.Halted`` catches it. A processor only observes (the SDK logs and drops
what a processor raises), so without ``guard`` nothing is stopped, only recorded.

The SDK's default processor uploads traces to api.openai.com when it has an API key;
``set_trace_processors([...])`` replaces it, ``set_tracing_disabled(True)`` would silence
tracekit as well.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar, Token
from typing import Any

from agents import Agent, AgentHooks, FunctionTool, RunContextWrapper
from agents.exceptions import AgentsException
from agents.items import ModelResponse, TResponseInputItem
from agents.tool import Tool, maybe_invoke_function_tool_failure_error_function
from agents.tool_context import ToolContext
from agents.tracing import Span, Trace, TracingProcessor, get_current_span
from agents.tracing.span_data import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    HandoffSpanData,
    ResponseSpanData,
)

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from .._capture.run import Run, current_run
from .._capture.specs import ToolSpec
from .._capture.state import flush
from .._integrations.openai_agents import ModelSeen, arguments, latency_ms, model_seen
from .._integrations.prices import Prices
from ..errors import DuplicateInFlight, Halted, IdempotencyConflict, ReplayedFailure

__all__ = ["RunHalted", "TracekitProcessor", "guard"]


class RunHalted(Halted, AgentsException):
    """A halt as the SDK's own exception, so it ends ``Runner.run`` as it is."""

    @classmethod
    def of(cls, halt: Halted) -> RunHalted:
        """``halt`` as a ``RunHalted`` (itself if it is one)."""
        if isinstance(halt, RunHalted):
            return halt
        return cls(halt.level, halt.target, halt.reason, halt.signal, halt.value, halt.threshold)


class _AgentRun:
    """One agent span's tracekit run (None when nothing records it), whether the processor
    opened it, a halt waiting to reach the agent, and the function spans already recorded."""

    __slots__ = ("halt", "owned", "run", "token", "wrapped")

    def __init__(self, run: Run | None, owned: bool, halt: Halted | None = None) -> None:
        self.run, self.owned, self.halt = run, owned, halt
        self.token: Token[_AgentRun | None] | None = None
        self.wrapped: set[str] = set()


_agent: ContextVar[_AgentRun | None] = ContextVar("tracekit_openai_agents_run", default=None)


# -- the processor ----------------------------------------------------------------------------
class TracekitProcessor(TracingProcessor):
    """The SDK's spans as tracekit runs and events (``agents.set_trace_processors``).

    ``tenant``: the tenant of the runs it opens (a trace's ``metadata={"tenant": ...}``, given
    as ``RunConfig(trace_metadata=...)``, wins; without either, only runs the caller opened
    record). ``prices`` adds to or overrides the price table (USD per million tokens).
    """

    def __init__(
        self,
        tenant: str | None = None,
        prices: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self._tenant = tenant
        self._prices = Prices.shipped(prices)
        self._tenants: dict[str, str] = {}  # trace id -> the tenant its metadata names
        self._handoffs: dict[str, tuple[str | None, _AgentRun]] = {}  # trace id -> (to, from)
        self._agents: dict[str, _AgentRun] = {}  # open agent span id -> its run
        self._models: dict[str, tuple[_AgentRun, int]] = {}  # open model span -> (run, step)

    # -- traces ---------------------------------------------------------------------------
    def on_trace_start(self, trace: Trace) -> None:
        metadata = getattr(trace, "metadata", None)
        tenant = metadata.get("tenant") if isinstance(metadata, Mapping) else None
        if isinstance(tenant, str) and tenant:
            self._tenants[trace.trace_id] = tenant

    def on_trace_end(self, trace: Trace) -> None:
        self._tenants.pop(trace.trace_id, None)
        self._handoffs.pop(trace.trace_id, None)

    # -- spans ----------------------------------------------------------------------------
    def on_span_start(self, span: Span[Any]) -> None:
        data = span.span_data
        if isinstance(data, AgentSpanData):
            self._agent_started(span, data)
        elif isinstance(data, GenerationSpanData | ResponseSpanData):
            state = _agent.get()
            if state is not None and state.run is not None:
                self._models[span.span_id] = (state, state.run.step)

    def on_span_end(self, span: Span[Any]) -> None:
        data = span.span_data
        if isinstance(data, AgentSpanData):
            self._agent_ended(span)
        elif isinstance(data, GenerationSpanData | ResponseSpanData):
            self._model_ended(span, data)
        elif isinstance(data, FunctionSpanData):
            self._tool_ended(span, data)
        elif isinstance(data, HandoffSpanData):
            state = _agent.get()
            if state is not None and state.run is not None:
                self._handoffs[span.trace_id] = (data.to_agent, state)

    def shutdown(self) -> None:
        self.force_flush()

    def force_flush(self) -> None:
        flush(5.0)

    # -- agents ---------------------------------------------------------------------------
    def _agent_started(self, span: Span[Any], data: AgentSpanData) -> None:
        """An agent span: the caller's run, or a run of its own (a sub-run after a handoff or
        inside another agent's tool); the run is current for the agent's model and tools."""
        outer, current = _agent.get(), current_run()
        handoff = self._handoffs.pop(span.trace_id, None)
        attrs: dict[str, Any] = {"agent": data.name}
        parent: Run | None = current
        if handoff is not None and handoff[0] in (None, data.name) and handoff[1].run:
            parent = handoff[1].run
            attrs["handoff_from"] = parent.attrs.get("agent")
        elif current is not None and (outer is None or outer.run is not current):
            self._enter(span, _AgentRun(current, owned=False))  # the caller's run
            return
        tenant = self._tenants.get(span.trace_id) or self._tenant
        tenant = tenant or (parent.tenant if parent is not None else None)
        if tenant is None:
            self._enter(span, _AgentRun(None, owned=False))
            return
        opened = Run(tenant, parent=parent, attrs=attrs)
        try:
            opened.__enter__()
        except Halted as halt:  # refused at its start (recorded): the agent stops at once
            self._enter(span, _AgentRun(None, owned=False, halt=halt))
            return
        self._enter(span, _AgentRun(opened, owned=True))

    def _enter(self, span: Span[Any], state: _AgentRun) -> None:
        state.token = _agent.set(state)
        self._agents[span.span_id] = state

    def _agent_ended(self, span: Span[Any]) -> None:
        state = self._agents.pop(span.span_id, None)
        if state is None:
            return
        if state.owned and state.run is not None:
            exc = sys.exc_info()[1]  # the span ends in a finally: what ends the agent run
            if exc is None and state.halt is not None:
                exc = state.halt
            # ended in another context than it started: recorded all the same
            with contextlib.suppress(ValueError):
                state.run.__exit__(type(exc) if exc is not None else None, exc, None)
        if state.token is not None:
            with contextlib.suppress(ValueError):
                _agent.reset(state.token)

    # -- model calls ----------------------------------------------------------------------
    def _model_ended(self, span: Span[Any], data: GenerationSpanData | ResponseSpanData) -> None:
        """A prompt and a model output, unless an instrumented client recorded the call."""
        entry = self._models.pop(span.span_id, None)
        if entry is None:
            return
        state, step = entry
        run = state.run
        if run is None or run.step > step:  # tracekit.instrument(client) recorded it
            return
        seen = model_seen(data)
        if seen is not None:
            self._record_model(state, span, seen)
        elif span.error is not None:  # the call failed (a span without data records nothing)
            name = run.release.model
            call_id = f"call_{next(run._calls)}"
            run._record(EventKind.PROMPT, name=name, call_id=call_id)
            run._record(EventKind.ERROR, name=name, call_id=call_id, status=EventStatus.ERROR,
                        error=str(span.error.get("message")))  # fmt: skip

    def _record_model(self, state: _AgentRun, span: Span[Any], seen: ModelSeen) -> None:
        """The prompt and the output (a new step); a bound the answer broke waits in the
        agent's state for its hooks to raise."""
        run = state.run
        assert run is not None
        call_id = f"call_{next(run._calls)}"
        name = seen.model or run.release.model
        run._record(EventKind.PROMPT, name=name, call_id=call_id, args=canonical_json(seen.prompt))
        cost = self._prices.cost(seen.model, seen.tokens_in, seen.tokens_out, seen.cached_in)
        usage = {"input_tokens": seen.tokens_in, "output_tokens": seen.tokens_out}
        attrs = canonical_json({"tool_calls": seen.tool_calls}) if seen.tool_calls else None
        try:
            run._output(canonical_json(seen.output), usage, cost, name, latency_ms(span), attrs,
                        call_id)  # fmt: skip
        except Halted as halt:
            state.halt = state.halt or halt

    # -- tools ----------------------------------------------------------------------------
    def _tool_ended(self, span: Span[Any], data: FunctionSpanData) -> None:
        """A tool that ``guard`` did not wrap: its call and result, as the span saw them."""
        state = _agent.get()
        if state is None or state.run is None:
            return
        if span.span_id in state.wrapped:
            state.wrapped.discard(span.span_id)
            return
        run = state.run
        call_id = f"call_{next(run._calls)}"
        run._record(EventKind.TOOL_CALL, name=data.name, call_id=call_id,
                    args=canonical_json(arguments(data.input)),
                    status=EventStatus.STARTED)  # fmt: skip
        error = span.error
        output = canonical_json(data.output) if data.output is not None else None
        run.result(data.name, call_id, None, output,
                   EventStatus.ERROR if error else EventStatus.OK,
                   str(error.get("message")) if error else None,
                   latency_ms=latency_ms(span))  # fmt: skip


# -- guard(agent) -----------------------------------------------------------------------------
def guard(
    agent: Agent[Any],
    *,
    writes: Iterable[str] | Mapping[str, Mapping[str, Any]] = (),
    tool_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Agent[Any]:
    """Guard ``agent`` in place (and every agent it hands off to or runs as a tool); returns it.

    ``writes``: the tools that change the world, names or name -> ``@tracekit.tool`` options
    (``destination``, ``idempotency_key``, ``amount``, ...); ``tool_options``: the same options
    (``bounds``...) for other tools. Guarding twice changes nothing.
    """
    declared = dict(writes) if isinstance(writes, Mapping) else {name: {} for name in writes}
    options = tool_options or {}
    specs = {
        name: ToolSpec(
            name, name in declared, **{**options.get(name, {}), **declared.get(name, {})}
        )
        for name in {*declared, *options}
    }
    for each in _agents(agent):
        for tool in each.tools:
            if isinstance(tool, FunctionTool) and not isinstance(tool.on_invoke_tool, _Guarded):
                spec = specs.get(tool.name) or ToolSpec(tool.name)
                tool.on_invoke_tool = _Guarded(tool.on_invoke_tool, spec, tool)
        if not isinstance(each.hooks, _GuardHooks):
            each.hooks = _GuardHooks(each.hooks)
    return agent


def _agents(agent: Agent[Any]) -> Iterator[Agent[Any]]:
    """The agent, the agents it hands off to and those it runs as tools, each once."""
    seen: set[int] = set()
    todo = [agent]
    while todo:
        each = todo.pop()
        if id(each) in seen:
            continue
        seen.add(id(each))
        yield each
        for handoff in each.handoffs:
            if isinstance(handoff, Agent):
                todo.append(handoff)
            else:
                ref = getattr(handoff, "_agent_ref", None)
                target = ref() if callable(ref) else None
                if isinstance(target, Agent):
                    todo.append(target)
        for tool in each.tools:
            inner = getattr(tool, "_agent_instance", None)
            if isinstance(inner, Agent):
                todo.append(inner)


class _HandledFailure(Exception):
    """The tool raised and the SDK answered the model with its failure message (the text of
    this exception): recorded as a failed call, a failed write in the ledger."""

    @property
    def answer(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Guarded:
    """A ``FunctionTool``'s invoker with the guard, the recording and the ledger around it;
    outside the SDK's failure handling, so a halt is never turned into a message."""

    def __init__(self, inner: Any, spec: ToolSpec, tool: FunctionTool) -> None:
        self.inner, self.spec, self.tool = inner, spec, tool
        if getattr(inner, "__agents_sync_function_tool__", False):
            self.__agents_sync_function_tool__ = True

    def __agents_bind_function_tool__(self, tool: FunctionTool) -> _Guarded:
        """A copy of the tool (the SDK copies tools) gets an invoker bound to it."""
        bind = getattr(self.inner, "__agents_bind_function_tool__", None)
        return _Guarded(bind(tool) if callable(bind) else self.inner, self.spec, tool)

    async def __call__(self, ctx: ToolContext[Any], input: str) -> Any:
        state = _agent.get()
        if state is not None and state.halt is not None:
            raise RunHalted.of(state.halt)
        run = current_run()
        if run is None:
            return await self.inner(ctx, input)
        if state is not None:
            span = get_current_span()
            if span is not None:
                state.wrapped.add(span.span_id)
        try:
            return await run._ainvoke(
                self.spec, lambda **_: self._body(ctx, input), None, (), arguments(input)
            )
        except Halted as halt:
            raise RunHalted.of(halt) from None
        except _HandledFailure as failure:
            return failure.answer
        except (ReplayedFailure, IdempotencyConflict, DuplicateInFlight) as refused:
            message = await maybe_invoke_function_tool_failure_error_function(
                function_tool=self.tool, context=ctx, error=refused
            )
            if message is None:  # the tool's failure policy is to raise
                raise
            return message

    async def _body(self, ctx: ToolContext[Any], input: str) -> Any:
        span = get_current_span()
        before = span.error if span is not None else None
        answer = await self.inner(ctx, input)
        error = span.error if span is not None else None
        if error is not None and error is not before:
            raise _HandledFailure(answer)
        return answer


class _GuardHooks(AgentHooks[Any]):
    """The agent's hooks (kept, called first) with the guard's kill switch before each model
    call and a halt after an answer that broke a bound."""

    def __init__(self, inner: AgentHooks[Any] | None) -> None:
        self.inner = inner

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        if self.inner is not None:
            await self.inner.on_llm_start(context, agent, system_prompt, input_items)
        _raise_pending()
        run = current_run()
        if run is not None and run._guard is not None:
            try:
                run._guard.check_flags()
            except Halted as halt:
                run._refused(halt)
                raise RunHalted.of(halt) from None

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        if self.inner is not None:
            await self.inner.on_llm_end(context, agent, response)
        _raise_pending()

    async def on_start(self, context: Any, agent: Agent[Any]) -> None:
        if self.inner is not None:
            await self.inner.on_start(context, agent)
        _raise_pending()  # refused at its start

    async def on_end(self, context: Any, agent: Agent[Any], output: Any) -> None:
        if self.inner is not None:
            await self.inner.on_end(context, agent, output)

    async def on_handoff(
        self, context: RunContextWrapper[Any], agent: Agent[Any], source: Agent[Any]
    ) -> None:
        if self.inner is not None:
            await self.inner.on_handoff(context, agent, source)

    async def on_tool_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool
    ) -> None:
        if self.inner is not None:
            await self.inner.on_tool_start(context, agent, tool)

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object
    ) -> None:
        if self.inner is not None:
            await self.inner.on_tool_end(context, agent, tool, result)


def _raise_pending() -> None:
    """A halt the processor saw (a bound broken by an answer, a run refused at its start)."""
    state = _agent.get()
    if state is not None and state.halt is not None:
        raise RunHalted.of(state.halt)
