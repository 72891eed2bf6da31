"""A small refund agent on the OpenAI Agents SDK, recorded by a tracing processor and stopped by
``guard``.

    pip install 'tracekit[openai-agents]'
    OPENAI_API_KEY=... python examples/openai_agents_agent.py "refund order 42"

``TracekitProcessor`` makes every agent span a tracekit run (a handoff a sub-run) and records
its model calls (prompt, answer, usage, cost, tool calls) and tool calls; registering it with
``set_trace_processors`` also replaces the SDK's default exporter, which uploads traces to
OpenAI. ``guard(agent, writes=...)`` checks every tool call before it runs and the kill switch
before every model call, and takes ``refund`` (declared a write) through the side-effect ledger.
A model that keeps asking for the same refund is halted by ``max_repeats``: ``Runner.run`` ends
with ``tracekit.Halted``, the refund having fired once. The client is instrumented too
(``tracekit.instrument``), so ``tracekit make-test refund-loop --entrypoint
openai_agents_agent:handle`` replays this code with the recorded answers, no network.
"""

from __future__ import annotations

import sys

import agents
import openai
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool

import tracekit
from tracekit.integrations.openai_agents import TracekitProcessor, guard

REFUNDS: list[str] = []


@function_tool
def refund(order_id: str, amount: float) -> dict[str, str]:
    """Refund an order."""
    REFUNDS.append(order_id)  # the payments API call goes here
    return {"order_id": order_id, "status": "refunded"}


def build(model: str = "gpt-4o-mini") -> Agent[None]:
    """The agent, guarded: its tools as they are, the write declared."""
    client = tracekit.instrument(openai.AsyncOpenAI())
    agent = Agent(
        name="support",
        instructions="You are a support agent. Use tools to refund orders.",
        model=OpenAIChatCompletionsModel(model, client),
        tools=[refund],
    )
    return guard(agent, writes={"refund": {"destination": "payments"}})


@tracekit.entrypoint
def handle(ticket: str) -> str:
    """One ticket, one run of the agent."""
    return str(Runner.run_sync(build(), ticket, max_turns=20).final_output)


agents.set_trace_processors([TracekitProcessor(tenant="acme")])

if __name__ == "__main__":
    tracekit.configure(guard=tracekit.Guard(max_repeats=3, max_steps=20, max_cost_usd=0.50))
    print(handle(" ".join(sys.argv[1:]) or "refund order 42"))
