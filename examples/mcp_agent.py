"""A small refund agent whose tools are an MCP server's, recorded and guarded by tracekit.

    OPENAI_API_KEY=... python examples/mcp_agent.py "refund order 42"

The model is the openai SDK (``tracekit.instrument``); the tools are served by an MCP server
(here in-process, ``mcp.Client(shop)``; a stdio or HTTP server is connected the same way).
``instrument_session`` records every ``call_tool`` and checks the guard before it is sent; the
refund is declared a write, so it goes through the side-effect ledger. A model that keeps asking
for the same refund is halted by ``max_repeats`` and the server refunds once. Export the run
(``tracekit export --run RUN --incident refund-loop``) and make it a test (``tracekit make-test
refund-loop --entrypoint mcp_agent:handle``): the replay serves the recorded answers and tool
results, the model and the server are not called.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import openai
from mcp import Client, ClientSession
from mcp.server.mcpserver import MCPServer

import tracekit
from tracekit.integrations.mcp import instrument_session, unwrap_halts

shop = MCPServer("shop")
REFUNDS: list[str] = []  # what the payments side did


@shop.tool()
def refund(order_id: str, amount: float) -> dict[str, str]:
    """Refund an order."""
    REFUNDS.append(order_id)  # the payments API call goes here
    return {"order_id": order_id, "status": "refunded"}


async def openai_tools(client: Client) -> list[dict[str, Any]]:
    """The server's tools, as the model is told about them."""
    listed = await client.list_tools()
    return [{"type": "function", "function": {
        "name": t.name, "description": t.description or "", "parameters": t.input_schema}}
        for t in listed.tools]  # fmt: skip


@tracekit.entrypoint
async def handle(ticket: str, model: str = "gpt-4o-mini") -> str:
    llm = tracekit.instrument(openai.AsyncOpenAI())
    with unwrap_halts():  # tracekit.Halted leaves the MCP session as itself
        async with Client(shop) as client:
            session = instrument_session(client.session, writes={"refund": {
                "destination": "payments", "amount": lambda order_id, amount: amount}})
            tools = await openai_tools(client)
            async with tracekit.run(tenant="acme"):
                return await answer(llm, model, session, tools, ticket)


async def answer(llm: openai.AsyncOpenAI, model: str, session: ClientSession,
                 tools: list[dict[str, Any]], ticket: str) -> str:
    """The agent loop: the model asks for tools until it answers."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a support agent. Use tools to refund orders."},
        {"role": "user", "content": ticket}]
    for _ in range(20):
        reply = await llm.chat.completions.create(model=model, messages=messages, tools=tools)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = await session.call_tool(
                call.function.name, json.loads(call.function.arguments))
            content = result.content[0]
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": getattr(content, "text", "")})
    return "stopped after 20 steps"


if __name__ == "__main__":
    tracekit.configure(guard=tracekit.Guard(max_repeats=3, max_steps=20, max_cost_usd=0.50))
    print(asyncio.run(handle(" ".join(sys.argv[1:]) or "refund order 42")))
