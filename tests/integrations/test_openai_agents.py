"""``tracekit.integrations.openai_agents``: the real OpenAI Agents SDK, its runs recorded by a
``TracingProcessor`` and stopped by ``guard(agent)``.

The SDK's own models (chat completions and Responses) talk to a loopback fake of the API, and its
own ``ScriptedModel`` drives handoffs; the processor replaces the SDK's exporter, so nothing is
uploaded. Agent spans are runs (a handoff a sub-run), model spans prompts and outputs with usage,
cost and tool calls, function spans tool calls (once, with the guard's wrapping); a halt is
raised before the tool runs and ends ``Runner.run``; the runaway is halted, exported, made a test
that passes in a real pytest, and replayed through the agent's own code with nothing listening.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _openai_agents_agent as oa
import agents
import pytest
from _llm_server import CALL, USAGE_IN, USAGE_OUT
from _openai_agents_llm import AgentsLLM
from _recorded import recorded_events, run_gate
from agents import Agent, RunConfig, Runner, function_tool
from agents.exceptions import AgentsException
from agents.testing import ScriptedModel, assistant_message, function_call
from agents.tracing.provider import DefaultTraceProvider
from agents.tracing.setup import get_trace_provider

import tracekit
from tracekit._capture.state import PROCESS
from tracekit._gate.maketest import make_test
from tracekit.integrations.openai_agents import RunHalted, TracekitProcessor, guard
from tracekit.testing import Recording

MINI = (USAGE_IN * 0.15 + USAGE_OUT * 0.6) / 1e6  # gpt-4o-mini in the shipped price table
ARGS = json.loads(CALL["arguments"])


@pytest.fixture(autouse=True)
def traced() -> Iterator[TracekitProcessor]:
    """Only tracekit's processor, for this test (the SDK's exporter to OpenAI is off); the
    processors as they were afterwards."""
    provider = get_trace_provider()
    assert isinstance(provider, DefaultTraceProvider)
    before = list(provider._multi_processor._processors)
    agents.set_trace_processors([oa.PROCESSOR])
    oa.REFUNDS.clear()
    try:
        yield oa.PROCESSOR
    finally:
        agents.set_trace_processors(before)


@pytest.fixture
def llm() -> Iterator[AgentsLLM]:
    server = AgentsLLM()
    oa.BASE["url"] = f"{server.url}/v1"
    yield server
    server.stop()


def events(store: Path, *kinds: str) -> list[dict[str, Any]]:
    return recorded_events(store, kinds, "run_id, seq")


def run(agent: Agent[Any], streamed: bool = False, **kwargs: Any) -> str:
    """One ``Runner`` run of ``agent``, streamed or not: its final output."""
    if not streamed:
        return str(Runner.run_sync(agent, "refund order 42", **kwargs).final_output)

    async def stream() -> str:
        result = Runner.run_streamed(agent, "refund order 42", **kwargs)
        async for _ in result.stream_events():
            pass
        return str(result.final_output)

    return asyncio.run(stream())


# == the processor =================================================================================
def test_the_sdks_exporter_to_openai_is_replaced_by_tracekits_processor() -> None:
    provider = get_trace_provider()
    assert isinstance(provider, DefaultTraceProvider)
    assert provider._multi_processor._processors == (oa.PROCESSOR,)


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_each_model_call_is_a_prompt_and_an_output_with_usage_cost_and_tool_calls(
        guarded: Callable[..., Path], llm: AgentsLLM, api: str, streamed: bool) -> None:
    store = guarded()
    llm.mode = "healthy"
    assert run(oa.build(api), streamed) == "refunded"
    rows = events(store)
    assert [r["kind"] for r in rows] == ["run_start", "prompt", "model_output", "tool_call",
                                         "tool_result", "prompt", "model_output", "run_end"]
    start, prompt, output, call, result, _, last, end = rows
    assert start["tenant"] == "acme" and json.loads(start["attrs"]) == {"agent": "support"}
    assert "refund order 42" in prompt["args"] and output["call_id"] == prompt["call_id"]
    assert (output["tokens_in"], output["tokens_out"]) == (USAGE_IN, USAGE_OUT)
    assert output["cost_usd"] == pytest.approx(MINI) and output["name"] == "gpt-4o-mini"
    [tool_call] = json.loads(output["attrs"])["tool_calls"]
    assert tool_call["name"] == "refund" and json.loads(tool_call["arguments"]) == ARGS
    assert tool_call["id"] == "call_1"
    assert (call["name"], json.loads(call["args"])) == ("refund", ARGS)
    assert json.loads(result["output"])["status"] == "refunded"
    assert last["attrs"] is None and (last["step"], end["status"]) == (2, "ok")
    assert oa.REFUNDS == ["42"]


def test_an_instrumented_client_records_the_model_calls_and_the_processor_does_not_again(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded()
    llm.mode = "healthy"
    assert run(oa.build(instrument=True)) == "refunded"
    prompts = events(store, "prompt")
    assert len(prompts) == 2 and all(json.loads(p["args"]).get("messages") for p in prompts)
    assert len(events(store, "model_output")) == 2


def test_an_unguarded_tool_is_recorded_from_its_span_and_a_guarded_one_only_once(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded()
    llm.mode = "healthy"
    assert run(oa.build(guarded=False)) == "refunded"
    assert run(oa.build()) == "refunded"
    starts = events(store, "run_start")
    assert len(starts) == 2
    for run_id in (r["run_id"] for r in starts):
        calls = [r for r in events(store, "tool_call", "tool_result") if r["run_id"] == run_id]
        assert [(r["kind"], r["name"]) for r in calls] == [("tool_call", "refund"),
                                                           ("tool_result", "refund")]
        assert json.loads(calls[0]["args"]) == ARGS
        assert "refunded" in calls[1]["output"]
    writes = [json.loads(r["attrs"] or "{}").get("writes") for r in events(store, "tool_call")]
    assert sorted(map(bool, writes)) == [False, True]  # only the guarded call is a write


def _handoff_agents() -> tuple[Agent[Any], Agent[Any]]:
    """A triage agent that hands off to a refunds agent, on the SDK's ScriptedModel."""
    refunds = Agent(name="refunds", tools=[function_tool(oa.refund)], model=ScriptedModel([
        [function_call("refund", ARGS, call_id="r1")], [assistant_message("refunded")]]))
    triage = Agent(name="triage", handoffs=[refunds], model=ScriptedModel([
        [function_call("transfer_to_refunds", {}, call_id="h1")]]))
    return triage, refunds


