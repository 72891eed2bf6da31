"""``tracekit.instrument(client)``: the real openai and anthropic SDKs, recorded and guarded.

Every call goes to a loopback stand-in for the APIs (``_llm_server.py``): chat completions, the
Responses API and Anthropic Messages, sync and async, plain and streamed. Each model call is a
prompt and a model output with usage, its cost from the shipped price table and its tool calls
normalised; the guard's kill switch refuses a call before it is sent; an agent built on the
SDK runs into a runaway, is halted, exported, made into a test that passes, and replayed with
the SDK's own objects (streams as streams) while nothing listens.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from _llm_server import CALL, USAGE_IN, USAGE_OUT, LLMServer
from _recorded import run_gate
from pydantic import BaseModel

import tracekit
from tracekit._gate.maketest import make_test
from tracekit.testing import Recording

MINI = (USAGE_IN * 0.15 + USAGE_OUT * 0.6) / 1e6  # gpt-4o-mini in the shipped table
HAIKU = (USAGE_IN * 1.0 + USAGE_OUT * 5.0) / 1e6  # claude-haiku-4-5
ARGS = json.loads(CALL["arguments"])


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    server = LLMServer()
    yield server
    server.stop()


def clients(llm: LLMServer, sdk: str, asynchronous: bool = False) -> Any:
    if sdk == "openai":
        cls: Any = openai.AsyncOpenAI if asynchronous else openai.OpenAI
        return tracekit.instrument(cls(api_key="sk-test-key", base_url=f"{llm.url}/v1"))
    cls = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
    return tracekit.instrument(cls(api_key="sk-ant-test-key", base_url=llm.url))


def call(client: Any, api: str, stream: bool) -> Any:
    """One model call of ``api``; a stream is read to its end. Returns what the caller got."""
    if api == "chat":
        got = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "refund 42"}],
            stream=stream)
    elif api == "responses":
        got = client.responses.create(model="gpt-4o-mini", input="refund 42", stream=stream)
    else:
        got = client.messages.create(model="claude-haiku-4-5", max_tokens=100, stream=stream,
                                     messages=[{"role": "user", "content": "refund 42"}])
    return list(got) if stream else got


async def acall(client: Any, api: str, stream: bool) -> Any:
    if api == "chat":
        got = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "refund 42"}],
            stream=stream)
    elif api == "responses":
        got = await client.responses.create(model="gpt-4o-mini", input="refund 42",
                                            stream=stream)
    else:
        got = await client.messages.create(model="claude-haiku-4-5", max_tokens=100,
                                           stream=stream,
                                           messages=[{"role": "user", "content": "refund 42"}])
    return [chunk async for chunk in got] if stream else got


def outputs(store: Path) -> list[dict[str, Any]]:
    assert tracekit.flush(30)
    return Recording(store).rows("SELECT * FROM events WHERE kind IN ('prompt', 'model_output') "
                                 "ORDER BY seq")


CASES = [(sdk, api, stream) for sdk, api in
         (("openai", "chat"), ("openai", "responses"), ("anthropic", "messages"))
         for stream in (False, True)]


@pytest.mark.parametrize(("sdk", "api", "stream"), CASES)
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_each_model_call_is_a_prompt_and_an_output_with_usage_cost_and_tool_calls(
        store: Path, llm: LLMServer, sdk: str, api: str, stream: bool,
        asynchronous: bool) -> None:
    client = clients(llm, sdk, asynchronous)
    with tracekit.run(tenant="acme") as run:
        got = asyncio.run(acall(client, api, stream)) if asynchronous else call(
            client, api, stream)
        assert run.step == 1
    if stream:
        assert got and all(type(c).__module__.startswith(sdk) for c in got)
    else:
        assert type(got).__module__.startswith(sdk)  # the SDK's own object, unchanged
    prompt, output = outputs(store)
    assert prompt["kind"] == "prompt" and "refund 42" in prompt["args"]
    assert output["call_id"] == prompt["call_id"]
    assert (output["tokens_in"], output["tokens_out"]) == (USAGE_IN, USAGE_OUT)
    assert output["cost_usd"] == pytest.approx(HAIKU if sdk == "anthropic" else MINI)
    assert output["name"] == ("claude-haiku-4-5" if sdk == "anthropic" else "gpt-4o-mini")
    [tool_call] = json.loads(output["attrs"])["tool_calls"]
    assert tool_call["name"] == "refund" and json.loads(tool_call["arguments"]) == ARGS
    assert tool_call["id"] in ("call_1", "toolu_1")
    if stream and api == "chat":  # tracekit asked the stream for its usage
        assert llm.requests[-1][1]["stream_options"] == {"include_usage": True}


def test_the_prompt_is_the_messages_as_sent_not_as_the_agent_changed_them_after(
        store: Path, llm: LLMServer) -> None:
    """The agent appends the answer and the tool result to its list right after the call, as
    agent loops do; the prompt is encoded later, on the writer thread, from the copy taken
    when the call was made."""
    client = clients(llm, "openai")
    messages: list[Any] = [{"role": "user", "content": "refund 42"}]
    with tracekit.run(tenant="acme"):
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        messages.append(answer.choices[0].message)
        messages.append({"role": "tool", "tool_call_id": "call_1", "content": "refunded"})
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    first, second = (json.loads(r["args"])["messages"] for r in outputs(store)
                     if r["kind"] == "prompt")
    assert first == [{"role": "user", "content": "refund 42"}]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]


def test_an_unknown_model_is_reported_not_guessed_and_a_price_can_be_given(
        store: Path, llm: LLMServer) -> None:
    client = openai.OpenAI(api_key="sk-test-key", base_url=f"{llm.url}/v1")
    tracekit.instrument(client)
    with tracekit.run(tenant="acme"), pytest.warns(tracekit.TracekitWarning,
                                                   match="no price for model 'house-model-7'"):
        client.chat.completions.create(model="house-model-7", messages=[])
    priced = tracekit.instrument(openai.OpenAI(api_key="k", base_url=f"{llm.url}/v1"),
                                 prices={"house-model": {"input": 1.0, "output": 2.0}})
    with tracekit.run(tenant="acme"):
        priced.chat.completions.create(model="house-model-7", messages=[])
    first, second = [r for r in outputs(store) if r["kind"] == "model_output"]
    assert first["cost_usd"] is None and first["tokens_in"] == USAGE_IN
    assert second["cost_usd"] == pytest.approx((USAGE_IN * 1.0 + USAGE_OUT * 2.0) / 1e6)
    with pytest.raises(ValueError, match="'input' and 'output'"):
        tracekit.instrument(openai.OpenAI(api_key="k"), prices={"m": {"input": 1}})
    with pytest.raises(TypeError, match=r"instruments openai\.OpenAI"):
        tracekit.instrument(object())


def test_the_guard_refuses_a_model_call_before_it_is_sent(tmp_path: Path,
                                                          llm: LLMServer) -> None:
    tracekit.configure(store=tmp_path / "store", guard=tracekit.Guard(max_cost_usd=MINI * 1.5))
    try:
        client = clients(llm, "openai")
        with pytest.raises(tracekit.Halted) as halted, tracekit.run(tenant="acme"):
            call(client, "chat", False)
            call(client, "chat", False)  # over the bound: halted when its cost is counted
            call(client, "chat", False)  # never sent
        assert halted.value.signal == "cost"
        assert len(llm.requests) == 2
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)


def test_outside_a_run_the_sdk_is_untouched_and_nothing_is_recorded(
        store: Path, llm: LLMServer) -> None:
    client = clients(llm, "anthropic")
    assert tracekit.instrument(client) is client  # twice: nothing changes
    assert call(client, "messages", False).content[0].name == "refund"
    assert outputs(store) == []


AGENT = textwrap.dedent('''
    import json

    import openai

    import tracekit

    REFUNDS = []
    BASE = "http://127.0.0.1:1/v1"  # set by the test; replay never connects
    STREAM = False


    @tracekit.tool(writes=True, destination="payments",
                   idempotency_key=lambda order_id, amount: f"refund:{order_id}")
    def refund(order_id: str, amount: float) -> dict:
        REFUNDS.append(order_id)
        return {"order_id": order_id, "status": "refunded"}


    def ask(client, messages):
        got = client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                             tools=[{"type": "function", "function": {
                                                 "name": "refund", "parameters": {}}}],
                                             stream=STREAM)
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
        client = tracekit.instrument(openai.OpenAI(api_key="sk-agent-key", base_url=BASE))
        messages = [{"role": "user", "content": ticket}]
        with tracekit.run(tenant="acme"):
            for _ in range(12):
                text, calls = ask(client, messages)
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
def test_an_openai_sdk_agent_runs_away_is_halted_and_its_incident_test_passes(
        tmp_path: Path, llm: LLMServer, monkeypatch: pytest.MonkeyPatch, stream: bool) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sdk_agent.py").write_text(AGENT.replace("STREAM = False", f"STREAM = {stream}"))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("sdk_agent", None)
    agent = importlib.import_module("sdk_agent")
    agent.BASE = f"{llm.url}/v1"
    guard = tracekit.Guard(max_repeats=3)
    store = tmp_path / "store"
    try:
        tracekit.configure(store=store, guard=guard)
        llm.mode = "healthy"
        assert agent.handle("refund order 42, please") == "refunded"  # not halted
        llm.mode = "runaway"
        with pytest.raises(tracekit.Halted) as halted:
            agent.handle("refund order 42 NOW")
        assert halted.value.signal == "repeats"
        assert agent.REFUNDS == ["42"]  # fired once: every repeat suppressed by its key
        tracekit.flush()
        runaway = Recording(store).runs()[-1]["run_id"]
        tracekit.export_incident([runaway], "sdk-loop", tmp_path / "fixtures/incidents", store)
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "elsewhere", guard=False)
    llm.stop()  # from here on nothing listens: the replay serves the SDK's own objects
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_repeats = 3\n")
    made = make_test("sdk-loop", tmp_path / "fixtures/incidents", tmp_path / "tests/incidents",
                     entrypoint="sdk_agent:handle")
    assert made.verdict.contained and made.verdict.mode == "agent", made.verdict.describe()
    assert made.verdict.signal == "repeats"
    run = run_gate(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 contained" in run.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no request may reach a socket in replay
        verdict = tracekit.replay(tmp_path / "fixtures/incidents/sdk-loop",
                                  entrypoint="sdk_agent:handle",
                                  guard=tracekit.Guard(max_repeats=3))
    assert verdict.contained and verdict.step == made.verdict.step


def test_the_readme_example_agent_is_halted_in_a_runaway_and_ends_when_healthy(
        tmp_path: Path, llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{llm.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example-key")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    sys.modules.pop("openai_agent", None)
    example = importlib.import_module("openai_agent")
    tracekit.configure(store=tmp_path / "store", guard=tracekit.Guard(max_repeats=3))
    try:
        llm.mode = "healthy"
        assert example.handle("refund order 42") == "refunded"
        llm.mode = "runaway"
        with pytest.raises(tracekit.Halted, match="4 times with the same arguments"):
            example.handle("refund order 42")
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)
        sys.modules.pop("openai_agent", None)


def test_a_replayed_stream_closes_as_the_sdks_sync_and_async_streams_do() -> None:
    from tracekit._integrations.calls import ReplayedStream

    stream = ReplayedStream(["a", "b"])
    stream.close()  # a sync stream's close()

    async def read() -> list[str]:
        async with stream as same:
            got = [chunk async for chunk in same]
        await stream.close()  # an async stream's close() is awaited
        return got

    assert list(stream) == ["a", "b"] and asyncio.run(read()) == ["a", "b"]


@pytest.mark.parametrize("typed", [False, True], ids=["plain", "output_format"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_anthropic_stream_helper_is_recorded_and_reads_as_the_sdks_own(
        store: Path, llm: LLMServer, asynchronous: bool, typed: bool) -> None:
    client = clients(llm, "anthropic", asynchronous)
    kwargs: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 100,
                              "messages": [{"role": "user", "content": "refund 42"}]}
    if typed:  # structured output: the SDK's helper posts the type's schema itself
        kwargs["output_format"] = Refund

    async def aread() -> Any:
        async with client.messages.stream(**kwargs) as stream:
            return await stream.get_final_message()

    def read() -> Any:
        with client.messages.stream(**kwargs) as stream:
            return stream.get_final_message()

    with tracekit.run(tenant="acme"):
        final = asyncio.run(aread()) if asynchronous else read()
    prompt, output = outputs(store)
    sent = llm.requests[-1][1]
    assert sent["stream"] is True
    assert (output["tokens_in"], output["tokens_out"]) == (USAGE_IN, USAGE_OUT)
    assert output["cost_usd"] == pytest.approx(HAIKU)
    if typed:
        assert final.parsed_output == Refund(order_id="42", amount=30)
        assert sent["output_config"]["format"]["type"] == "json_schema"
        assert json.loads(prompt["args"])["output_config"] == sent["output_config"]
        return
    assert final.content[0].name == "refund" and final.content[0].input == ARGS
    assert json.loads(json.loads(output["attrs"])["tool_calls"][0]["arguments"]) == ARGS


HELPER_RESULTS: list[Any] = []
HELPER_BASE: list[str] = []


def _helper_stream(ticket: str, **more: Any) -> Any:
    client = tracekit.instrument(anthropic.Anthropic(api_key="sk-ant-agent",
                                                     base_url=HELPER_BASE[0]))
    return client.messages.stream(model="claude-haiku-4-5", max_tokens=100,
                                  messages=[{"role": "user", "content": ticket}], **more)


@tracekit.entrypoint
def stream_helper_agent(ticket: str) -> None:
    with tracekit.run(tenant="acme"), _helper_stream(ticket) as stream:
        events = [event.type for event in stream]
        HELPER_RESULTS.append([events, stream.get_final_message().content[0].input])


@tracekit.entrypoint
def typed_stream_helper_agent(ticket: str) -> None:
    with tracekit.run(tenant="acme"), _helper_stream(ticket, output_format=Refund) as stream:
        HELPER_RESULTS.append(stream.get_final_message().parsed_output)


@pytest.mark.parametrize("agent", ["stream_helper_agent", "typed_stream_helper_agent"])
def test_agent_replay_serves_the_anthropic_stream_helper(store: Path, llm: LLMServer,
                                                         tmp_path: Path, agent: str) -> None:
    HELPER_BASE[:] = [llm.url]
    HELPER_RESULTS.clear()
    globals()[agent]("refund 42")
    assert tracekit.flush(30)
    run_id = Recording(store).runs()[-1]["run_id"]
    bundle = tracekit.export_incident([run_id], "helper", tmp_path / "fixtures", store)
    llm.stop()  # nothing listens: the replay serves the recorded events (parsed again)
    [recorded] = HELPER_RESULTS
    if agent == "typed_stream_helper_agent":
        assert recorded == Refund(order_id="42", amount=30)
    else:
        assert recorded[1] == ARGS and "message_stop" in recorded[0]
    HELPER_RESULTS.clear()
    verdict = tracekit.replay(bundle, guard=tracekit.Guard(), entrypoint=f"{__name__}:{agent}")
    assert [recorded] == HELPER_RESULTS and verdict.mode == "agent"


def test_the_openai_chat_stream_helper_is_recorded_with_its_usage(
        store: Path, llm: LLMServer) -> None:
    """``chat.completions.stream()`` calls the client's own ``create``: recorded, asked for
    its usage, and the SDK's "not given" sentinels left out of the prompt."""
    client = clients(llm, "openai")
    with tracekit.run(tenant="acme"), client.chat.completions.stream(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "refund 42"}]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "refund"  # type: ignore[index,union-attr]
    prompt, output = outputs(store)
    assert json.loads(prompt["args"]) == {"messages": [{"role": "user", "content": "refund 42"}]}
    assert (output["tokens_in"], output["tokens_out"]) == (USAGE_IN, USAGE_OUT)
    assert output["cost_usd"] == pytest.approx(MINI)
    assert llm.requests[-1][1]["stream_options"] == {"include_usage": True}


