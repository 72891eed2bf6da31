"""A small refund agent on PydanticAI, recorded and guarded by one capability.

    pip install 'tracekit[pydantic-ai]'
    OPENAI_API_KEY=... python examples/pydantic_ai_agent.py "refund order 42"

``Tracekit(tenant=..., writes=...)`` makes each agent run a tracekit run: every model request is
recorded (prompt, answer, usage, cost, tool calls) after the kill switch is checked, every tool
call is guarded before it runs, and ``refund`` (declared a write) goes through the side-effect
ledger. A model that keeps asking for the same refund is halted by ``max_repeats``:
``tracekit.Halted`` ends the agent run, the refund having fired once. Export the run (``tracekit
export --run RUN --incident refund-loop``) and make it a test (``tracekit make-test refund-loop
--entrypoint pydantic_ai_agent:handle``): the generated test runs this code again with the
recorded answers (the model is not called, the refund never runs).
"""

from __future__ import annotations

import sys

from pydantic_ai import Agent

import tracekit
from tracekit.integrations.pydantic_ai import Tracekit

MODEL = "openai:gpt-4o-mini"
REFUNDS: list[str] = []


def refund(order_id: str, amount: float) -> dict[str, str]:
    """Refund an order."""
    REFUNDS.append(order_id)  # the payments API call goes here
    return {"order_id": order_id, "status": "refunded"}


def build(model: str = MODEL) -> Agent[None, str]:
    """The agent, recorded and guarded: its tools as they are, the write declared."""
    agent = Agent(
        model,
        name="support",
        instructions="You are a support agent. Use tools to refund orders.",
        capabilities=[Tracekit(tenant="acme", writes={"refund": {"destination": "payments"}})],
    )
    agent.tool_plain(refund)
    return agent


@tracekit.entrypoint
def handle(ticket: str) -> str:
    """One ticket, one agent run."""
    return build().run_sync(ticket).output


if __name__ == "__main__":
    tracekit.configure(guard=tracekit.Guard(max_repeats=3, max_steps=20, max_cost_usd=0.50))
    print(handle(" ".join(sys.argv[1:]) or "refund order 42"))