def test_a_handoff_is_a_sub_run_of_the_agent_that_handed_off(
        guarded: Callable[..., Path]) -> None:
    store = guarded()
    triage, _ = _handoff_agents()
    assert run(guard(triage, writes=oa.WRITES)) == "refunded"
    runs = {json.loads(r["attrs"])["agent"]: r for r in events(store, "run_start")}
    assert runs["refunds"]["parent_run_id"] == runs["triage"]["run_id"]
    assert json.loads(runs["refunds"]["attrs"]) == {"agent": "refunds", "handoff_from": "triage"}
    [call] = events(store, "tool_call")
    assert call["run_id"] == runs["refunds"]["run_id"] and call["name"] == "refund"
    assert json.loads(call["attrs"]) == {"writes": True}  # guard() reached the handed-off agent
    assert [r["status"] for r in events(store, "run_end")] == ["ok", "ok"]


def test_an_agent_run_as_a_tool_is_a_sub_run(guarded: Callable[..., Path]) -> None:
    store = guarded()
    _, refunds = _handoff_agents()
    boss = Agent(name="boss", tools=[refunds.as_tool("ask_refunds", "Refunds an order.")],
                 model=ScriptedModel([[function_call("ask_refunds", {"input": "refund 42"},
                                                     call_id="b1")],
                                      [assistant_message("done")]]))
    assert run(guard(boss)) == "done"
    runs = {json.loads(r["attrs"])["agent"]: r for r in events(store, "run_start")}
    assert runs["refunds"]["parent_run_id"] == runs["boss"]["run_id"]
    assert {(r["run_id"], r["name"]) for r in events(store, "tool_call")} == {
        (runs["boss"]["run_id"], "ask_refunds"), (runs["refunds"]["run_id"], "refund")}