class Refund(BaseModel):
    order_id: str
    amount: float


PARSED: list[Any] = []
PARSE_BASE: list[str] = []


@tracekit.entrypoint
def parse_agent(ticket: str) -> None:
    """Structured outputs through the three ``parse`` helpers, which post without ``create``."""
    base = PARSE_BASE[0]
    client = tracekit.instrument(openai.OpenAI(api_key="sk-agent", base_url=f"{base}/v1"))
    claude = tracekit.instrument(anthropic.Anthropic(api_key="sk-ant-agent", base_url=base))
    messages = [{"role": "user", "content": ticket}]
    with tracekit.run(tenant="acme"):
        chat = client.chat.completions.parse(model="gpt-4o-mini", messages=messages,
                                             response_format=Refund)
        response = client.responses.parse(model="gpt-4o-mini", input=ticket, text_format=Refund)
        message = claude.messages.parse(model="claude-haiku-4-5", max_tokens=100,
                                        messages=messages, output_format=Refund)
        PARSED.append([chat.choices[0].message.parsed, response.output_parsed,
                       message.parsed_output])


def test_the_parse_helpers_are_recorded_guarded_and_replayed_as_parsed_objects(
        store: Path, llm: LLMServer, tmp_path: Path) -> None:
    PARSE_BASE[:], PARSED[:] = [llm.url], []
    parse_agent("refund 42")
    expected = Refund(order_id="42", amount=30)
    assert [[expected] * 3] == PARSED
    chat_prompt, chat_output, prompt, output, claude_prompt, claude_output = outputs(store)
    assert json.loads(claude_prompt["args"])["output_format"]["name"] == "Refund"
    assert claude_output["cost_usd"] == pytest.approx(HAIKU)
    assert json.loads(chat_prompt["args"])["response_format"]["name"] == "Refund"
    assert "order_id" in json.dumps(json.loads(prompt["args"])["text_format"]["json_schema"])
    assert chat_output["cost_usd"] == output["cost_usd"] == pytest.approx(MINI)
    run_id = Recording(store).runs()[-1]["run_id"]
    bundle = tracekit.export_incident([run_id], "parse", tmp_path / "fixtures", store)
    llm.stop()  # nothing listens: the replay serves the recorded answers, parsed again
    PARSED.clear()
    verdict = tracekit.replay(bundle, guard=tracekit.Guard(), entrypoint=f"{__name__}:parse_agent")
    assert [[expected] * 3] == PARSED and verdict.mode == "agent"




