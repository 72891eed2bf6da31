"""A small refund agent on LangChain v1's ``create_agent`` (a LangGraph graph), recorded and
guarded by one middleware.

    pip install 'tracekit[langgraph]' langchain-openai
    OPENAI_API_KEY=... python examples/langgraph_agent.py "refund order 42"

``TracekitMiddleware`` records every model call (prompt, answer, usage, cost, tool calls) and
checks the kill switch before it; every tool call goes through the guard before it runs, and
``refund`` (declared a write) through the side-effect ledger. A model that keeps asking for the
same refund is halted by ``max_repeats``: ``tracekit.Halted`` leaves the graph and the agent
stops, having fired the refund once. Export the run (``tracekit export --run RUN --incident
refund-loop``) and make it a test (``tracekit make-test refund-loop --entrypoint
langgraph_agent:handle``): the generated test runs this code again with the recorded answers
(the model is not called, the refund never runs).
"""

from __future__ import annotations

import sys
from typing import Any

from langchain.agents import create_agent
from langchain.chat_models import init_chat_model
from langchain_core.tools import tool

import tracekit
from tracekit.integrations.langchain import TracekitMiddleware

REFUNDS: list[str] = []


@tool
def refund(order_id: str, amount: float) -> dict[str, str]:
    """Refund an order."""
    REFUNDS.append(order_id)  # the payments API call goes here
    return {"order_id": order_id, "status": "refunded"}


def build(model: Any = None) -> Any:
    """The agent: ``model`` is any LangChain chat model with tool calling."""
    guard = TracekitMiddleware(
        writes={"refund": {"destination": "payments",
                           "idempotency_key": lambda order_id, amount: f"refund:{order_id}"}},
        bounds={"refund": {"amount": (0, 200)}},
    )  # fmt: skip
    return create_agent(
        model or init_chat_model("openai:gpt-4o-mini"),
        tools=[refund],
        middleware=[guard],  # first: nothing outside it may swallow tracekit.Halted
        system_prompt="You are a support agent. Use tools to refund orders.",
    )


@tracekit.entrypoint
def handle(ticket: str, model: Any = None) -> str:
    """One ticket, one run: the agent's last answer."""
    agent = build(model)
    with tracekit.run(tenant="acme"):
        state = agent.invoke({"messages": [{"role": "user", "content": ticket}]})
    return str(state["messages"][-1].content)


if __name__ == "__main__":
    tracekit.configure(guard=tracekit.Guard(max_repeats=3, max_steps=20, max_cost_usd=0.50))
    print(handle(" ".join(sys.argv[1:]) or "refund order 42"))
