"""``tracekit.integrations.litellm``: the real LiteLLM, recorded and guarded, no network.

Calls go through LiteLLM's own openai provider to the loopback stand-in ``_llm_server.py``
(``api_base``), or are answered by LiteLLM's ``mock_response``. Each completion inside a run is
a prompt and a model output with usage, LiteLLM's own cost and its tool calls, recorded before
the answer is handed back (LiteLLM's logger callbacks run after it: checked here too); the kill
switch refuses a call before it is sent, through the wrapper and, with ``TracekitLogger``,
through a plain ``litellm.completion``; an agent on LiteLLM runs into a runaway, is halted,
exported, made into a test that passes, and replayed with LiteLLM's own objects and its costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _litellm_offline  # noqa: F401  (before litellm: no price-map download)
import litellm
import pytest
from _llm_server import CALL, USAGE_IN, USAGE_OUT, LLMServer
from _recorded import recorded_events, run_gate
from litellm.integrations.custom_logger import CustomLogger

import tracekit
from tracekit._capture.state import PROCESS
from tracekit._gate.maketest import make_test
from tracekit.integrations import litellm as tl
from tracekit.testing import Recording

MINI = (USAGE_IN * 0.15 + USAGE_OUT * 0.6) / 1e6  # gpt-4o-mini, in LiteLLM's map and tracekit's
CUSTOM = {"input_cost_per_token": 1e-4, "output_cost_per_token": 2e-4}  # LiteLLM custom pricing
CUSTOM_COST = USAGE_IN * 1e-4 + USAGE_OUT * 2e-4
ARGS = json.loads(CALL["arguments"])


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    server = LLMServer()
    yield server
    server.stop()


@pytest.fixture
def logger() -> Iterator[tl.TracekitLogger]:
    registered = tl.TracekitLogger.register()
    yield registered
    registered.unregister()
    copies = [*litellm.callbacks, *litellm.input_callback, *litellm.success_callback,
              *litellm._async_success_callback, *litellm.failure_callback]
    assert registered not in copies and registered.pre_call_rule not in litellm.pre_call_rules


def request(llm: LLMServer, **extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "api_base": f"{llm.url}/v1", "api_key": "sk-test-key",
            "messages": [{"role": "user", "content": "refund 42"}], **extra}


def ask(complete: Callable[..., Any], asynchronous: bool, stream: bool, **kwargs: Any) -> Any:
    """One call; a stream read to its end. Returns what the caller got (chunks, for a stream)."""
    if not asynchronous:
        got = complete(stream=stream, **kwargs)
        return list(got) if stream else got

    async def main() -> Any:
        got = await complete(stream=stream, **kwargs)
        return [chunk async for chunk in got] if stream else got

    return asyncio.run(main())


def events(store: Path, *kinds: str) -> list[dict[str, Any]]:
    return recorded_events(store, kinds, "seq")


# == what is recorded ==============================================================================
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_each_completion_is_a_prompt_and_an_output_with_usage_cost_and_tool_calls(
    guarded: Callable[..., Path], llm: LLMServer, asynchronous: bool, stream: bool
) -> None:
    store = guarded()
    complete = tl.acompletion if asynchronous else tl.completion
    with tracekit.run(tenant="acme") as run:
        got = ask(complete, asynchronous, stream, **request(llm))
        assert run.step == 1  # recorded before the answer was handed back
    if stream:
        assert got and all(type(c) is litellm.ModelResponseStream for c in got)
        assert llm.requests[-1][1]["stream_options"] == {"include_usage": True}  # asked for
    else:
        assert type(got) is litellm.ModelResponse  # LiteLLM's own object, unchanged
    prompt, output = events(store, "prompt", "model_output")
    assert json.loads(prompt["args"]) == {"messages": [{"role": "user", "content": "refund 42"}]}
    assert output["call_id"] == prompt["call_id"] and output["name"] == "openai/gpt-4o-mini"
    assert (output["tokens_in"], output["tokens_out"]) == (USAGE_IN, USAGE_OUT)
    assert output["cost_usd"] == pytest.approx(MINI)
    [tool_call] = json.loads(output["attrs"])["tool_calls"]
    assert tool_call["id"] == "call_1" and tool_call["name"] == "refund"
    assert json.loads(tool_call["arguments"]) == ARGS


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_the_cost_is_litellms_own_and_the_price_table_only_when_litellm_has_none(
    guarded: Callable[..., Path], llm: LLMServer, stream: bool
) -> None:
    store = guarded()
    priced = tl.Completions(prices={"house-model": {"input": 1.0, "output": 2.0}})
    with tracekit.run(tenant="acme"):
        ask(tl.completion, False, stream, **request(llm, **CUSTOM))  # LiteLLM: custom pricing
        ask(priced.completion, False, stream, **request(llm, model="openai/house-model-7"))
        with pytest.warns(tracekit.TracekitWarning, match="no price for model 'unknown-model-3'"):
            ask(tl.Completions().completion, False, stream,  # its own table: a first warning
                **request(llm, model="openai/unknown-model-3"))
        tl.completion(model="gpt-4o-mini", mock_response="refunded",
                      messages=[{"role": "user", "content": "refund 42"}])
    custom, table, unknown, mocked = events(store, "model_output")
    assert custom["cost_usd"] == pytest.approx(CUSTOM_COST)  # not the table's MINI
    assert table["cost_usd"] == pytest.approx((USAGE_IN * 1.0 + USAGE_OUT * 2.0) / 1e6)
    assert unknown["cost_usd"] is None and unknown["tokens_in"] == USAGE_IN  # never guessed
    assert mocked["name"] == "gpt-4o-mini" and mocked["cost_usd"] > 0  # LiteLLM priced the mock
    recorded = json.loads(mocked["output"])
    assert recorded["choices"][0]["message"]["content"] == "refunded"
    assert recorded["usage"]["cost"] == pytest.approx(mocked["cost_usd"])  # kept for replay


def test_outside_a_run_litellm_is_untouched_and_nothing_is_recorded(
    guarded: Callable[..., Path], llm: LLMServer
) -> None:
    store = guarded(max_steps=1)
    got = [tl.completion(**request(llm)) for _ in range(3)]  # no run: no guard either
    assert all(type(g) is litellm.ModelResponse for g in got) and len(llm.requests) == 3
    assert "stream_options" not in llm.requests[-1][1]
    assert events(store) == []


# == the guard ===================================================================================
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_halted_runs_next_model_call_is_refused_before_it_is_sent(
    guarded: Callable[..., Path], llm: LLMServer, asynchronous: bool
) -> None:
    guarded(max_cost_usd=MINI * 1.5)
    complete = tl.acompletion if asynchronous else tl.completion
    with pytest.raises(tracekit.Halted) as halted, tracekit.run(tenant="acme"):
        ask(complete, asynchronous, False, **request(llm))
        with contextlib.suppress(tracekit.Halted):  # an agent that goes on anyway
            ask(complete, asynchronous, False, **request(llm))  # over the bound when counted
        ask(complete, asynchronous, False, **request(llm))  # never sent
    assert halted.value.signal == "cost" and len(llm.requests) == 2


def halt_tenant(store: Path) -> None:
    """``tracekit halt tenant acme``, seen by this process's guard at once."""
    runtime = PROCESS.guard_runtime()
    assert runtime is not None
    tracekit.halt("tenant", "acme", reason="refund loop", store=store)
    runtime.refresh()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_logger_refuses_a_plain_litellm_call_in_a_halted_run_before_it_is_sent(
    guarded: Callable[..., Path], llm: LLMServer, logger: tl.TracekitLogger, asynchronous: bool
) -> None:
    store = guarded(max_steps=10)
    plain = litellm.acompletion if asynchronous else litellm.completion
    assert tl.TracekitLogger.register() is logger  # registered once
    assert litellm.callbacks.count(logger) == 1 and litellm.pre_call_rules.count(
        logger.pre_call_rule) == 1
    with tracekit.run(tenant="acme"):
        with pytest.warns(tracekit.TracekitWarning, match="is not recorded"):
            ask(plain, asynchronous, False, **request(llm))  # sent, but not recorded: warned
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ask(tl.completion, False, False, **request(llm))  # recorded: no warning
        halt_tenant(store)
        try:
            for complete in (plain, tl.acompletion if asynchronous else tl.completion):
                with pytest.raises(tracekit.Halted) as refused:
                    ask(complete, asynchronous, False, **request(llm))
                assert refused.value.level == "tenant"
        finally:
            tracekit.unhalt("tenant", "acme", store=store)
    assert len(llm.requests) == 2  # neither refused call was sent
    guards = events(store, "guard")
    assert len(guards) == 2 and {g["status"] for g in guards} == {"halted"}  # each once
    assert [o["cost_usd"] for o in events(store, "model_output")] == [pytest.approx(MINI)]


