"""LangChain v1 agents and LangGraph, recorded and guarded (``pip install 'tracekit[langgraph]'``).

Three pieces, each recording into the run open in the calling thread or task
(``with tracekit.run(tenant=...)`` around ``agent.invoke``):

- ``TracekitMiddleware`` for ``langchain.agents.create_agent(..., middleware=[...])``. Its
  ``wrap_tool_call`` runs each tool call through tracekit's guard (refused *before* the tool
  runs), records it, and sends a declared write through the side-effect ledger (a repeat gets
  the first outcome). Its ``wrap_model_call`` checks the kill switch before the model is
  called and records the prompt and the model output (usage, cost, normalised tool calls);
  the step and cost bounds are judged after it. ``tracekit.Halted`` propagates out of the
  graph: the agent stops, it is never handed to the model as a tool message. In agent replay
  the model is not called and the tools never run: the recording answers.
- ``TracekitCallbackHandler`` for older LangChain code (chains, agents without middleware):
  it records model and tool starts and ends, and refuses a tool call or a model call of a
  halted run by raising ``Halted`` from ``on_tool_start`` / ``on_chat_model_start``
  (``raise_error = True``). It cannot send writes through the ledger, nor serve a replay.
- ``subgraph(graph)``: a subgraph or sub-agent that runs as a sub-run
  (``tracekit.run(parent=...)``), as a node of a parent graph or called from a tool.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from uuid import UUID

from langchain.agents.middleware import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    ToolCallRequest,
)
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.types import Command

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from .._capture.decorators import ModelCall
from .._capture.run import Run, current_run, describe, exception_attrs
from .._capture.run import run as open_run
from .._capture.specs import Bounds, ToolSpec
from .._integrations.langchain import (
    ChatSpec,
    ToolCallFailed,
    ToolOutcome,
    answer_of,
    model_name,
    prompt_json,
    self_recorded,
    served_model,
    tool_result,
)
from .._integrations.prices import Prices
from ..errors import Halted

__all__ = ["TracekitCallbackHandler", "TracekitMiddleware", "subgraph"]

#: ``writes=``: the write tools' names, or each name with its ``@tracekit.tool`` ledger options
Writes = Iterable[str] | Mapping[str, Mapping[str, Any]]
ToolResult = ToolMessage | Command[Any]
ModelResult = ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]


class _Tools:
    """The ``ToolSpec`` of each tool name: a declared write with its ledger options, argument
    bounds, or a plain read tool (made on first use, then kept)."""

    def __init__(self, writes: Writes, bounds: Mapping[str, Bounds] | None) -> None:
        options = dict(writes) if isinstance(writes, Mapping) else {name: {} for name in writes}
        self._bounds = dict(bounds or {})
        self._specs = {name: self._write(name, dict(opts)) for name, opts in options.items()}

    def _write(self, name: str, opts: dict[str, Any]) -> ToolSpec:
        """A write tool's spec; unknown options fail here, when the agent is built."""
        bounds = opts.pop("bounds", self._bounds.get(name))
        retry_on = (ToolCallFailed, *tuple(opts.pop("retry_on", ())))
        return ToolSpec(name, True, bounds, retry_on=retry_on, **opts)

    def get(self, name: str) -> ToolSpec:
        spec = self._specs.get(name)
        if spec is None:
            spec = self._specs[name] = ToolSpec(
                name, False, self._bounds.get(name), retry_on=(ToolCallFailed,)
            )
        return spec


class _Models:
    """One ``ChatSpec`` per model id, on one price table."""

    def __init__(self, prices: Mapping[str, Mapping[str, float]] | None) -> None:
        self.prices = Prices.shipped(prices)
        self._specs: dict[str | None, ChatSpec] = {}

    def get(self, name: str | None) -> ChatSpec:
        spec = self._specs.get(name)
        if spec is None:
            spec = self._specs[name] = ChatSpec(name, self.prices)
        return spec


def _check_flags(run: Run) -> None:
    """The kill switch before a model call: a halted run spends nothing more (the refusal is
    recorded, then raised)."""
    guard = run._guard
    if guard is not None:
        try:
            guard.check_flags()
        except Halted as halt:
            run._refused(halt)
            raise


class TracekitMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Records and guards a ``create_agent`` agent's model and tool calls.

    ``writes`` names the tools that change the world (or maps each to its ``@tracekit.tool``
    ledger options: ``destination``, ``idempotency_key``, ``amount``, ``reversible``, ...);
    ``bounds`` limits tools' numeric arguments (``{"refund": {"amount": (0, 200)}}``);
    ``prices`` adds to or overrides the shipped price table (USD per million tokens).

    Put it first in ``middleware=[...]`` (the outermost layer), so that no other middleware
    (a retry, an error handler) catches the ``Halted`` it raises or sees calls it has not.
    """

    def __init__(
        self,
        *,
        writes: Writes = (),
        bounds: Mapping[str, Bounds] | None = None,
        prices: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        super().__init__()
        self._tools = _Tools(writes, bounds)
        self._models = _Models(prices)

    # -- tools --------------------------------------------------------------------------------
    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        """The tool call through the run: guarded, recorded, a write through the ledger."""
        run = current_run()
        if run is None or self_recorded(request.tool):
            return handler(request)
        call = request.tool_call

        def execute(**_: Any) -> ToolOutcome:
            return ToolOutcome(handler(request))

        try:
            got = run._invoke(self._tools.get(call["name"]), execute, None, (), dict(call["args"]))
        except ToolCallFailed as failed:
            return failed.for_call(dict(call))
        return tool_result(got, dict(call))  # type: ignore[no-any-return]

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
    ) -> ToolResult:
        """``wrap_tool_call`` for ``ainvoke`` / ``astream``."""
        run = current_run()
        if run is None or self_recorded(request.tool):
            return await handler(request)
        call = request.tool_call

        async def execute(**_: Any) -> ToolOutcome:
            return ToolOutcome(await handler(request))

        spec = self._tools.get(call["name"])
        try:
            got = await run._ainvoke(spec, execute, None, (), dict(call["args"]))
        except ToolCallFailed as failed:
            return failed.for_call(dict(call))
        return tool_result(got, dict(call))  # type: ignore[no-any-return]

    # -- the model ----------------------------------------------------------------------------
    def _start(self, run: Run, request: ModelRequest[Any]) -> ModelCall:
        _check_flags(run)
        messages = request.messages
        if request.system_message is not None:
            messages = [request.system_message, *messages]
        spec = self._models.get(model_name(request.model))
        call = ModelCall.start(spec, (prompt_json(messages, request.tools),), {})
        assert call is not None  # inside a run
        return call

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResult:
        """The model call, recorded; refused before it is made when the run is halted."""
        run = current_run()
        if run is None:
            return handler(request)
        call = self._start(run, request)
        if call.done:  # agent replay: the recorded answer, through the agent's own code
            return handler(request.override(model=served_model(call.result, request.model)))
        try:
            response = handler(request)
        except Exception as exc:
            call.failed(exc)
            raise
        call.answered(answer_of(response))  # the step and cost bounds may halt here
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResult:
        """``wrap_model_call`` for ``ainvoke`` / ``astream``."""
        run = current_run()
        if run is None:
            return await handler(request)
        call = self._start(run, request)
        if call.done:
            return await handler(request.override(model=served_model(call.result, request.model)))
        try:
            response = await handler(request)
        except Exception as exc:
            call.failed(exc)
            raise
        call.answered(answer_of(response))
        return response


class TracekitCallbackHandler(BaseCallbackHandler):
    """Records an older LangChain program's model and tool calls into the current run
    (``config={"callbacks": [TracekitCallbackHandler()]}``).

    A callback cannot change what a call returns, so this records and refuses, no more. A
    tool call the guard refuses (the kill switch, a bound, a runaway detector) raises
    ``Halted`` from ``on_tool_start``, before the tool runs; a model call of a halted run
    raises it from ``on_chat_model_start``, before the model is called; the step and cost
    bounds raise it from ``on_llm_end``, after the answer (LangChain re-raises a callback's
    error only with ``raise_error = True``, set here). Writes are marked and counted by the
    guard, but a repeated write fires again: for the ledger use ``TracekitMiddleware`` or
    ``@tracekit.tool(writes=True)`` on the function. Agent replay needs the middleware (or
    ``@tracekit.tool`` / ``@tracekit.model``): while replaying, this handler records nothing.
    Do not combine it with the middleware on the same agent: each would record the calls.

    ``run`` pins the run to record into (default: the run of the thread or task that makes
    the call; the handler is called inline, in that context).
    """

    raise_error = True  # so Halted reaches the caller
    run_inline = True  # in the caller's thread and context, where its run is current

    def __init__(
        self,
        *,
        writes: Writes = (),
        bounds: Mapping[str, Bounds] | None = None,
        prices: Mapping[str, Mapping[str, float]] | None = None,
        run: Run | None = None,
    ) -> None:
        self._tools = _Tools(writes, bounds)
        self._models = _Models(prices)
        self._run = run
        self._model_calls: dict[UUID, ModelCall] = {}
        self._tool_calls: dict[UUID, tuple[Run, str, str, float]] = {}

    def _current(self) -> Run | None:
        found = self._run or current_run()
        return None if found is None or found._served is not None else found

    # -- models -------------------------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Before a chat model is called: the kill switch, then the prompt."""
        params = kwargs.get("invocation_params") or {}
        tools = params.get("tools") or ()
        self._model_start(run_id, prompt_json(messages[0] if messages else [], tools), kwargs)

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Before a text-completion model is called (or a chat model with no chat hook)."""
        self._model_start(run_id, canonical_json({"prompts": prompts}), kwargs)

    def _model_start(self, run_id: UUID, prompt: str, kwargs: dict[str, Any]) -> None:
        run = self._current()
        if run is None:
            return
        _check_flags(run)
        params = kwargs.get("invocation_params") or {}
        meta = kwargs.get("metadata") or {}
        name = model_name(params) or meta.get("ls_model_name")
        call = ModelCall.start(self._models.get(name), (prompt,), {})
        if call is not None:
            self._model_calls[run_id] = call

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """The model's answer: the model output (a new step; the bounds are judged)."""
        call = self._model_calls.pop(run_id, None)
        if call is None:
            return
        generation = (
            response.generations[0][0] if response.generations and response.generations[0] else None
        )
        answer = getattr(generation, "message", None) or getattr(generation, "text", None)
        call.answered(answer)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._model_calls.pop(run_id, None)
        if call is not None:
            call.failed(error)

    # -- tools --------------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Before a tool runs: the guard (a refusal raises ``Halted``), then the call."""
        run = self._current()
        if run is None:
            return
        name = str(serialized.get("name") or kwargs.get("name") or "tool")
        spec = self._tools.get(name)
        named = inputs if isinstance(inputs, dict) else {"input": input_str}
        encoded = canonical_json(named)
        if run._guard is not None:
            run.check(spec, named, encoded)
        call_id = f"call_{next(run._calls)}"
        run._record(EventKind.TOOL_CALL, name, call_id, encoded, status=EventStatus.STARTED,
                    attrs=spec.attrs)  # fmt: skip
        self._tool_calls[run_id] = (run, name, call_id, time.perf_counter())

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """The tool's result (a ``ToolMessage`` with status error counts as failed)."""
        pending = self._tool_calls.pop(run_id, None)
        if pending is None:
            return
        run, name, call_id, started = pending
        if isinstance(output, ToolMessage) and output.status == "error":
            failed = ToolCallFailed(output.content, output)
            run.result(name, call_id, started, None, EventStatus.ERROR, describe(failed),
                       exception_attrs(failed))  # fmt: skip
            return
        value = {"content": output.content} if isinstance(output, ToolMessage) else output
        run.result(name, call_id, started, canonical_json(value))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        pending = self._tool_calls.pop(run_id, None)
        if pending is not None:
            run, name, call_id, started = pending
            run.result(name, call_id, started, None, EventStatus.ERROR, describe(error),
                       exception_attrs(error))  # fmt: skip


