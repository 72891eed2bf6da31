"""``tracekit.integrations.mcp.instrument_session``: a real MCP ``ClientSession`` talking to a real
in-process ``MCPServer`` (no network), its ``call_tool`` recorded and guarded.

Each test connects both ways the SDK offers in-process: ``mcp.Client(server)`` (its session on
the direct dispatcher) and a bare ``ClientSession`` over the memory streams of
``InMemoryTransport`` (JSON-RPC, the initialize handshake). Every call inside a run is a tool
call with its arguments and result; the guard refuses a call before it reaches the server; a
declared write goes through the ledger, so a repeat never reaches the server; an ``isError``
result is the call's failure; an agent on the openai SDK and MCP tools runs into a runaway, is
halted, exported, made into a test that passes, and replayed without the server being called.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from _llm_server import LLMServer
from _recorded import recorded_events, run_gate
from mcp import Client, ClientSession
from mcp.client._memory import InMemoryTransport
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

import tracekit
from tracekit._capture.state import PROCESS
from tracekit._gate.maketest import make_test
from tracekit.integrations.mcp import McpToolError, instrument_session, unwrap_halts
from tracekit.testing import Recording

KINDS = ["client", "session"]


class Shop:
    """A real MCP server with a read tool, a write tool and a tool that fails; what reached
    each tool is kept."""

    def __init__(self) -> None:
        self.server = MCPServer("shop")
        self.lookups: list[str] = []
        self.refunds: list[tuple[str, float]] = []
        self.cancels: list[str] = []
        tool = self.server.tool

        @tool()
        def lookup(order_id: str) -> dict[str, str]:
            self.lookups.append(order_id)
            return {"order_id": order_id, "status": "delivered"}

        @tool()
        def refund(order_id: str, amount: float) -> dict[str, Any]:
            self.refunds.append((order_id, amount))
            return {"order_id": order_id, "refunded": amount}

        @tool()
        def cancel(order_id: str) -> str:
            self.cancels.append(order_id)
            raise ToolError(f"order {order_id} has shipped")  # the server's isError result


@asynccontextmanager
async def connect(kind: str, server: MCPServer) -> AsyncIterator[ClientSession]:
    """A connected session: an ``mcp.Client``'s, or a bare one over memory streams."""
    if kind == "client":
        async with Client(server) as client:
            yield client.session
        return
    async with InMemoryTransport(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def session_run(
    kind: str, shop: Shop, body: Callable[[ClientSession], Awaitable[Any]], **declare: Any
) -> Any:
    """``body(session)`` on an instrumented session connected to ``shop``."""

    async def main() -> Any:
        async with connect(kind, shop.server) as session:
            return await body(instrument_session(session, **declare))

    return anyio.run(main)


def events(store: Path, *kinds: str) -> list[dict[str, Any]]:
    return recorded_events(store, kinds, "ts, seq")


def text(result: CallToolResult) -> Any:
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


# == what is recorded ==============================================================================
@pytest.mark.parametrize("kind", KINDS)
def test_each_call_is_a_tool_call_and_result_in_its_run_and_sub_run(
    guarded: Callable[..., Path], kind: str
) -> None:
    store = guarded()
    shop = Shop()

    async def body(session: ClientSession) -> tuple[str, str, CallToolResult]:
        async with tracekit.run(tenant="acme") as run:
            got = await session.call_tool("lookup", {"order_id": "A-1"})
            async with tracekit.run(tenant="acme", parent=run) as sub:
                await session.call_tool("refund", {"order_id": "A-1", "amount": 20.0})
        return run.run_id, sub.run_id, got

    parent, child, got = session_run(kind, shop, body, writes={"refund": True})
    assert type(got) is CallToolResult and text(got)["status"] == "delivered"
    assert shop.lookups == ["A-1"] and shop.refunds == [("A-1", 20.0)]
    calls = events(store, "tool_call")
    assert [(c["name"], c["run_id"]) for c in calls] == [("lookup", parent), ("refund", child)]
    assert [json.loads(c["args"]) for c in calls] == [
        {"order_id": "A-1"}, {"order_id": "A-1", "amount": 20.0}]
    assert calls[0]["attrs"] is None and json.loads(calls[1]["attrs"]) == {"writes": True}
    results = events(store, "tool_result")
    assert [r["status"] for r in results] == ["ok", "ok"]
    recorded = CallToolResult.model_validate(json.loads(results[0]["output"]))
    assert recorded.content == got.content  # the MCP result, as the caller got it
    [sub_start] = [e for e in events(store, "run_start") if e["run_id"] == child]
    assert sub_start["parent_run_id"] == parent


@pytest.mark.parametrize("kind", KINDS)
def test_outside_a_run_the_session_is_untouched_and_nothing_is_recorded(
    guarded: Callable[..., Path], kind: str
) -> None:
    store = guarded(max_repeats=1)
    shop = Shop()

    async def body(session: ClientSession) -> list[CallToolResult]:
        assert instrument_session(session) is session  # twice, nothing declared: no change
        with pytest.raises(ValueError, match="instrumented already"):
            instrument_session(session, writes=["refund"])
        return [await session.call_tool("refund", {"order_id": "B", "amount": 5.0})
                for _ in range(3)]

    got = session_run(kind, shop, body, writes=["refund"])
    assert shop.refunds == [("B", 5.0)] * 3  # no run: no ledger, no guard
    assert all(not r.is_error for r in got)
    assert events(store, "tool_call", "tool_result", "guard") == []


def test_write_options_are_checked_when_the_session_is_instrumented() -> None:
    async def body(session: ClientSession) -> None:
        with pytest.raises(TypeError, match="unknown options"):
            instrument_session(session, writes={"refund": {"idempotency": "k"}})
        with pytest.raises(ValueError, match=r"\(low, high\) pair"):
            instrument_session(session, bounds={"refund": {"amount": 200}})  # type: ignore[dict-item]
        with pytest.raises(TypeError, match="may not set 'name'"):
            instrument_session(session, writes={"refund": {"name": "other"}})

    async def main() -> None:
        async with connect("client", Shop().server) as session:
            await body(session)

    anyio.run(main)


# == the ledger ====================================================================================
@pytest.mark.parametrize("kind", KINDS)
def test_a_declared_write_goes_through_the_ledger_and_a_repeat_never_reaches_the_server(
    guarded: Callable[..., Path], kind: str
) -> None:
    store = guarded(max_repeats=10)
    shop = Shop()
    writes = {"refund": {"destination": "payments", "amount": lambda order_id, amount: amount,
                         "idempotency_key": lambda order_id, amount: f"refund:{order_id}"}}

    async def body(session: ClientSession) -> list[CallToolResult]:
        async with tracekit.run(tenant="acme"):
            got = [await session.call_tool("refund", {"order_id": "42", "amount": 30.0})
                   for _ in range(3)]
            with pytest.raises(tracekit.IdempotencyConflict):  # same key, other arguments
                await session.call_tool("refund", {"order_id": "42", "amount": 99.0})
        return got

    got = session_run(kind, shop, body, writes=writes)
    assert shop.refunds == [("42", 30.0)]  # fired once: the repeats never reached the server
    assert all(type(r) is CallToolResult for r in got)  # the first result, as MCP's object
    assert [text(r) for r in got] == [{"order_id": "42", "refunded": 30.0}] * 3
    assert [r["status"] for r in events(store, "tool_result")] == [
        "ok", "duplicate", "duplicate", "error"]
    ledger = Recording(store).rows(
        "SELECT status, destination, amount FROM ledger_history ORDER BY ts")
    assert [r["status"] for r in ledger] == [
        "reserved", "fired", "suppressed_duplicate", "suppressed_duplicate",
        "suppressed_duplicate"]  # the last: the conflict, refused
    assert {(r["destination"], r["amount"]) for r in ledger[:4]} == {("payments", 30.0)}


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_result_is_the_calls_failure_and_reaches_the_caller_as_it_came(
    guarded: Callable[..., Path], kind: str
) -> None:
    store = guarded(max_repeats=10)
    shop = Shop()

    async def body(session: ClientSession) -> CallToolResult:
        async with tracekit.run(tenant="acme"):
            got = await session.call_tool("cancel", {"order_id": "7"})
            with pytest.raises(tracekit.ReplayedFailure):  # a failed write is not run again
                await session.call_tool("cancel", {"order_id": "7"})
        return got

    got = session_run(kind, shop, body, writes=["cancel"])
    assert got.is_error and "has shipped" in got.content[0].text  # type: ignore[union-attr]
    assert shop.cancels == ["7"]
    first, second = events(store, "tool_result")
    assert first["status"] == "error" and "McpToolError" in first["error"]
    assert "has shipped" in first["error"]
    assert second["status"] == "error" and "ReplayedFailure" in second["error"]

    async def retried(session: ClientSession) -> list[CallToolResult]:
        async with tracekit.run(tenant="acme"):
            return [await session.call_tool("cancel", {"order_id": "8"}) for _ in range(2)]

    again = session_run(kind, shop, retried, writes={"cancel": {"retry_on": (McpToolError,)}})
    assert shop.cancels == ["7", "8", "8"] and all(r.is_error for r in again)


# == the guard =====================================================================================
@pytest.mark.parametrize("kind", KINDS)
def test_the_guard_refuses_a_call_before_it_is_sent_to_the_server(
    guarded: Callable[..., Path], kind: str
) -> None:
    store = guarded(max_repeats=10)
    shop = Shop()

    async def body(session: ClientSession) -> list[tracekit.Halted]:
        refused = []
        async with tracekit.run(tenant="acme"):
            await session.call_tool("lookup", {"order_id": "1"})
            with pytest.raises(tracekit.Halted) as bounded:
                await session.call_tool("refund", {"order_id": "1", "amount": 500.0})
            refused.append(bounded.value)
            runtime = PROCESS.guard_runtime()  # `tracekit halt tenant acme`, seen at once
            assert runtime is not None
            tracekit.halt("tenant", "acme", reason="refund loop", store=store)
            runtime.refresh()
            with pytest.raises(tracekit.Halted) as halted:
                await session.call_tool("lookup", {"order_id": "2"})
            refused.append(halted.value)
        return refused

    try:
        bounded, halted = session_run(kind, shop, body, writes=["refund"],
                                      bounds={"refund": {"amount": (0, 200)}})
    finally:
        tracekit.unhalt("tenant", "acme", store=store)
    assert shop.lookups == ["1"] and shop.refunds == []  # neither refusal reached the server
    assert bounded.signal == "scope" and "amount" in str(bounded) and halted.level == "tenant"
    guards = events(store, "guard")
    assert [(g["name"], json.loads(g["args"])) for g in guards] == [
        ("refund", {"order_id": "1", "amount": 500.0}), ("lookup", {"order_id": "2"})]


@pytest.mark.parametrize("kind", KINDS)
def test_halted_stops_the_agent_through_the_session_and_unwrap_halts_hands_it_back_bare(
    guarded: Callable[..., Path], kind: str
) -> None:
    guarded(max_repeats=1)
    shop = Shop()

    async def agent(after_halt: list[str]) -> None:
        async with connect(kind, shop.server) as session:
            tools = instrument_session(session)
            async with tracekit.run(tenant="acme"):
                for _ in range(5):
                    await tools.call_tool("lookup", {"order_id": "9"})
                    after_halt.append("went on")

    went_on: list[str] = []
    with pytest.raises(BaseExceptionGroup) as wrapped:  # the SDK's task groups wrap it
        anyio.run(agent, went_on)
    assert wrapped.value.subgroup(tracekit.Halted) is not None
    with pytest.raises(tracekit.Halted) as bare, unwrap_halts():
        anyio.run(agent, went_on)
    assert bare.value.signal == "repeats"
    assert shop.lookups == ["9", "9"] and went_on == ["went on", "went on"]  # one call each
    with pytest.raises(BaseExceptionGroup), unwrap_halts():  # not tracekit's: left as it is

        async def broken() -> None:
            async with connect(kind, shop.server):
                raise KeyError("not ours")

        anyio.run(broken)


# == an agent on MCP tools: runaway, halt, export, make-test, the gate =============================
AGENT = textwrap.dedent('''
    import json

    import openai
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    import tracekit
    from tracekit.integrations.mcp import instrument_session, unwrap_halts

    BASE = "http://127.0.0.1:1/v1"  # set by the test; replay never connects
    REFUNDS = []
    shop = MCPServer("shop")
    TOOLS = [{"type": "function", "function": {"name": "refund", "parameters": {}}}]


    @shop.tool()
    def refund(order_id: str, amount: float) -> dict:
        REFUNDS.append(order_id)
        return {"order_id": order_id, "status": "refunded"}


    @tracekit.entrypoint
    async def handle(ticket: str) -> str:
        model = tracekit.instrument(openai.AsyncOpenAI(api_key="sk-agent-key", base_url=BASE))
        with unwrap_halts():  # Halted leaves the session as itself, not in an ExceptionGroup
            async with Client(shop) as client:
                tools = instrument_session(client.session,
                                           writes={"refund": {"destination": "payments"}})
                async with tracekit.run(tenant="acme"):
                    return await loop(model, tools, [{"role": "user", "content": ticket}])


    async def loop(model, tools, messages):
        for _ in range(12):
            answer = await model.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=TOOLS)
            message = answer.choices[0].message
            if not message.tool_calls:
                return message.content
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                result = await tools.call_tool(call.function.name,
                                               json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": json.loads(result.content[0].text)["status"]})
        return "gave up"
''')



def test_an_mcp_agent_runs_away_is_halted_and_its_incident_test_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mcp_shop_agent.py").write_text(AGENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mcp_shop_agent", None)
    agent = importlib.import_module("mcp_shop_agent")
    llm = LLMServer()
    agent.BASE = f"{llm.url}/v1"
    store = tmp_path / "store"
    try:
        tracekit.configure(store=store, guard=tracekit.Guard(max_repeats=3))
        llm.mode = "runaway"
        with pytest.raises(tracekit.Halted) as halted:
            asyncio.run(agent.handle("refund order 42 NOW"))
        assert halted.value.signal == "repeats"
        assert agent.REFUNDS == ["42"]  # asked four times, sent once: the repeats were suppressed
        assert len(llm.requests) == 4  # and the refusal stopped the agent: no fifth model call
        tracekit.flush()
        runaway = Recording(store).runs()[-1]["run_id"]
        llm.mode = "healthy"
        assert asyncio.run(agent.handle("refund order 42, please")) == "refunded"  # not halted
        assert agent.REFUNDS == ["42", "42"]
        tracekit.export_incident([runaway], "mcp-loop", tmp_path / "fixtures/incidents", store)
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "elsewhere", guard=False)
        llm.stop()  # from here on nothing listens: replay serves the recorded answers
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_repeats = 3\n")
    made = make_test("mcp-loop", tmp_path / "fixtures/incidents", tmp_path / "tests/incidents",
                     entrypoint="mcp_shop_agent:handle")
    assert made.verdict.contained and made.verdict.mode == "agent", made.verdict.describe()
    assert made.verdict.signal == "repeats"
    assert agent.REFUNDS == ["42", "42"]  # agent replay never reached the MCP server
    policy = make_test("mcp-loop", tmp_path / "fixtures/incidents", tmp_path / "tests/policy")
    assert policy.verdict.contained and policy.verdict.step == made.verdict.step
    run = run_gate(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 contained" in run.stdout


def test_the_example_agent_is_halted_in_a_runaway_and_ends_when_healthy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = LLMServer()
    monkeypatch.setenv("OPENAI_BASE_URL", f"{llm.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example-key")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    sys.modules.pop("mcp_agent", None)
    example = importlib.import_module("mcp_agent")
    tracekit.configure(store=tmp_path / "store", guard=tracekit.Guard(max_repeats=3))
    try:
        llm.mode = "healthy"
        assert asyncio.run(example.handle("refund order 42")) == "refunded"
        llm.mode = "runaway"
        with pytest.raises(tracekit.Halted, match="4 times with the same arguments"):
            asyncio.run(example.handle("refund order 42"))
        assert example.REFUNDS == ["42", "42"]  # once per run
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)
        sys.modules.pop("mcp_agent", None)
        llm.stop()
