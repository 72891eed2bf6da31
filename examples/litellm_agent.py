"""A small refund agent on LiteLLM, recorded and guarded by tracekit.

    OPENAI_API_KEY=... python examples/litellm_agent.py "refund order 42"

``tracekit.integrations.litellm.completion`` is ``litellm.completion`` recorded (prompt, answer,
usage, LiteLLM's own cost, tool calls) with the guard's kill switch checked before each call;
the write tool goes through the side-effect ledger. ``TracekitLogger.register()`` puts the kill
switch in front of any ``litellm.completion`` called directly, too. A model that keeps asking
for the same refund is halted by ``max_repeats`` and the refund fires once. Export the run
(``tracekit export --run RUN --incident refund-loop``) and make it a test (``tracekit make-test
refund-loop --entrypoint litellm_agent:handle``): the replay serves the recorded answers as
LiteLLM's own objects, no network. (Set ``LITELLM_LOCAL_MODEL_COST_MAP=True`` where LiteLLM
must not fetch its price map when imported, e.g. in CI.)
"""

from __future__ import annotations

import json
import sys
from typing import Any

import tracekit
from tracekit.integrations.litellm import TracekitLogger, completion

TOOLS = [{"type": "function", "function": {
    "name": "refund", "description": "Refund an order.",
    "parameters": {"type": "object", "properties": {
        "order_id": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["order_id", "amount"]}}}]
REFUNDS: list[str] = []  # what the payments side did


@tracekit.tool(writes=True, destination="payments",
               idempotency_key=lambda order_id, amount: f"refund:{order_id}")
def refund(order_id: str, amount: float) -> dict[str, str]:
    REFUNDS.append(order_id)  # the payments API call goes here
    return {"order_id": order_id, "status": "refunded"}


@tracekit.entrypoint
def handle(ticket: str, model: str = "openai/gpt-4o-mini", **litellm_options: Any) -> str:
    """Answer a ticket; ``litellm_options`` go to every call (``api_base``, ``api_key``...)."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a support agent. Use tools to refund orders."},
        {"role": "user", "content": ticket}]
    with tracekit.run(tenant="acme"):
        for _ in range(20):
            message = completion(model=model, messages=messages, tools=TOOLS,
                                 **litellm_options).choices[0].message
            if not message.tool_calls:
                return message.content or ""
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                result = refund(**json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": json.dumps(result)})
    return "stopped after 20 steps"


if __name__ == "__main__":
    TracekitLogger.register()
    tracekit.configure(guard=tracekit.Guard(max_repeats=3, max_steps=20, max_cost_usd=0.50))
    print(handle(" ".join(sys.argv[1:]) or "refund order 42"))
