"""A small PydanticAI support agent for the tests: PydanticAI's own ``FunctionModel`` scripted
as a model that, in ``runaway`` mode, asks for the same refund again and again, and in
``healthy`` mode asks once and answers once it has the tool's result.

Self-contained (tracekit and pydantic_ai only): the end-to-end test copies it into its tmp
project as the agent the generated incident test replays.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.usage import RequestUsage

import tracekit
from tracekit.integrations.pydantic_ai import Tracekit

USAGE_IN, USAGE_OUT = 120, 30
COST = (USAGE_IN * 0.15 + USAGE_OUT * 0.6) / 1e6  # gpt-4o-mini in tracekit's price table
MODE = {"value": "healthy"}
REFUNDS: list[str] = []  # the refunds that really ran
REQUESTS: list[int] = []  # the model requests answered (the number of messages of each)
WRITES = {"refund": {"destination": "payments",
                     "idempotency_key": lambda order_id, amount: f"refund:{order_id}"}}


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The scripted model: a refund call, or the final answer once the refund is done."""
    REQUESTS.append(len(messages))
    usage = RequestUsage(input_tokens=USAGE_IN, output_tokens=USAGE_OUT)
    if MODE["value"] == "runaway" or not _has_result(messages):
        call = ToolCallPart("refund", {"order_id": "42", "amount": 30},
                            tool_call_id=f"call_{len(REQUESTS)}")
        return ModelResponse(parts=[call], usage=usage, model_name="gpt-4o-mini")
    return ModelResponse(parts=[TextPart("refunded")], usage=usage, model_name="gpt-4o-mini")


async def stream(messages: list[ModelMessage], info: AgentInfo
                 ) -> AsyncIterator[str | DeltaToolCalls]:
    """The same script, streamed (PydanticAI estimates a streamed answer's usage itself)."""
    part = answer(messages, info).parts[0]
    if isinstance(part, ToolCallPart):
        yield {0: DeltaToolCall(name=part.tool_name, json_args=part.args_as_json_str(),
                                tool_call_id=part.tool_call_id)}
    elif isinstance(part, TextPart):
        yield part.content


def model(name: str = "gpt-4o-mini") -> FunctionModel:
    """The scripted model, for plain and streamed requests."""
    return FunctionModel(answer, stream_function=stream, model_name=name)


def _has_result(messages: list[ModelMessage]) -> bool:
    return any(isinstance(part, ToolReturnPart) for message in messages
               if isinstance(message, ModelRequest) for part in message.parts)


def refund(order_id: str, amount: float) -> dict[str, Any]:
    """Refund an order (a write: it changes the world)."""
    REFUNDS.append(order_id)
    return {"order_id": order_id, "status": "refunded"}


def build(*capabilities: Any, tenant: str | None = "acme") -> Agent[None, str]:
    """The support agent; by default with tracekit's capability for tenant ``tenant``."""
    caps = list(capabilities) or [Tracekit(tenant=tenant, writes=WRITES)]
    agent = Agent(model(), name="support", capabilities=caps)
    agent.tool_plain(refund)
    return agent


AGENT = build()


@tracekit.entrypoint
def handle(ticket: str) -> str:
    """One ticket, one agent run (agent replay calls this again with the recorded ticket)."""
    return AGENT.run_sync(ticket).output
