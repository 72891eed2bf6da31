"""A refund agent on LangChain's real ``create_agent``, with a scripted tool-calling chat model
(no network) and ``TracekitMiddleware``: what tests/integrations/test_langchain.py drives.

``ScriptedChat`` follows its ``mode``: ``healthy`` asks for the refund once, then answers;
``runaway`` asks for the same refund again and again; ``bad-args`` first asks with an amount
that is not a number, then as ``healthy``. It answers from the messages it is given (no state),
with usage and a model name, as a provider's model would. The end-to-end test copies this file
into its tmp project as ``lc_agent.py``: agent replay calls ``handle`` there again.
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

import tracekit
from tracekit.integrations.langchain import TracekitMiddleware

MODE = "healthy"  # the script handle()'s model follows
REFUNDS: list[str] = []  # every refund that really ran
ASKED: list[str] = []  # every model call that was really made (its mode)
USAGE = {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150}


class ScriptedChat(BaseChatModel):
    """A chat model that supports tool calling and answers from a script."""

    mode: str = "healthy"
    model_name: str = "gpt-4o-mini"
    calls: list[list[str]] = []  # the message types of each call it answered

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChat:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append([m.type for m in messages])
        ASKED.append(self.mode)
        return ChatResult(generations=[ChatGeneration(message=self.answer(messages))])

    def answer(self, messages: list[BaseMessage]) -> AIMessage:
        asked = sum(m.type == "ai" for m in messages)
        last = messages[-1]
        done = last.type == "tool" and getattr(last, "status", "success") == "success"
        if self.mode != "runaway" and done:
            return self._said("refunded")
        amount: Any = "lots" if self.mode == "bad-args" and asked == 0 else 20.0
        call = {"id": f"call_{asked + 1}", "name": "refund",
                "args": {"order_id": "42", "amount": amount}}  # fmt: skip
        return self._said("", [call])

    def _said(self, text: str, calls: list[dict[str, Any]] | None = None) -> AIMessage:
        return AIMessage(content=text, tool_calls=calls or [], usage_metadata=USAGE,  # type: ignore[arg-type]
                         response_metadata={"model_name": self.model_name})  # fmt: skip


@tool
def refund(order_id: str, amount: float) -> dict[str, str]:
    """Refund an order."""
    REFUNDS.append(order_id)
    return {"order_id": order_id, "status": "refunded"}


def middleware(**options: Any) -> TracekitMiddleware:
    """The tracekit middleware this agent uses: refund is a write to payments."""
    return TracekitMiddleware(writes={"refund": {"destination": "payments"}}, **options)


def build(
    mode: str = "healthy", extra: list[AgentMiddleware[Any, Any, Any]] | None = None, **options: Any
) -> tuple[Any, ScriptedChat]:
    """The agent (a compiled LangGraph graph) and its model."""
    model = ScriptedChat(mode=mode, calls=[])
    stack = [*(extra or []), middleware(**options)]
    agent = create_agent(model, tools=[refund], middleware=stack,
                         system_prompt="You are a support agent. Refund orders with the tool.")
    return agent, model


def ask(ticket: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": ticket}]}


@tracekit.entrypoint
def handle(ticket: str) -> str:
    """One ticket, one run: the agent's final answer."""
    agent, _ = build(MODE)
    with tracekit.run(tenant="acme", ticket=ticket):
        state = agent.invoke(ask(ticket))
    return str(state["messages"][-1].content)