@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_halted_run_cannot_reach_the_model_through_parse(
        tmp_path: Path, llm: LLMServer, asynchronous: bool) -> None:
    tracekit.configure(store=tmp_path / "store", guard=tracekit.Guard(max_steps=1))
    try:
        client = clients(llm, "openai", asynchronous)
        claude = clients(llm, "anthropic", asynchronous)
        kwargs = {"model": "gpt-4o-mini", "messages": [], "response_format": Refund}

        loop = asyncio.new_event_loop()  # one loop for the async client's connections

        def call(method: Any, **more: Any) -> Any:
            return loop.run_until_complete(method(**more)) if asynchronous else method(**more)

        with tracekit.run(tenant="acme"):
            call(client.chat.completions.parse, **kwargs)
            with pytest.raises(tracekit.Halted) as halted:  # over max_steps: halted when counted
                call(client.chat.completions.parse, **kwargs)
            with pytest.raises(tracekit.Halted) as refused:  # never sent
                call(client.responses.parse, model="gpt-4o-mini", input="x", text_format=Refund)
            with pytest.raises(tracekit.Halted):  # never sent
                call(claude.messages.parse, model="claude-haiku-4-5", max_tokens=10, messages=[],
                     output_format=Refund)
            if not asynchronous:  # never sent either
                with pytest.raises(tracekit.Halted), claude.messages.stream(
                        model="claude-haiku-4-5", max_tokens=10, messages=[],
                        output_format=Refund) as stream:
                    stream.get_final_message()
        loop.close()
        assert halted.value.signal == refused.value.signal == "steps"
        assert len(llm.requests) == 2
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)