def test_a_callers_run_is_recorded_into_and_the_trace_can_name_the_tenant(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded()
    llm.mode = "healthy"
    with tracekit.run(tenant="globex") as outer:
        assert run(oa.build()) == "refunded"
    assert run(oa.build(), run_config=RunConfig(trace_metadata={"tenant": "initech"})) \
        == "refunded"
    starts = events(store, "run_start")
    assert sorted(r["tenant"] for r in starts) == ["globex", "initech"]
    assert len([r for r in events(store, "model_output") if r["run_id"] == outer.run_id]) == 2


# == the guard =====================================================================================
def test_a_runaway_is_halted_before_the_tool_runs_and_the_run_stops(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded(max_repeats=3)
    llm.mode = "runaway"
    with pytest.raises(tracekit.Halted) as halted:
        run(oa.build(), max_turns=20)
    assert isinstance(halted.value, RunHalted) and isinstance(halted.value, AgentsException)
    assert halted.value.signal == "repeats"
    assert len(llm.requests) == 4  # the fourth call refused: no fifth model call
    assert oa.REFUNDS == ["42"]
    rows = events(store)
    assert [r["status"] for r in rows if r["kind"] == "tool_result"] == ["ok", "duplicate",
                                                                       "duplicate"]
    assert (rows[-2]["kind"], rows[-2]["name"], rows[-2]["status"]) == ("guard", "refund",
                                                                        "halted")
    assert (rows[-1]["kind"], rows[-1]["status"]) == ("run_end", "halted")


def test_a_bound_on_an_argument_refuses_the_call_before_it_runs(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded(max_repeats=10)
    agent = guard(oa.build(guarded=False), writes=oa.WRITES,
                  tool_options={"refund": {"bounds": {"amount": (0, 20)}}})
    with pytest.raises(tracekit.Halted) as halted:
        run(agent)
    assert "amount" in str(halted.value) and oa.REFUNDS == []
    assert [r["kind"] for r in events(store)][-2:] == ["guard", "run_end"]


def test_without_guard_the_runaway_is_only_recorded(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    """A processor cannot stop a run (the SDK drops what it raises): guard() does."""
    store = guarded(max_repeats=3)
    llm.mode = "runaway"
    with pytest.raises(agents.exceptions.MaxTurnsExceeded):
        run(oa.build(guarded=False), max_turns=6)
    assert len(oa.REFUNDS) == 6 and len(events(store, "tool_call")) == 6


def test_the_kill_switch_refuses_the_next_model_call_before_it_is_sent(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded(max_repeats=10)

    def refund(order_id: str, amount: float) -> str:
        """Refund an order; the operator halts the tenant meanwhile."""
        runtime = PROCESS.guard_runtime()
        assert runtime is not None
        tracekit.halt("tenant", "acme", reason="refund loop", store=store)
        runtime.refresh()
        return "refunded"

    with pytest.raises(tracekit.Halted) as halted:
        run(oa.build(tools=[function_tool(refund)]))
    assert halted.value.level == "tenant" and len(llm.requests) == 1
    assert [r["kind"] for r in events(store)][-3:] == ["tool_result", "guard", "run_end"]


def test_a_run_refused_at_its_start_never_calls_the_model(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded(max_repeats=10)
    runtime = PROCESS.guard_runtime()
    assert runtime is not None
    tracekit.halt("tenant", "acme", reason="refund loop", store=store)
    runtime.refresh()
    with pytest.raises(RunHalted) as halted:
        run(oa.build())
    assert halted.value.level == "tenant" and llm.requests == []
    assert [r["kind"] for r in events(store)] == ["run_start", "guard", "run_end"]


def test_a_cost_bound_stops_the_run_right_after_the_answer_that_broke_it(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded(max_cost_usd=MINI * 1.5)
    llm.mode = "runaway"
    with pytest.raises(tracekit.Halted) as halted:
        run(oa.build())
    assert halted.value.signal == "cost"
    assert len(llm.requests) == 2 and oa.REFUNDS == ["42"]  # its tool call never ran
    assert [r["kind"] for r in events(store)][-3:] == ["model_output", "guard", "run_end"]


def test_a_failing_write_is_failed_in_the_ledger_and_its_repeat_is_not_run_again(
        guarded: Callable[..., Path], llm: AgentsLLM) -> None:
    store = guarded(max_repeats=3)
    tries: list[str] = []

    def refund(order_id: str, amount: float) -> str:
        """Refund an order (the payments API is down)."""
        tries.append(order_id)
        raise ConnectionError("payments API down")

    llm.mode = "runaway"
    with pytest.raises(tracekit.Halted):
        run(oa.build(tools=[function_tool(refund)]))
    assert tries == ["42"]  # the repeats got the failure, not another try
    results = events(store, "tool_result")
    assert [r["status"] for r in results] == ["error"] * 3
    assert "An error occurred while running the tool" in results[0]["error"]
    sent = [m for _, body in llm.requests[1:] for m in body["messages"] if m["role"] == "tool"]
    assert sent and all("error occurred" in m["content"] for m in sent)  # the SDK's message
    ledger = Recording(store).rows("SELECT status FROM ledger_history ORDER BY ts")
    assert [r["status"] for r in ledger] == ["reserved", "failed", *["suppressed_duplicate"] * 2]


# == never again ===================================================================================

def test_an_agents_sdk_runaway_is_halted_exported_and_its_incident_test_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guarded: Callable[..., Path],
        llm: AgentsLLM) -> None:
    monkeypatch.chdir(tmp_path)  # the project root: the agent is importable from here
    shutil.copy(oa.__file__, tmp_path / "oa_support_agent.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    import oa_support_agent as agent  # the agent the incident test replays

    agent.BASE["url"] = f"{llm.url}/v1"
    store = guarded(max_repeats=3)
    try:
        llm.mode = "healthy"
        assert agent.handle("refund order 42, please") == "refunded"  # not halted
        llm.mode = "runaway"
        with pytest.raises(tracekit.Halted) as halted:
            agent.handle("refund order 42 NOW")
        assert halted.value.signal == "repeats" and agent.REFUNDS == ["42"]
        assert tracekit.flush(30)
        runaway = Recording(store).runs()[-1]["run_id"]
        tracekit.export_incident([runaway], "agents-loop", tmp_path / "fixtures/incidents",
                                 store)
    finally:
        sys.modules.pop("oa_support_agent", None)
    llm.stop()  # from here on nothing listens: agent replay serves the recorded answers
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_repeats = 3\n")
    made = make_test("agents-loop", tmp_path / "fixtures/incidents",
                     tmp_path / "tests/incidents", entrypoint="oa_support_agent:handle")
    assert made.verdict.contained and made.verdict.mode == "agent", made.verdict.describe()
    assert made.verdict.signal == "repeats"
    gate = run_gate(tmp_path)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "1 contained" in gate.stdout


def test_the_example_agent_ends_when_healthy_and_is_halted_in_a_runaway(
        guarded: Callable[..., Path], llm: AgentsLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{llm.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example-key")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    sys.modules.pop("openai_agents_agent", None)
    import openai_agents_agent as example

    guarded(max_repeats=3)
    try:
        llm.mode = "healthy"
        assert example.handle("refund order 42") == "refunded"
        llm.mode = "runaway"
        with pytest.raises(tracekit.Halted, match="4 times with the same arguments"):
            example.handle("refund order 42")
        assert example.REFUNDS == ["42", "42"]  # once a run: the runaway's repeats suppressed
        assert len(llm.requests) == 2 + 4
    finally:
        sys.modules.pop("openai_agents_agent", None)
