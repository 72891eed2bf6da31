"""What tracekit reads of LangChain's objects, and how it hands recorded ones back.

- A model call's prompt is its messages (role, content, tool calls, tool call id; never the
  random message ids LangChain assigns, so agent replay matches it again) and the names of the
  tools offered; its answer is the ``AIMessage``, with usage from ``usage_metadata``, cost from
  the price table and tool calls normalised as ``[{"id", "name", "arguments"}]``.
- A tool call's result is recorded as ``{"content": ...}`` (and its ``artifact``), or
  ``{"command": ...}`` for a tool that returned a LangGraph ``Command``; a result the ledger
  or agent replay hands back (decoded JSON) becomes a ``ToolMessage`` for the current call
  again. A ``ToolMessage`` with status ``error`` is a failed call (``ToolCallFailed``).
- In agent replay the model is not called: ``ServedModel`` answers with the recorded message.

The public integration (middleware, callback handler, sub-runs) is
``tracekit.integrations.langchain``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.types import Command

from .._base.encode import canonical_json
from .._capture.specs import ModelSpec
from .calls import field
from .prices import Prices

__all__ = [
    "ChatSpec",
    "ServedModel",
    "ToolCallFailed",
    "ToolOutcome",
    "answer_of",
    "model_name",
    "normalised_calls",
    "prompt_json",
    "tool_result",
]


# -- model calls ------------------------------------------------------------------------------
def model_name(model: Any) -> str | None:
    """A chat model's model id (``model_name``, ``model`` or ``model_id``), if it says one; of
    a model object or of its invocation parameters (a dict)."""
    for attr in ("model_name", "model", "model_id"):
        value = field(model, attr)
        if isinstance(value, str) and value:
            return value
    return None


def _message(message: Any) -> dict[str, Any]:
    """One message as the prompt records it: what the model reads, not LangChain's ids."""
    if not isinstance(message, BaseMessage):
        return {"content": message}
    out: dict[str, Any] = {"role": message.type, "content": message.content}
    if isinstance(message, AIMessage) and message.tool_calls:
        out["tool_calls"] = normalised_calls(message)
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
        if message.status == "error":
            out["status"] = "error"
    if message.name:
        out["name"] = message.name
    return out


def prompt_json(messages: Iterable[Any], tools: Sequence[Any] = ()) -> str:
    """The recorded prompt of a model call: its messages and the names of its tools."""
    doc: dict[str, Any] = {"messages": [_message(m) for m in messages]}
    names = [_tool_name(t) for t in tools]
    if names:
        doc["tools"] = names
    return canonical_json(doc)


def _tool_name(tool: Any) -> Any:
    if isinstance(tool, dict):  # a provider's built-in tool, or an OpenAI-format schema
        return tool.get("name") or (tool.get("function") or {}).get("name") or tool.get("type")
    return getattr(tool, "name", None) or getattr(tool, "__name__", None) or repr(tool)


def normalised_calls(message: Any) -> list[dict[str, Any]]:
    """An answer's tool calls as every integration records them: id, name, arguments (JSON)."""
    return [
        {"id": c.get("id"), "name": c.get("name"), "arguments": canonical_json(c.get("args", {}))}
        for c in getattr(message, "tool_calls", None) or ()
    ]


def answer_of(response: Any) -> Any:
    """The model's message in what a ``wrap_model_call`` handler returned (a ``ModelResponse``,
    an ``ExtendedModelResponse`` or an ``AIMessage``)."""
    response = getattr(response, "model_response", response)
    if isinstance(response, AIMessage):
        return response
    messages = getattr(response, "result", None) or ()
    return next((m for m in messages if isinstance(m, AIMessage)), response)


def _usage(message: Any) -> Any:
    return getattr(message, "usage_metadata", None)


def _decode(value: Any) -> Any:
    """A recorded answer (JSON) as the ``AIMessage`` it was."""
    if isinstance(value, dict) and value.get("type") == "ai":
        return AIMessage.model_validate(value)
    return value


def _nothing() -> None:
    """The function a ``ChatSpec`` stands for (the model call is the framework's)."""


