"""A small refund agent on the openai SDK, recorded and guarded by one line.

    OPENAI_API_KEY=... python examples/openai_agent.py "refund order 42"

``tracekit.instrument(client)`` records every model call (prompt, answer, usage, cost, tool
calls) and checks the guard before each; the write tool goes through the side-effect ledger. A
model that keeps asking for the same refund is halted by ``max_repeats`` and fires it once.
Export the run (``tracekit export --run RUN --incident refund-loop``) and make it a test
(``tracekit make-test refund-loop --entrypoint openai_agent:handle``): the generated test replays
this code with the recorded answers, no network.
"""

from __future__ import annotations

import json
import sys

import openai

import tracekit

TOOLS = [{"type": "function", "function": {
    "name": "refund", "description": "Refund an order.",
    "parameters": {"type": "object", "properties": {
        "order_id": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["order_id", "amount"]}}}]


@tracekit.tool(writes=True, destination="payments",
               idempotency_key=lambda order_id, amount: f"refund:{order_id}")
def refund(order_id: str, amount: float) -> dict[str, str]:
    return {"order_id": order_id, "status": "refunded"}  # the payments API call goes here


@tracekit.entrypoint
def handle(ticket: str, model: str = "gpt-4o-mini") -> str:
    client = tracekit.instrument(openai.OpenAI())
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "You are a support agent. Use tools to refund orders."},
        {"role": "user", "content": ticket}]
    with tracekit.run(tenant="acme"):
        for _ in range(20):
            message = client.chat.completions.create(
                model=model, messages=messages, tools=TOOLS).choices[0].message
            if not message.tool_calls:
                return message.content or ""
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                result = refund(**json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": json.dumps(result)})
    return "stopped after 20 steps"


if __name__ == "__main__":
    tracekit.configure(guard=tracekit.Guard(max_repeats=3, max_steps=20, max_cost_usd=0.50))
    print(handle(" ".join(sys.argv[1:]) or "refund order 42"))