def test_the_responses_stream_helper_is_recorded_through_create(
        store: Path, llm: LLMServer) -> None:
    """``responses.stream()`` calls the client's own ``create``: one recorded, costed call."""
    client = clients(llm, "openai")
    with tracekit.run(tenant="acme"), client.responses.stream(
            model="gpt-4o-mini", input="refund 42") as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_response()
    assert "response.completed" in kinds and final.output[0].type == "function_call"
    prompt, output = outputs(store)
    assert "refund 42" in prompt["args"] and output["cost_usd"] == pytest.approx(MINI)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_call_the_sdk_fails_is_recorded_as_an_error_of_its_prompt(
        store: Path, llm: LLMServer, asynchronous: bool) -> None:
    url = llm.url
    llm.stop()  # nothing listens: the SDK raises its connection error
    cls: Any = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    client = tracekit.instrument(cls(api_key="sk-test-key", base_url=f"{url}/v1", max_retries=0))
    with pytest.raises(openai.APIConnectionError), tracekit.run(tenant="acme"):
        kwargs = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "refund 42"}]}
        if asynchronous:
            asyncio.run(client.chat.completions.create(**kwargs))
        else:
            client.chat.completions.create(**kwargs)
    assert tracekit.flush(30)
    prompt, error = Recording(store).rows(
        "SELECT * FROM events WHERE kind IN ('prompt', 'error') ORDER BY seq")
    assert (prompt["kind"], error["kind"], error["status"]) == ("prompt", "error", "error")
    assert error["call_id"] == prompt["call_id"] and "Connection" in error["error"]
