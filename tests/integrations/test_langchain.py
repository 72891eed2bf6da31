"""``tracekit.integrations.langchain``: LangChain v1's real ``create_agent`` and LangGraph graphs,
recorded and guarded.

The agent (``_langchain_agent.py``) runs on a scripted tool-calling chat model, in process, no
network. ``TracekitMiddleware`` guards each tool call before it runs (a ``Halted`` leaves the
graph: the agent stops), records it, sends the write through the ledger, and records each
model call with usage, cost and normalised tool calls, refusing it when the run is halted. The
callback handler records older code and refuses through ``on_tool_start`` /
``on_chat_model_start``. A subgraph wrapped by ``subgraph()`` is a sub-run. A runaway agent is
halted, exported, made a test that passes in a real pytest, and replayed through the agent's
own code with the recorded ``AIMessage``s decoded back.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import _langchain_agent as lc
import pytest
from _recorded import recorded_events, run_gate
from langchain.agents import create_agent
from langchain.agents.middleware import ToolRetryMiddleware
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, StructuredTool, ToolException, tool
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command

import tracekit
from tracekit._capture.state import PROCESS
from tracekit._gate.maketest import make_test
from tracekit.integrations.langchain import (
    TracekitCallbackHandler,
    TracekitMiddleware,
    subgraph,
)
from tracekit.testing import Recording

HERE = Path(__file__).resolve().parent
COST = (lc.USAGE["input_tokens"] * 0.15 + lc.USAGE["output_tokens"] * 0.6) / 1e6  # gpt-4o-mini


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    lc.REFUNDS.clear()
    lc.ASKED.clear()
    lc.MODE = "healthy"
    yield


def events(store: Path, *kinds: str) -> list[dict[str, Any]]:
    return recorded_events(store, kinds, "ts, seq")


def halt_tenant(store: Path, tenant: str = "acme") -> None:
    """``tracekit halt tenant``, seen by this process's guard at once."""
    runtime = PROCESS.guard_runtime()  # its control store: the one the halt goes to
    assert runtime is not None
    tracekit.halt("tenant", tenant, reason="refund loop", store=store)
    runtime.refresh()
    assert f"halt:tenant:{tenant}" in runtime.flags


