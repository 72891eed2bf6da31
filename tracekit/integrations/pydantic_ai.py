"""PydanticAI: one capability records an agent's runs and guards its tools.

``Agent(model, capabilities=[Tracekit(tenant="acme", writes={"issue_refund"})])`` and each run of
the agent is a tracekit run (a sub-run when it runs inside another agent's run, as a delegated
agent does; the current run when the caller opened one with ``tracekit.run``):

- every model request is a ``prompt`` and a ``model_output`` event (a new step) with its token
  usage, its cost from tracekit's price table and its tool calls normalised as
  ``[{"id", "name", "arguments"}]``; the guard's kill switch is checked before the request, and
  its step and cost bounds after the answer;
- every tool call is guarded before it runs (``wrap_tool_execute``, the outermost capability),
  recorded as ``tool_call`` / ``tool_result``, and a tool named in ``writes`` goes through the
  side-effect ledger (a repeat returns the first outcome).

A halt raises ``tracekit.Halted`` out of the agent run: the run stops there. PydanticAI's
``SkipToolExecution`` (raised from ``before_tool_execute``) is not used for it on purpose: it hands
its value to the model as the tool's result and the run goes on, and a runaway model simply asks
again. In agent replay the recorded answers are served as PydanticAI's own ``ModelResponse`` and
the recorded tool results are returned without running the tools.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic_ai import RunContext
from pydantic_ai.capabilities import (
    AbstractCapability,
    CapabilityOrdering,
    WrapModelRequestHandler,
    WrapRunHandler,
    WrapToolExecuteHandler,
)
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ToolCallPart,
)
from pydantic_ai.models import ModelRequestContext
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import ToolDefinition

from .._base.encode import canonical_json
from .._capture.decorators import ModelCall, record_output
from .._capture.run import Run, current_run
from .._capture.specs import ModelSpec, ToolSpec
from .._integrations.prices import Prices
from ..errors import Halted

__all__ = ["Tracekit"]

#: keys of a dumped message or part that differ from one run to the next (clocks, ids) or that
#: the model request's own lifecycle fills in (``model_id``, not set on an answer agent replay
#: serves), left out of the recorded prompt so that agent replay matches it
_VOLATILE = frozenset(
    {"timestamp", "run_id", "conversation_id", "history_digest", "provider_response_id", "model_id"}
)


class _Halts:
    """The halts raised in one agent run: raised again at its end, should anything between the
    guard and the caller (a capability's ``on_run_error``) have swallowed them."""

    __slots__ = ("first",)

    def __init__(self) -> None:
        self.first: Halted | None = None

    def note(self, halt: Halted) -> Halted:
        if self.first is None:
            self.first = halt
        return halt


@dataclass(frozen=True)
class _AgentRun:
    """The tracekit run an agent run records into, and its halts."""

    run: Run
    halts: _Halts


_agent_run: ContextVar[_AgentRun | None] = ContextVar("tracekit_pydantic_ai_run", default=None)


@dataclass
class Tracekit(AbstractCapability[Any]):
    """Record and guard a PydanticAI agent: ``Agent(..., capabilities=[Tracekit(...)])``.

    ``tenant``: each agent run opens a tracekit run for it (without one, the agent records only
    inside a run the caller opened, and runs untouched outside any). ``writes``: the tools that
    change the world, a set of names or a mapping of name to ``@tracekit.tool`` options
    (``destination``, ``idempotency_key``, ``amount``, ``reversible``, ...); ``tool_options``:
    the same options (``bounds``...) for the other tools. ``prices`` adds to or overrides the
    price table (USD per million tokens, ``{"my-model": {"input": 1.0, "output": 2.0}}``).
    A tool function already decorated with ``@tracekit.tool`` guards and records itself and is
    left to do so.
    """

    tenant: str | None = None
    writes: Iterable[str] | Mapping[str, Mapping[str, Any]] = ()
    tool_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prices: Mapping[str, Mapping[str, float]] | None = None
    _tools: dict[str, ToolSpec | None] = field(default_factory=dict, init=False, repr=False)
    _models: dict[str, ModelSpec] = field(default_factory=dict, init=False, repr=False)
    _table: Prices = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._table = Prices.shipped(self.prices)
        declared = (
            dict(self.writes)
            if isinstance(self.writes, Mapping)
            else {name: {} for name in self.writes}
        )
        for name in {*declared, *self.tool_options}:  # unknown options fail here, not mid-run
            options = {**self.tool_options.get(name, {}), **(declared.get(name) or {})}
            self._tools[name] = ToolSpec(name, name in declared, **options)

    def get_ordering(self) -> CapabilityOrdering:
        """Outermost: the guard sees a tool call before any other capability's hooks run it."""
        return CapabilityOrdering(position="outermost")

    # -- the agent run ----------------------------------------------------------------------
    async def wrap_run(
        self, ctx: RunContext[Any], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        """The agent run as a tracekit run: the caller's, its own, or a sub-run of the agent
        run it was started from (a delegated agent)."""
        current = current_run()
        outer = _agent_run.get()
        if current is not None and (outer is None or outer.run is not current):
            return await self._inside(_AgentRun(current, _Halts()), handler)
        tenant = self.tenant or (current.tenant if current is not None else None)
        if tenant is None:
            return await handler()
        agent = ctx.agent.name if ctx.agent is not None else None
        attrs = {"agent": agent} if agent else {}
        async with Run(tenant, parent=current, attrs=attrs) as opened:
            return await self._inside(_AgentRun(opened, _Halts()), handler)

    @staticmethod
    async def _inside(state: _AgentRun, handler: WrapRunHandler) -> AgentRunResult[Any]:
        token = _agent_run.set(state)
        try:
            result = await handler()
        finally:
            _agent_run.reset(token)
        if state.halts.first is not None:  # swallowed on the way out: the run still stops
            raise state.halts.first
        return result

    # -- model requests ---------------------------------------------------------------------
    async def wrap_model_request(
        self,
        ctx: RunContext[Any],
        *,
        request_context: ModelRequestContext,
        handler: WrapModelRequestHandler,
    ) -> ModelResponse:
        """A prompt and a model output (a new step); the kill switch checked first."""
        state = _agent_run.get()
        if state is None:
            return await handler(request_context)
        recorded, halts = state.run, state.halts
        guard = recorded._guard
        if guard is not None:
            try:
                guard.check_flags()
            except Halted as halt:
                recorded._refused(halt)
                raise halts.note(halt) from None
        spec = self._model_spec(request_context.model.model_name)
        try:
            call = ModelCall.start(spec, (), {"messages": _prompt(request_context.messages)})
            assert call is not None  # inside a run
            if call.done:  # agent replay: the recorded answer, the model not called
                return cast(ModelResponse, call.result)
            try:
                response = await handler(request_context)
            except Exception as exc:
                call.failed(exc)
                raise
            latency_ms = (time.perf_counter() - call.started) * 1000.0
            record_output(recorded, spec, call.call_id, response, _encode(response), latency_ms)
        except Halted as halt:  # a step or cost bound, judged after the answer
            raise halts.note(halt) from None
        return response

    def _model_spec(self, name: str) -> ModelSpec:
        spec = self._models.get(name)
        if spec is None:
            table = self._table

            def cost(response: ModelResponse) -> float | None:
                usage = response.usage
                model = response.model_name or name
                return table.cost(
                    model, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens
                )

            spec = self._models[name] = ModelSpec(
                _messages, name, cost, _usage, _decode, _tool_calls
            )
        return spec

    # -- tool calls -------------------------------------------------------------------------
    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: dict[str, Any],
        handler: WrapToolExecuteHandler,
    ) -> Any:
        """Guarded before it runs, recorded, and through the ledger for a write tool."""
        state = _agent_run.get()
        if state is None:
            return await handler(args)
        name = call.tool_name
        spec = self._tools.get(name, _UNSEEN)
        if spec is _UNSEEN:
            spec = self._tools[name] = None if _decorated(ctx, name) else ToolSpec(name)
        if spec is None:  # @tracekit.tool: it guards and records itself
            return await handler(args)
        try:
            return await state.run._ainvoke(spec, lambda **kw: handler(kw), None, (), args)
        except Halted as halt:
            raise state.halts.note(halt) from None


_UNSEEN: Any = object()  # a tool not looked at yet


def _decorated(ctx: RunContext[Any], name: str) -> bool:
    """Whether the function behind tool ``name`` is a ``@tracekit.tool`` (it records itself)."""
    manager = ctx.tool_manager
    tool = manager.tools.get(name) if manager is not None and manager.tools else None
    tools = getattr(getattr(tool, "toolset", None), "tools", None)
    found = tools.get(name) if isinstance(tools, Mapping) else None
    return hasattr(getattr(found, "function", None), "__tracekit_tool__")


def _messages(messages: Any) -> None:
    """The signature a model spec names its prompt by (``messages``)."""


def _prompt(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    """The messages sent, as JSON, without the clocks and ids that differ from run to run."""
    dumped = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    return [
        {
            **{k: v for k, v in message.items() if k not in _VOLATILE and k != "parts"},
            "parts": [
                {k: v for k, v in part.items() if k not in _VOLATILE}
                for part in message.get("parts", ())
            ],
        }
        for message in dumped
    ]


def _encode(response: ModelResponse) -> str:
    """A model answer as JSON that ``_decode`` turns back into the same ``ModelResponse``."""
    return canonical_json(ModelMessagesTypeAdapter.dump_python([response], mode="json")[0])


def _decode(value: Any) -> ModelResponse:
    [message] = ModelMessagesTypeAdapter.validate_python([value])
    assert isinstance(message, ModelResponse)
    return message


def _usage(response: ModelResponse) -> dict[str, int]:
    usage = response.usage
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


def _tool_calls(response: ModelResponse) -> str | None:
    """The output event's attrs: the answer's tool calls, normalised."""
    calls = [
        {"id": part.tool_call_id, "name": part.tool_name, "arguments": part.args_as_json_str()}
        for part in response.parts
        if isinstance(part, ToolCallPart)
    ]
    return canonical_json({"tool_calls": calls}) if calls else None
