"""A small support agent on the OpenAI Agents SDK for the tests: the SDK's own
``OpenAIChatCompletionsModel`` or ``OpenAIResponsesModel`` on an ``AsyncOpenAI`` client pointed at
the loopback fake of the API (``BASE``), a refund tool, guarded by ``guard`` and recorded by a
``TracekitProcessor``.

Self-contained (tracekit, openai and agents only): the end-to-end test copies it into its tmp
project as the agent the generated incident test replays. ``handle`` registers the processor
(``set_trace_processors``, which also drops the SDK's exporter to OpenAI).
"""

from __future__ import annotations

from typing import Any

import agents
import openai
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
)

import tracekit
from tracekit.integrations.openai_agents import TracekitProcessor, guard

BASE = {"url": "http://127.0.0.1:1/v1"}  # set by the test; agent replay never connects
REFUNDS: list[str] = []  # the refunds that really ran
WRITES = {"refund": {"destination": "payments",
                     "idempotency_key": lambda order_id, amount: f"refund:{order_id}"}}
PROCESSOR = TracekitProcessor(tenant="acme")


def refund(order_id: str, amount: float) -> dict[str, Any]:
    """Refund an order."""
    REFUNDS.append(order_id)
    return {"order_id": order_id, "status": "refunded"}


def build(api: str = "chat", instrument: bool = False, guarded: bool = True,
          tools: list[Any] | None = None) -> Agent[Any]:
    """The agent on the chat completions (``chat``) or Responses (``responses``) model; its
    client instrumented (``tracekit.instrument``) when asked."""
    client = openai.AsyncOpenAI(api_key="sk-agent-key", base_url=BASE["url"], max_retries=0)
    if instrument:
        client = tracekit.instrument(client)
    model: Any = (OpenAIChatCompletionsModel("gpt-4o-mini", client) if api == "chat"
                  else OpenAIResponsesModel("gpt-4o-mini", client))
    # a streamed chat completion carries its usage only when the SDK is asked to ask for it
    agent = Agent(name="support", instructions="You refund orders.", model=model,
                  model_settings=ModelSettings(include_usage=True),
                  tools=tools if tools is not None else [function_tool(refund)])
    return guard(agent, writes=WRITES) if guarded else agent


@tracekit.entrypoint
def handle(ticket: str) -> str:
    """One ticket, one run of the agent (agent replay calls this again with the ticket)."""
    agents.set_trace_processors([PROCESSOR])  # at an application's start; here, each ticket
    result = Runner.run_sync(build(instrument=True), ticket, max_turns=20)
    return str(result.final_output)