def test_litellm_runs_logger_events_where_they_cannot_record_or_refuse(llm: LLMServer) -> None:
    """Why the recording is in the wrapper and the refusal in a pre-call rule: LiteLLM 1.110
    runs a logger's success event after ``completion`` has returned, in another thread, and
    swallows what its ``log_pre_api_call`` raises (the call is sent anyway)."""

    class Probe(CustomLogger):
        def __init__(self) -> None:
            super().__init__()
            self.threads: list[str] = []
            self.done = threading.Event()

        def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
            raise tracekit.Halted("run", "r", "refuse this call", signal="operator")

        def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any,
                              end_time: Any) -> None:
            self.threads.append(threading.current_thread().name)
            self.done.set()

    probe = Probe()
    litellm.logging_callback_manager.add_litellm_callback(probe)
    try:
        assert type(litellm.completion(**request(llm))) is litellm.ModelResponse  # not refused
        assert probe.done.wait(10)
    finally:
        litellm.logging_callback_manager.remove_callback_from_all_lists(probe)
    assert len(llm.requests) == 1  # sent, though the hook raised
    assert probe.threads != [threading.current_thread().name]  # not on the caller's path


# == an agent on LiteLLM: runaway, halt, export, make-test, the gate ===============================
AGENT = textwrap.dedent('''
    import json

    import tracekit
    from tracekit.integrations.litellm import completion

    REFUNDS = []
    BASE = "http://127.0.0.1:1/v1"  # set by the test; replay never connects
    STREAM = False
    PRICING = {"input_cost_per_token": 1e-4, "output_cost_per_token": 2e-4}  # LiteLLM's


    @tracekit.tool(writes=True, destination="payments")
    def refund(order_id: str, amount: float) -> dict:
        REFUNDS.append(order_id)
        return {"order_id": order_id, "status": "refunded"}


    def ask(messages):
        got = completion(model="openai/gpt-4o-mini", api_base=BASE, api_key="sk-agent-key",
                         messages=messages, stream=STREAM, **PRICING,
                         tools=[{"type": "function", "function": {"name": "refund",
                                                                  "parameters": {}}}])
        if not STREAM:
            message = got.choices[0].message
            return message.content, [(c.id, c.function.name, c.function.arguments)
                                     for c in message.tool_calls or []]
        text, calls = "", {}
        for chunk in got:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for d in choice.delta.tool_calls or []:
                    call = calls.setdefault(d.index, ["", "", ""])
                    call[0] = call[0] or d.id or ""
                    call[1] = call[1] or (d.function.name or "")
                    call[2] += d.function.arguments or ""
        return text, [tuple(c) for c in calls.values()]


    @tracekit.entrypoint
    def handle(ticket: str) -> str:
        messages = [{"role": "user", "content": ticket}]
        with tracekit.run(tenant="acme"):
            for _ in range(12):
                text, calls = ask(messages)
                if not calls:
                    return text
                messages.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                    for i, n, a in calls]})
                for call_id, name, arguments in calls:
                    result = refund(**json.loads(arguments))
                    messages.append({"role": "tool", "tool_call_id": call_id,
                                     "content": json.dumps(result)})
        return "gave up"
''')