class ChatSpec(ModelSpec):
    """The ``@tracekit.model`` spec of a LangChain chat model: the prompt comes encoded; usage,
    cost and tool calls are read from the ``AIMessage``; a recorded answer decodes back into
    one."""

    __slots__ = ("prices",)

    def __init__(self, name: str | None, prices: Prices) -> None:
        super().__init__(_nothing, name, None, _usage, _decode)
        self.prices = prices
        self.cost = self._cost
        self.attrs = self._attrs

    def prompt_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return str(args[0])  # prompt_json(...), made by the caller

    def _cost(self, message: Any) -> float | None:
        usage = _usage(message)
        if not isinstance(usage, dict):
            return None
        meta = getattr(message, "response_metadata", None) or {}
        name = meta.get("model_name") or meta.get("model") or self.name
        cached = (usage.get("input_token_details") or {}).get("cache_read")
        return self.prices.cost(name, usage.get("input_tokens"), usage.get("output_tokens"), cached)

    def _attrs(self, message: Any) -> str | None:
        calls = normalised_calls(message)
        return canonical_json({"tool_calls": calls}) if calls else None


class ServedModel(BaseChatModel):
    """Agent replay's model: it answers with the recorded message, whatever it is asked, so
    the agent's own code (inner middleware, structured output parsing) runs on the recorded
    answer. It takes the replaced model's name and profile, so the agent picks the same
    structured output strategy."""

    message: AIMessage
    model_name: str | None = None

    @property
    def _llm_type(self) -> str:
        return "tracekit-replay"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ServedModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.message.model_copy())])


def served_model(message: Any, replaced: Any) -> ServedModel:
    """The model that answers ``message`` (a recorded answer) in place of ``replaced``."""
    if not isinstance(message, AIMessage):  # recorded by other code: its text, at least
        message = AIMessage(
            content=message if isinstance(message, str) else canonical_json(message)
        )
    return ServedModel(
        message=message, model_name=model_name(replaced), profile=getattr(replaced, "profile", None)
    )


# -- tool calls -------------------------------------------------------------------------------
class ToolCallFailed(Exception):
    """A tool call whose ``ToolMessage`` has status ``error`` (the tool raised an error the
    ToolNode turned into a message, or rejected its arguments): recorded as a failed call, so
    the guard's error-rate bound counts it, and a write's ledger entry lets a retry run."""

    def __init__(self, content: Any, message: ToolMessage | None = None) -> None:
        super().__init__(content if isinstance(content, str) else canonical_json(content))
        self.content, self.message = content, message

    def for_call(self, call: dict[str, Any]) -> ToolMessage:
        """The error message for the current tool call (the recorded one, in agent replay)."""
        if self.message is not None:
            return self.message
        return ToolMessage(
            content=self.content, name=call.get("name"), tool_call_id=call["id"], status="error"
        )


class ToolOutcome:
    """What a tool call returned (a ``ToolMessage`` or a ``Command``), recorded compactly:
    tracekit encodes it through ``model_dump``."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        if isinstance(result, ToolMessage) and result.status == "error":
            raise ToolCallFailed(result.content, result)
        self.result = result

    def model_dump(self) -> Any:
        result = self.result
        if isinstance(result, ToolMessage):
            if result.artifact is None:
                return {"content": result.content}
            return {"content": result.content, "artifact": result.artifact}
        if isinstance(result, Command):
            return {"command": result}
        return {"value": result}


def tool_result(got: Any, call: dict[str, Any]) -> Any:
    """What the tool node gets for a call: the tool's own answer, or a recorded one (a
    duplicate write's first outcome, or agent replay's) made a message for this call."""
    if isinstance(got, ToolOutcome):
        return got.result
    if not isinstance(got, dict):
        return ToolMessage(
            content=canonical_json(got), name=call.get("name"), tool_call_id=call["id"]
        )
    if "command" in got:
        return _command(got["command"], call["id"])
    if "content" in got:
        return ToolMessage(
            content=got["content"],
            artifact=got.get("artifact"),
            name=call.get("name"),
            tool_call_id=call["id"],
        )
    return got.get("value")


def _command(doc: dict[str, Any], call_id: str) -> Command[Any]:
    """A recorded ``Command`` again; its tool messages answer the current call."""
    update = doc.get("update")
    if isinstance(update, dict) and isinstance(update.get("messages"), list):
        update = {**update, "messages": [_revived(m, call_id) for m in update["messages"]]}
    return Command(graph=doc.get("graph"), update=update, resume=doc.get("resume"),
                   goto=doc.get("goto") or ())  # fmt: skip


def _revived(message: Any, call_id: str) -> Any:
    if isinstance(message, dict) and message.get("type") == "tool":
        return ToolMessage.model_validate({**message, "tool_call_id": call_id})
    return message


def self_recorded(tool: Any) -> bool:
    """Is this LangChain tool's function already ``@tracekit.tool``? (It records itself.)"""
    for attr in ("func", "coroutine"):
        fn: Callable[..., Any] | None = getattr(tool, attr, None)
        if fn is not None and hasattr(fn, "__tracekit_tool__"):
            return True
    return False