# == the middleware: tools =======================================================================
def test_each_tool_call_is_recorded_and_the_write_goes_through_the_ledger(
    guarded: Callable[..., Path],
) -> None:
    store = guarded(max_repeats=10)
    agent, model = lc.build("runaway")
    with tracekit.run(tenant="acme") as run, pytest.raises(GraphRecursionError):
        agent.invoke(lc.ask("refund order 42"), {"recursion_limit": 7})
    assert lc.REFUNDS == ["42"]  # three calls, one refund: the repeats got the first outcome
    calls = events(store, "tool_call")
    assert [c["name"] for c in calls] == ["refund"] * 3
    assert all(json.loads(c["args"]) == {"order_id": "42", "amount": 20.0} for c in calls)
    assert all(json.loads(c["attrs"]) == {"writes": True} for c in calls)
    results = events(store, "tool_result")
    assert [r["status"] for r in results] == ["ok", "duplicate", "duplicate"]
    first = json.loads(results[0]["output"])
    assert json.loads(first["content"]) == {"order_id": "42", "status": "refunded"}
    assert all(json.loads(r["output"]) == first for r in results)
    ledger = Recording(store).rows("SELECT status, destination FROM ledger ORDER BY ts")
    assert [r["status"] for r in ledger] == ["fired", *["suppressed_duplicate"] * 2]
    assert {r["destination"] for r in ledger} == {"payments"}
    # every repeat still reached the model as the answer to its own tool call
    [prompt] = [p for p in events(store, "prompt") if p["step"] == 3]
    tool_answers = [m for m in json.loads(prompt["args"])["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_answers] == ["call_1", "call_2", "call_3"]
    assert run.step == 4 and len(model.calls) == 4


def test_a_refused_tool_call_never_runs_and_halted_leaves_the_graph(
    guarded: Callable[..., Path],
) -> None:
    store = guarded(max_repeats=5)
    agent, model = lc.build("runaway", bounds={"refund": {"amount": (0, 10)}})
    with pytest.raises(tracekit.Halted) as halted, tracekit.run(tenant="acme"):
        agent.invoke(lc.ask("refund order 42"))
    assert halted.value.signal == "scope"  # the argument bounds
    assert lc.REFUNDS == []  # refused before it ran
    assert len(model.calls) == 1  # the agent stopped: the model never read the refusal
    [guard] = events(store, "guard")
    assert guard["name"] == "refund" and guard["status"] == "refused"
    assert events(store, "tool_result") == []
    [end] = events(store, "run_end")
    assert end["status"] == "halted"


def test_halted_stops_the_agent_even_when_an_outer_retry_middleware_swallows_it(
    guarded: Callable[..., Path],
) -> None:
    """Placed after a retry middleware that turns every exception into a ToolMessage, the
    refusal reaches the model as text; the run is halted all the same, so the next model call
    is refused before it is made."""
    store = guarded(max_repeats=3)
    retry = ToolRetryMiddleware(max_retries=1, initial_delay=0.0, jitter=False)
    agent, model = lc.build("runaway", extra=[retry])
    with pytest.raises(tracekit.Halted) as halted, tracekit.run(tenant="acme"):
        agent.invoke(lc.ask("refund order 42"))
    assert halted.value.signal == "repeats"
    assert len(model.calls) == 4  # the 4th answer asked again; no 5th call was made
    guards = events(store, "guard")
    assert [g["name"] for g in guards] == ["refund", "refund", "repeats"]  # 2 tries, then model


def test_a_tool_error_message_is_a_failed_call_and_the_agent_goes_on(
    guarded: Callable[..., Path],
) -> None:
    store = guarded(max_repeats=3)
    agent, _ = lc.build("bad-args")
    with tracekit.run(tenant="acme"):
        state = agent.invoke(lc.ask("refund order 42"))
    assert state["messages"][-1].content == "refunded"
    bad, good = events(store, "tool_result")
    assert bad["status"] == "error" and "ToolCallFailed" in bad["error"]
    assert good["status"] == "ok" and lc.REFUNDS == ["42"]
    error_message = next(m for m in state["messages"] if isinstance(m, ToolMessage))
    assert error_message.status == "error" and error_message.tool_call_id == "call_1"
    ledger = Recording(store).rows("SELECT status FROM ledger_history ORDER BY ts")
    assert [r["status"] for r in ledger] == ["reserved", "failed", "reserved", "fired"]


def test_a_write_that_answered_with_an_error_message_runs_again_when_retried(
    guarded: Callable[..., Path],
) -> None:
    store = guarded()
    failures = ["payments API timed out"]

    def flaky(order_id: str, amount: float) -> str:
        if failures:
            raise ToolException(failures.pop())
        lc.REFUNDS.append(order_id)
        return "refunded"

    refund = StructuredTool.from_function(flaky, name="refund", description="Refund.",
                                          handle_tool_error=True)  # fmt: skip
    model = lc.ScriptedChat(mode="runaway", calls=[])
    agent = create_agent(model, tools=[refund], middleware=[TracekitMiddleware(writes=["refund"])])
    with tracekit.run(tenant="acme"), pytest.raises(GraphRecursionError):
        agent.invoke(lc.ask("refund 42"), {"recursion_limit": 5})
    assert lc.REFUNDS == ["42"]  # the same call again, after the error: it ran, once
    assert [r["status"] for r in events(store, "tool_result")] == ["error", "ok"]


def test_a_tool_that_returns_a_command_is_recorded_and_its_duplicate_answers_its_own_call(
    guarded: Callable[..., Path],
) -> None:
    store = guarded()

    @tool
    def refund(
        order_id: str, amount: float, tool_call_id: Annotated[str, InjectedToolCallId]
    ) -> Command[Any]:
        """Refund an order."""
        lc.REFUNDS.append(order_id)
        return Command(update={"messages": [ToolMessage("done", tool_call_id=tool_call_id)]})

    model = lc.ScriptedChat(mode="runaway", calls=[])
    agent = create_agent(model, tools=[refund], middleware=[TracekitMiddleware(writes=["refund"])])
    with tracekit.run(tenant="acme"), pytest.raises(GraphRecursionError):
        agent.invoke(lc.ask("refund 42"), {"recursion_limit": 5})
    assert lc.REFUNDS == ["42"]
    first, again = events(store, "tool_result")
    assert json.loads(first["output"])["command"]["update"]["messages"][0]["content"] == "done"
    assert again["status"] == "duplicate"
    [prompt] = [p for p in events(store, "prompt") if p["step"] == 2]
    answers = [m for m in json.loads(prompt["args"])["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in answers] == [
        ("call_1", "done"), ("call_2", "done")]  # fmt: skip


def test_write_options_are_checked_when_the_middleware_is_made() -> None:
    with pytest.raises(TypeError, match="unknown options"):
        TracekitMiddleware(writes={"refund": {"idempotency": "refund:42"}})
    TracekitMiddleware(writes={"refund": {"bounds": {"amount": (0, 200)}, "reversible": True}})


def test_a_tool_already_decorated_with_tracekit_is_recorded_once(
    guarded: Callable[..., Path],
) -> None:
    store = guarded()

    @tracekit.tool(writes=True)
    def refund_fn(order_id: str, amount: float) -> str:
        lc.REFUNDS.append(order_id)
        return "refunded"

    refund = StructuredTool.from_function(refund_fn, name="refund", description="Refund.")
    agent = create_agent(lc.ScriptedChat(calls=[]), tools=[refund],
                         middleware=[TracekitMiddleware()])  # fmt: skip
    with tracekit.run(tenant="acme"):
        agent.invoke(lc.ask("refund 42"))
    assert [c["name"] for c in events(store, "tool_call")] == ["refund_fn"]


# == the middleware: the model ===============================================================
def test_each_model_call_is_a_prompt_and_an_output_with_usage_cost_and_tool_calls(
    guarded: Callable[..., Path],
) -> None:
    store = guarded()
    agent, _ = lc.build("healthy")
    with tracekit.run(tenant="acme") as run:
        agent.invoke(lc.ask("refund order 42"))
        assert run.step == 2
    first, second = events(store, "prompt")
    sent = json.loads(first["args"])
    assert sent["tools"] == ["refund"]
    assert [m["role"] for m in sent["messages"]] == ["system", "human"]
    assert "id" not in sent["messages"][1]  # LangChain's random ids: never in the prompt
    assert [m["role"] for m in json.loads(second["args"])["messages"]] == [
        "system", "human", "ai", "tool"]  # fmt: skip
    asked, answered = events(store, "model_output")
    for output in (asked, answered):
        assert output["name"] == "gpt-4o-mini"
        assert (output["tokens_in"], output["tokens_out"]) == (120, 30)
        assert output["cost_usd"] == pytest.approx(COST)
    assert asked["call_id"] == first["call_id"]
    [call] = json.loads(asked["attrs"])["tool_calls"]
    assert call == {"id": "call_1", "name": "refund",
                    "arguments": '{"amount":20.0,"order_id":"42"}'}  # fmt: skip
    assert answered["attrs"] is None and json.loads(answered["output"])["content"] == "refunded"


def test_a_halted_run_is_refused_before_the_model_is_called(
    guarded: Callable[..., Path],
) -> None:
    store = guarded(max_repeats=3)
    agent, model = lc.build("healthy")
    with pytest.raises(tracekit.Halted) as halted, tracekit.run(tenant="acme"):
        halt_tenant(store)  # the on-call halts the tenant while the run is going
        agent.invoke(lc.ask("refund order 42"))
    assert halted.value.level == "tenant"
    assert model.calls == [] and events(store, "prompt") == []
    [guard] = events(store, "guard")
    assert guard["status"] == "halted" and guard["step"] == 0


def test_the_cost_bound_halts_after_the_model_output_and_nothing_more_is_spent(
    guarded: Callable[..., Path],
) -> None:
    guarded(max_cost_usd=COST * 1.5)
    agent, model = lc.build("runaway")
    with pytest.raises(tracekit.Halted) as halted, tracekit.run(tenant="acme"):
        agent.invoke(lc.ask("refund order 42"))
    assert halted.value.signal == "cost"
    assert len(model.calls) == 2 and lc.REFUNDS == ["42"]  # the 2nd answer's call never ran


def test_async_agents_are_recorded_and_halted_the_same_way(guarded: Callable[..., Path]) -> None:
    store = guarded(max_repeats=3)

    async def both() -> None:
        agent, _ = lc.build("healthy")
        async with tracekit.run(tenant="acme"):
            state = await agent.ainvoke(lc.ask("refund order 42"))
        assert state["messages"][-1].content == "refunded"
        agent, _ = lc.build("runaway")
        with pytest.raises(tracekit.Halted, match="4 times with the same arguments"):
            async with tracekit.run(tenant="acme"):
                await agent.ainvoke(lc.ask("refund order 42"))

    asyncio.run(both())
    assert lc.REFUNDS == ["42", "42"]  # once per run
    outputs = events(store, "model_output")
    assert len(outputs) == 2 + 4 and all(o["cost_usd"] == pytest.approx(COST) for o in outputs)
    assert [g["name"] for g in events(store, "guard")] == ["refund"]


def test_outside_a_run_the_agent_is_untouched_and_nothing_is_recorded(
    guarded: Callable[..., Path],
) -> None:
    store = guarded(max_repeats=3)
    agent, _ = lc.build("healthy")
    assert agent.invoke(lc.ask("refund 42"))["messages"][-1].content == "refunded"
    assert events(store) == []


# == sub-runs =====================================================================================
def _parent(child: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("triage", lambda state: {"messages": []})
    builder.add_node("refunds", subgraph(child, name="refunds", team="payments"))
    builder.add_edge(START, "triage")
    builder.add_edge("triage", "refunds")
    builder.add_edge("refunds", END)
    return builder.compile()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_subgraph_is_a_sub_run_and_its_halt_stops_the_parent(
    guarded: Callable[..., Path], asynchronous: bool
) -> None:
    store = guarded(max_repeats=3)

    def invoke(graph: Any, ticket: str) -> Any:
        if not asynchronous:
            with tracekit.run(tenant="acme") as root:
                return root, graph.invoke(lc.ask(ticket))

        async def go() -> Any:
            async with tracekit.run(tenant="acme") as root:
                return root, await graph.ainvoke(lc.ask(ticket))

        return asyncio.run(go())

    root, state = invoke(_parent(lc.build("healthy")[0]), "refund order 42")
    assert state["messages"][-1].content == "refunded"
    runs = {r["run_id"]: r for r in Recording(store).runs()}
    [child] = [r for r in runs.values() if r["parent_run_id"] == root.run_id]
    assert child["root_run_id"] == root.run_id and child["tool_calls"] == 1
    assert runs[root.run_id]["tool_calls"] == 0 and runs[root.run_id]["steps"] == 0
    [start] = [e for e in events(store, "run_start") if e["run_id"] == child["run_id"]]
    assert json.loads(start["attrs"]) == {"subgraph": "refunds", "team": "payments"}

    with pytest.raises(tracekit.Halted):
        invoke(_parent(lc.build("runaway")[0]), "refund order 42 NOW")
    ended = {r["run_id"]: r["status"] for r in Recording(store).runs()}
    assert sorted(ended.values()) == ["halted", "halted", "ok", "ok"]


def test_a_sub_agent_called_from_a_tool_is_a_sub_run(guarded: Callable[..., Path]) -> None:
    store = guarded(max_repeats=3)
    refunds = subgraph(lc.build("healthy")[0], name="refunds")

    @tool
    def delegate(order_id: str, amount: float) -> str:
        """Hand the refund to the refunds agent."""
        return str(refunds.invoke(lc.ask(f"refund {order_id}"))["messages"][-1].content)

    model = lc.ScriptedChat(calls=[])
    model_answer = model.answer

    def via_delegate(messages: Any) -> AIMessage:
        said = model_answer(messages)
        for call in said.tool_calls:
            call["name"] = "delegate"
        return said

    object.__setattr__(model, "answer", via_delegate)
    agent = create_agent(model, tools=[delegate], middleware=[TracekitMiddleware()])
    with tracekit.run(tenant="acme") as root:
        agent.invoke(lc.ask("refund order 42"))
    runs = Recording(store).runs()
    [child] = [r for r in runs if r["parent_run_id"] == root.run_id]
    calls = events(store, "tool_call")
    assert [(c["run_id"] == root.run_id, c["name"]) for c in calls] == [
        (True, "delegate"), (False, "refund")]  # fmt: skip
    assert child["tool_calls"] == 1 and lc.REFUNDS == ["42"]


# == the callback handler ========================================================================
def _old_style_loop(model: Any, config: dict[str, Any], asynchronous: bool = False) -> list[Any]:
    """An agent loop without middleware: the model, then each tool it asks for."""

    async def turn(messages: list[Any]) -> bool:
        said = await model.ainvoke(messages, config)
        messages.append(said)
        for call in said.tool_calls:
            messages.append(await lc.refund.ainvoke(call, config))
        return bool(said.tool_calls)

    messages: list[Any] = [HumanMessage("refund order 42")]
    for _ in range(6):
        if asynchronous:
            if not asyncio.run(turn(messages)):
                break
            continue
        said = model.invoke(messages, config)
        messages.append(said)
        if not said.tool_calls:
            break
        for call in said.tool_calls:
            messages.append(lc.refund.invoke(call, config))
    return messages


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_callback_handler_records_model_and_tool_calls(
    guarded: Callable[..., Path], asynchronous: bool
) -> None:
    store = guarded()
    handler = TracekitCallbackHandler(writes=["refund"])
    with tracekit.run(tenant="acme") as run:
        messages = _old_style_loop(lc.ScriptedChat(calls=[]), {"callbacks": [handler]},
                                   asynchronous)  # fmt: skip
    assert messages[-1].content == "refunded" and run.step == 2
    kinds = [e["kind"] for e in events(store, "prompt", "model_output", "tool_call",
                                             "tool_result")]  # fmt: skip
    assert kinds == ["prompt", "model_output", "tool_call", "tool_result", "prompt",
                     "model_output"]  # fmt: skip
    asked = events(store, "model_output")[0]
    assert asked["name"] == "gpt-4o-mini" and asked["cost_usd"] == pytest.approx(COST)
    assert json.loads(asked["attrs"])["tool_calls"][0]["name"] == "refund"
    [call] = events(store, "tool_call")
    assert json.loads(call["args"]) == {"order_id": "42", "amount": 20.0}
    assert json.loads(call["attrs"]) == {"writes": True}
    [result] = events(store, "tool_result")
    assert json.loads(json.loads(result["output"])["content"])["status"] == "refunded"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_callback_handler_refuses_a_tool_call_before_it_runs_but_has_no_ledger(
    guarded: Callable[..., Path], asynchronous: bool
) -> None:
    store = guarded(max_repeats=3)
    handler = TracekitCallbackHandler(writes=["refund"])
    with pytest.raises(tracekit.Halted) as halted, tracekit.run(tenant="acme"):
        _old_style_loop(lc.ScriptedChat(mode="runaway", calls=[]), {"callbacks": [handler]},
                        asynchronous)  # fmt: skip
    assert halted.value.signal == "repeats"
    assert lc.REFUNDS == ["42"] * 3  # the 4th refused before it ran; the repeats did fire
    assert [g["name"] for g in events(store, "guard")] == ["refund"]


def test_the_callback_handler_refuses_a_model_call_of_a_halted_run(
    guarded: Callable[..., Path],
) -> None:
    store = guarded(max_repeats=3)
    model = lc.ScriptedChat(calls=[])
    with pytest.raises(tracekit.Halted) as halted, tracekit.run(tenant="acme"):
        halt_tenant(store)  # while the run is going
        _old_style_loop(model, {"callbacks": [TracekitCallbackHandler()]})
    assert halted.value.level == "tenant"
    assert model.calls == [] and events(store, "prompt") == []


# == never again ===================================================================================

def test_a_langgraph_agent_runs_away_is_halted_and_its_incident_test_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(HERE / "_langchain_agent.py", tmp_path / "lc_agent.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lc_agent", None)
    agent = importlib.import_module("lc_agent")
    store, fixtures = tmp_path / "store", tmp_path / "fixtures/incidents"
    try:
        tracekit.configure(store=store, guard=tracekit.Guard(max_repeats=3))
        assert agent.handle("refund order 42, please") == "refunded"  # healthy: not halted
        agent.MODE = "runaway"
        with pytest.raises(tracekit.Halted) as halted:
            agent.handle("refund order 42 NOW")
        assert halted.value.signal == "repeats"
        assert agent.REFUNDS == ["42", "42"]  # once per run: every repeat suppressed
        runs = Recording(store).runs()
        assert [r["status"] for r in runs] == ["ok", "halted"]
        tracekit.export_incident([runs[-1]["run_id"]], "lc-loop", fixtures, store)
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "elsewhere", guard=False)
    asked = len(agent.ASKED)
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_repeats = 3\n")
    made = make_test("lc-loop", fixtures, tmp_path / "tests/incidents",
                     entrypoint="lc_agent:handle")  # fmt: skip
    assert made.verdict.contained and made.verdict.mode == "agent", made.verdict.describe()
    assert made.verdict.signal == "repeats" and made.verdict.step == 4
    # agent replay ran the agent's code: the model was served its recorded AIMessages, and
    # the tools never ran
    assert len(agent.ASKED) == asked and agent.REFUNDS == ["42", "42"]
    gate = run_gate(tmp_path)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "1 contained" in gate.stdout
    policy = tracekit.replay(fixtures / "lc-loop", guard=tracekit.Guard(max_repeats=3))
    assert policy.contained and policy.signal == "repeats" and policy.step == made.verdict.step
    assert not tracekit.replay(fixtures / "lc-loop", guard=tracekit.Guard(max_repeats=5)).contained


def test_the_example_agent_is_halted_in_a_runaway_and_ends_when_healthy(
    guarded: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HERE.parents[1] / "examples"))
    sys.modules.pop("langgraph_agent", None)
    example = importlib.import_module("langgraph_agent")
    guarded(max_repeats=3)
    try:
        healthy = lc.ScriptedChat(calls=[])
        assert example.handle("refund order 42", model=healthy) == "refunded"
        with pytest.raises(tracekit.Halted, match="4 times with the same arguments"):
            example.handle("refund order 42", model=lc.ScriptedChat(mode="runaway", calls=[]))
        assert example.REFUNDS == ["42"]  # its key is the order: one refund across runs
    finally:
        sys.modules.pop("langgraph_agent", None)