@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_litellm_agent_runs_away_is_halted_and_its_incident_test_passes(
        tmp_path: Path, llm: LLMServer, monkeypatch: pytest.MonkeyPatch, stream: bool) -> None:
    monkeypatch.chdir(tmp_path)
    name = f"litellm_agent_{'streamed' if stream else 'plain'}"
    (tmp_path / f"{name}.py").write_text(AGENT.replace("STREAM = False", f"STREAM = {stream}"))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    agent = importlib.import_module(name)
    agent.BASE = f"{llm.url}/v1"
    store = tmp_path / "store"
    try:
        tracekit.configure(store=store, guard=tracekit.Guard(max_repeats=3))
        llm.mode = "runaway"
        with pytest.raises(tracekit.Halted) as halted:
            agent.handle("refund order 42 NOW")
        assert halted.value.signal == "repeats"
        assert agent.REFUNDS == ["42"]  # fired once: every repeat suppressed by the ledger
        assert len(llm.requests) == 4  # the refusal stopped the agent: no fifth model call
        tracekit.flush()
        runaway = Recording(store).runs()[-1]["run_id"]
        llm.mode = "healthy"
        assert agent.handle("refund order 42, please") == "refunded"  # not halted
        tracekit.export_incident([runaway], "litellm-loop", tmp_path / "fixtures/incidents",
                                 store)
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "elsewhere", guard=False)
    llm.stop()  # from here on nothing listens: replay serves LiteLLM's own objects
    bundle = tmp_path / "fixtures/incidents/litellm-loop"
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_repeats = 3\n")
    made = make_test("litellm-loop", tmp_path / "fixtures/incidents",
                     tmp_path / "tests/incidents", entrypoint=f"{name}:handle")
    assert made.verdict.contained and made.verdict.mode == "agent", made.verdict.describe()
    assert made.verdict.signal == "repeats"
    run = run_gate(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 contained" in run.stdout
    # agent replay counts LiteLLM's own costs (custom pricing here), as the live run did
    by_cost = tracekit.Guard(max_cost_usd=CUSTOM_COST * 1.5)
    policy = tracekit.replay(bundle, guard=by_cost)
    replayed = tracekit.replay(bundle, entrypoint=f"{name}:handle", guard=by_cost)
    assert policy.contained and policy.signal == "cost" and policy.step == 2
    assert replayed.contained and replayed.signal == "cost" and replayed.step == policy.step


def test_the_example_agent_is_halted_in_a_runaway_and_ends_when_healthy(
        tmp_path: Path, llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    sys.modules.pop("litellm_agent", None)
    example = importlib.import_module("litellm_agent")
    options = {"api_base": f"{llm.url}/v1", "api_key": "sk-example-key"}
    tracekit.configure(store=tmp_path / "store", guard=tracekit.Guard(max_repeats=3))
    try:
        llm.mode = "healthy"
        assert example.handle("refund order 42", **options) == "refunded"
        llm.mode = "runaway"
        with pytest.raises(tracekit.Halted, match="4 times with the same arguments"):
            example.handle("refund order 42", **options)
        assert example.REFUNDS == ["42"]  # its key is the order: the runaway's refunds repeat it
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)
        sys.modules.pop("litellm_agent", None)
