"""``tracekit.integrations.pydantic_ai.Tracekit``: the real PydanticAI agent loop, driven by
PydanticAI's own ``FunctionModel`` (no network), recorded and guarded by one capability.

Each model request is a prompt and a model output with usage, cost and normalised tool calls;
each tool call is guarded before it runs, recorded, and a write goes through the ledger; a halt
ends the agent run (no further tool runs, no further model request); a delegated agent is a
sub-run; the runaway is halted, exported, made a test that passes in a real pytest, and
replayed through the agent's own code.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _pydantic_ai_agent as pai
import pytest
from _llm_server import LLMServer
from _recorded import recorded_events, run_gate
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import SkipToolExecution
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import ToolDefinition

import tracekit
from tracekit._capture.state import PROCESS
from tracekit._gate.maketest import make_test
from tracekit.integrations.pydantic_ai import Tracekit
from tracekit.testing import Recording


@pytest.fixture(autouse=True)
def fresh_agent() -> Iterator[None]:
    """The scripted model and the refunds start from nothing in each test."""
    pai.MODE["value"] = "healthy"
    pai.REFUNDS.clear()
    pai.REQUESTS.clear()
    yield
    pai.MODE["value"] = "healthy"


def events(store: Path, *kinds: str) -> list[dict[str, Any]]:
    return recorded_events(store, kinds, "run_id, seq")


def drive(agent: Agent[None, str], how: str,
          prompt: str = "refund order 42") -> tuple[str, list[ModelMessage]]:
    """One agent run, the way ``how`` says (run_sync, run_stream or iter): its output and
    messages."""
    if how == "run_sync":
        result = agent.run_sync(prompt)
        return result.output, result.all_messages()

    async def streamed() -> tuple[str, list[ModelMessage]]:
        async with agent.run_stream(prompt) as stream:
            output = await stream.get_output()
        return output, stream.all_messages()

    async def iterated() -> tuple[str, list[ModelMessage]]:
        async with agent.iter(prompt) as agent_run:
            async for _ in agent_run:
                pass
        assert agent_run.result is not None
        return agent_run.result.output, agent_run.result.all_messages()

    return asyncio.run(streamed() if how == "run_stream" else iterated())


# == recording =====================================================================================
@pytest.mark.parametrize("how", ["run_sync", "run_stream", "iter"])
def test_each_model_request_and_tool_call_is_recorded_in_the_agents_run(
        guarded: Callable[..., Path], how: str) -> None:
    store = guarded()
    output, messages = drive(pai.build(), how)
    assert output == "refunded"
    answers = [m for m in messages if isinstance(m, ModelResponse)]
    rows = events(store)
    assert [r["kind"] for r in rows] == ["run_start", "prompt", "model_output", "tool_call",
                                         "tool_result", "prompt", "model_output", "run_end"]
    start, prompt, out, call, result, _, last, end = rows
    assert start["tenant"] == "acme" and json.loads(start["attrs"]) == {"agent": "support"}
    assert "refund order 42" in prompt["args"] and out["call_id"] == prompt["call_id"]
    usage = answers[0].usage  # the scripted usage; estimated by PydanticAI when streamed
    assert (out["tokens_in"], out["tokens_out"]) == (usage.input_tokens,
                                                           usage.output_tokens)
    assert out["cost_usd"] == pytest.approx(
        (usage.input_tokens * 0.15 + usage.output_tokens * 0.6) / 1e6)
    assert how == "run_stream" or out["cost_usd"] == pytest.approx(pai.COST)
    assert out["name"] == "gpt-4o-mini" and (out["step"], last["step"]) == (1, 2)
    [tool_call] = json.loads(out["attrs"])["tool_calls"]
    assert tool_call == {"id": "call_1", "name": "refund",
                         "arguments": '{"order_id":"42","amount":30}'}
    assert json.loads(out["output"])["parts"][0]["tool_name"] == "refund"
    assert (call["name"], json.loads(call["args"])) == ("refund", {"order_id": "42",
                                                                   "amount": 30.0})
    assert json.loads(call["attrs"]) == {"writes": True}
    assert json.loads(result["output"])["status"] == "refunded" and result["status"] == "ok"
    assert last["attrs"] is None and end["status"] == "ok"
    assert pai.REFUNDS == ["42"]


def test_a_write_goes_through_the_ledger_and_a_repeat_gets_the_first_outcome(
        guarded: Callable[..., Path]) -> None:
    store = guarded()
    pai.MODE["value"] = "runaway"
    agent = pai.build(Tracekit(tenant="acme", writes=pai.WRITES))
    with pytest.raises(Exception, match="request_limit"):  # no guard: PydanticAI's own limit
        agent.run_sync("refund order 42", usage_limits=_limit(3))
    assert pai.REFUNDS == ["42"]  # three calls, one refund
    assert [r["status"] for r in events(store, "tool_result")] == ["ok", "duplicate",
                                                                   "duplicate"]
    ledger = Recording(store).rows("SELECT status, destination FROM ledger_history ORDER BY ts")
    assert [r["status"] for r in ledger][:2] == ["reserved", "fired"]
    assert {r["destination"] for r in ledger} == {"payments"}


def _limit(requests: int) -> Any:
    from pydantic_ai.usage import UsageLimits

    return UsageLimits(request_limit=requests)


def test_a_caller_opened_run_is_recorded_into_and_outside_any_run_nothing_is(
        guarded: Callable[..., Path]) -> None:
    store = guarded()
    agent = pai.build(Tracekit(writes=pai.WRITES))  # no tenant: the caller's run, if any
    with tracekit.run(tenant="globex", ticket="T-1") as run:
        assert agent.run_sync("refund order 42").output == "refunded"
    assert agent.run_sync("refund order 42").output == "refunded"  # outside: untouched
    rows = events(store)
    assert {r["run_id"] for r in rows} == {run.run_id}
    assert [r["kind"] for r in rows].count("model_output") == 2
    assert pai.REFUNDS == ["42", "42"]


def test_a_delegated_agent_is_a_sub_run_of_the_agent_that_delegated(
        guarded: Callable[..., Path]) -> None:
    store = guarded()
    refunds = pai.build(Tracekit(writes=pai.WRITES))  # inherits the tenant of its parent
    triage = Agent(FunctionModel(_delegate, model_name="gpt-4o-mini"), name="triage",
                   capabilities=[Tracekit(tenant="acme")])

    @triage.tool_plain
    async def ask_refunds(ticket: str) -> str:
        """Hand the ticket to the refunds agent."""
        return (await refunds.run(ticket)).output

    assert triage.run_sync("refund order 42").output == "done"
    runs = {r["attrs"]: r for r in events(store, "run_start")}
    parent, child = runs['{"agent":"triage"}'], runs['{"agent":"support"}']
    assert child["parent_run_id"] == parent["run_id"] and child["tenant"] == "acme"
    assert child["root_run_id"] == parent["run_id"]
    tools = [(r["run_id"], r["name"]) for r in events(store, "tool_call")]
    assert tools == sorted([(parent["run_id"], "ask_refunds"), (child["run_id"], "refund")])


def _delegate(messages: list[Any], info: Any) -> Any:
    from pydantic_ai.messages import ModelResponse, TextPart

    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart("ask_refunds", {"ticket": "refund 42"})])
    return ModelResponse(parts=[TextPart("done")])


def test_a_tool_already_decorated_with_tracekit_tool_is_recorded_once(
        guarded: Callable[..., Path]) -> None:
    store = guarded()
    agent = Agent(pai.model(),
                  capabilities=[Tracekit(tenant="acme")])

    @agent.tool_plain
    @tracekit.tool(writes=True)
    def refund(order_id: str, amount: float) -> dict[str, Any]:
        """Refund an order."""
        return pai.refund(order_id, amount)

    assert agent.run_sync("refund order 42").output == "refunded"
    [call] = events(store, "tool_call")
    assert call["name"] == "refund" and json.loads(call["attrs"]) == {"writes": True}


def test_prices_can_be_given_and_unknown_tool_options_fail_at_once(
        guarded: Callable[..., Path]) -> None:
    store = guarded()
    agent = Agent(pai.model("house-model-7"),
                  capabilities=[Tracekit(tenant="acme",
                                         prices={"house-model": {"input": 1.0, "output": 2.0}})])
    agent.tool_plain(pai.refund)
    agent.run_sync("refund 42")
    first = events(store, "model_output")[0]
    assert first["cost_usd"] == pytest.approx((pai.USAGE_IN * 1.0 + pai.USAGE_OUT * 2.0) / 1e6)
    with pytest.raises(TypeError, match="unknown options"):
        Tracekit(writes={"refund": {"idempotency": "x"}})


# == the guard =====================================================================================
def test_a_runaway_is_halted_before_the_tool_runs_and_the_agent_does_not_go_on(
        guarded: Callable[..., Path]) -> None:
    store = guarded(max_repeats=3)
    pai.MODE["value"] = "runaway"
    with pytest.raises(tracekit.Halted) as halted:
        pai.build().run_sync("refund order 42")
    assert halted.value.signal == "repeats" and halted.value.level == "run"
    assert len(pai.REQUESTS) == 4  # the fourth call was refused: no fifth model request
    assert pai.REFUNDS == ["42"]
    rows = events(store)
    assert [r["status"] for r in rows if r["kind"] == "tool_result"] == ["ok", "duplicate",
                                                                       "duplicate"]
    guard, end = rows[-2:]
    assert (guard["kind"], guard["name"], guard["status"]) == ("guard", "refund", "halted")
    assert (end["kind"], end["status"]) == ("run_end", "halted")


def test_a_bound_on_an_argument_refuses_the_call_before_it_runs(
        guarded: Callable[..., Path]) -> None:
    store = guarded(max_repeats=10)
    agent = pai.build(Tracekit(tenant="acme", writes=pai.WRITES,
                               tool_options={"refund": {"bounds": {"amount": (0, 20)}}}))
    with pytest.raises(tracekit.Halted) as halted:
        agent.run_sync("refund order 42")
    assert "amount" in str(halted.value) and pai.REFUNDS == []
    assert [r["kind"] for r in events(store)][-2:] == ["guard", "run_end"]


class _SkipEveryTool(AbstractCapability[Any]):
    """What ``SkipToolExecution`` does with a refused call: the model gets a result."""

    async def before_tool_execute(self, ctx: RunContext[Any], *, call: ToolCallPart,
                                  tool_def: ToolDefinition, args: dict[str, Any]) -> Any:
        raise SkipToolExecution("refused by the guard")


def test_skip_tool_execution_would_not_have_stopped_the_runaway() -> None:
    """Why a halt raises instead: a skipped call is a result the model reads, and it asks
    again; only the request limit ends the run."""
    pai.MODE["value"] = "runaway"
    with pytest.raises(Exception, match="request_limit"):
        pai.build(_SkipEveryTool()).run_sync("refund order 42", usage_limits=_limit(6))
    assert len(pai.REQUESTS) == 6 and pai.REFUNDS == []


def test_the_kill_switch_refuses_the_next_model_request_before_it_is_sent(
        guarded: Callable[..., Path]) -> None:
    store = guarded(max_repeats=10)
    agent = Agent(pai.model(),
                  capabilities=[Tracekit(tenant="acme")])

    @agent.tool_plain
    def refund(order_id: str, amount: float) -> str:
        """Refund an order; the operator halts the tenant meanwhile."""
        runtime = PROCESS.guard_runtime()
        assert runtime is not None
        tracekit.halt("tenant", "acme", reason="refund loop", store=store)
        runtime.refresh()
        return "refunded"

    with pytest.raises(tracekit.Halted) as halted:
        agent.run_sync("refund order 42")
    assert halted.value.level == "tenant" and len(pai.REQUESTS) == 1
    kinds = [r["kind"] for r in events(store)]
    assert kinds[-3:] == ["tool_result", "guard", "run_end"]  # no second prompt


def test_a_cost_bound_halts_after_the_answer_that_broke_it(
        guarded: Callable[..., Path]) -> None:
    store = guarded(max_cost_usd=pai.COST * 1.5)
    pai.MODE["value"] = "runaway"
    with pytest.raises(tracekit.Halted) as halted:
        pai.build().run_sync("refund order 42")
    assert halted.value.signal == "cost"
    assert len(pai.REQUESTS) == 2 and pai.REFUNDS == ["42"]  # its tool call never ran
    assert [r["kind"] for r in events(store)][-3:] == ["model_output", "guard", "run_end"]


class _Forgiving(AbstractCapability[Any]):
    """A capability that recovers every failed run with an answer of its own."""

    async def on_run_error(self, ctx: RunContext[Any], *, error: BaseException
                           ) -> AgentRunResult[Any]:
        return AgentRunResult(output="sorry")


def test_a_halt_swallowed_by_another_capability_still_stops_the_run(
        guarded: Callable[..., Path]) -> None:
    store = guarded(max_repeats=3)
    pai.MODE["value"] = "runaway"
    agent = pai.build(_Forgiving(), Tracekit(tenant="acme", writes=pai.WRITES))
    with pytest.raises(tracekit.Halted):
        agent.run_sync("refund order 42")
    assert len(pai.REQUESTS) == 4
    assert events(store, "run_end")[0]["status"] == "halted"


# == never again ===================================================================================

def test_a_pydantic_ai_runaway_is_halted_exported_and_its_incident_test_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guarded: Callable[..., Path]) -> None:
    monkeypatch.chdir(tmp_path)  # the project root: the agent is importable from here
    shutil.copy(pai.__file__, tmp_path / "pai_support_agent.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pai_support_agent as agent  # the agent the incident test replays

    store = guarded(max_repeats=3)
    try:
        assert agent.handle("refund order 42, please") == "refunded"  # healthy: not halted
        agent.MODE["value"] = "runaway"
        with pytest.raises(tracekit.Halted) as halted:
            agent.handle("refund order 42 NOW")
        assert halted.value.signal == "repeats" and agent.REFUNDS == ["42"]
        assert tracekit.flush(30)
        runaway = Recording(store).runs()[-1]["run_id"]
        tracekit.export_incident([runaway], "pai-loop", tmp_path / "fixtures/incidents", store)
    finally:
        sys.modules.pop("pai_support_agent", None)
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_repeats = 3\n")
    made = make_test("pai-loop", tmp_path / "fixtures/incidents", tmp_path / "tests/incidents",
                     entrypoint="pai_support_agent:handle")
    assert made.verdict.contained and made.verdict.mode == "agent", made.verdict.describe()
    assert made.verdict.signal == "repeats"
    gate = run_gate(tmp_path)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "1 contained" in gate.stdout


def test_the_example_agent_ends_when_healthy_and_is_halted_in_a_runaway(
        guarded: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example, on PydanticAI's own OpenAI model, against the loopback API."""
    llm = LLMServer()
    monkeypatch.setenv("OPENAI_BASE_URL", f"{llm.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example-key")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    sys.modules.pop("pydantic_ai_agent", None)
    import pydantic_ai_agent as example

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
        llm.stop()
        sys.modules.pop("pydantic_ai_agent", None)