def subgraph(
    graph: Runnable[Any, Any], *, name: str | None = None, tenant: str | None = None, **attrs: Any
) -> Runnable[Any, Any]:
    """``graph`` (a compiled subgraph, a ``create_agent`` sub-agent, any runnable) as a
    sub-run of the run that calls it: ``builder.add_node("refunds", subgraph(refund_agent))``,
    or ``subgraph(researcher).invoke(...)`` from a tool.

    Each call opens ``tracekit.run(tenant=..., parent=<the calling run>, subgraph=<name>,
    **attrs)`` around ``graph.invoke`` / ``graph.ainvoke``, so the sub-agent's middleware
    records into its own run, the guard's depth and fan-out bounds apply, and a ``Halted``
    in it stops the parent too. ``tenant`` defaults to the parent's; called outside any run,
    the graph runs as it is (unrecorded).
    """
    label = name or getattr(graph, "name", None) or type(graph).__name__

    def sub_run(parent: Run) -> Run:
        return open_run(tenant or parent.tenant, parent=parent, subgraph=label, **attrs)

    def invoke(state: Any, config: RunnableConfig) -> Any:
        parent = current_run()
        if parent is None:
            return graph.invoke(state, config)
        with sub_run(parent):
            return graph.invoke(state, config)

    async def ainvoke(state: Any, config: RunnableConfig) -> Any:
        parent = current_run()
        if parent is None:
            return await graph.ainvoke(state, config)
        async with sub_run(parent):
            return await graph.ainvoke(state, config)

    return RunnableLambda(invoke, afunc=ainvoke, name=label)
