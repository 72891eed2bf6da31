"""Traces as the OpenInference instrumentations write them (Arize Phoenix's conventions): spans
made with OpenTelemetry's own SDK, their attributes named by ``openinference-semantic-
conventions``' own constants, messages flattened (``llm.input_messages.0.message.role``)."""

from __future__ import annotations

import json
from typing import Any

from _otel_traces import MS, SECRET, T0
from openinference.semconv.trace import MessageAttributes as M
from openinference.semconv.trace import MessageContentAttributes as C
from openinference.semconv.trace import OpenInferenceSpanKindValues as Kind
from openinference.semconv.trace import SpanAttributes as S
from openinference.semconv.trace import ToolCallAttributes as T
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

REFUND = {"order_id": "42", "amount": 30}


def _messages(prefix: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Chat messages flattened as OpenInference flattens them."""
    flat: dict[str, Any] = {}
    for i, message in enumerate(messages):
        at = f"{prefix}.{i}."
        flat[at + M.MESSAGE_ROLE] = message["role"]
        if "text" in message:  # the content as parts
            flat[f"{at}{M.MESSAGE_CONTENTS}.0.{C.MESSAGE_CONTENT_TYPE}"] = "text"
            flat[f"{at}{M.MESSAGE_CONTENTS}.0.{C.MESSAGE_CONTENT_TEXT}"] = message["text"]
        if "content" in message:
            flat[at + M.MESSAGE_CONTENT] = message["content"]
        if "tool_call_id" in message:
            flat[at + M.MESSAGE_TOOL_CALL_ID] = message["tool_call_id"]
        for j, (call_id, name, args) in enumerate(message.get("calls", ())):
            call = f"{at}{M.MESSAGE_TOOL_CALLS}.{j}."
            flat[call + T.TOOL_CALL_ID] = call_id
            flat[call + T.TOOL_CALL_FUNCTION_NAME] = name
            flat[call + T.TOOL_CALL_FUNCTION_ARGUMENTS_JSON] = json.dumps(args)
    return flat


def refund_agent_spans(loops: int = 6, fail_last_tool: bool = False) -> list[ReadableSpan]:
    """The refund agent of ``_otel_traces``, instrumented with OpenInference: an ``AGENT`` span,
    ``loops`` x (an ``LLM`` span calling the refund tool, the ``TOOL`` span running it), then an
    ``LLM`` span that answers; 550 ms a loop. The first message carries an API key."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-agent",
                                                        "tenant": "acme"}))  # fmt: skip
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("openinference.instrumentation.openai")
    t = T0
    agent = tracer.start_span("support", start_time=t, attributes={
        S.OPENINFERENCE_SPAN_KIND: Kind.AGENT.value, S.AGENT_NAME: "support",
        S.SESSION_ID: "session-7", S.INPUT_VALUE: "Refund order 42"})  # fmt: skip
    ctx = trace.set_span_in_context(agent)
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "text": f"Refund order 42; the admin key is {SECRET}"},
    ]
    for i in range(loops + 1):
        last = i == loops
        call_id = f"call_{i + 1}"
        answer: dict[str, Any] = {"role": "assistant", "content": "Done."}
        if not last:
            answer = {"role": "assistant", "calls": [(call_id, "refund", REFUND)]}
        llm = tracer.start_span("ChatCompletion", context=ctx, start_time=t + 10 * MS,
                                attributes={
            S.OPENINFERENCE_SPAN_KIND: Kind.LLM.value, S.LLM_MODEL_NAME: "gpt-4o-mini-2024-07-18",
            S.LLM_PROVIDER: "openai", S.LLM_INVOCATION_PARAMETERS: json.dumps({"temperature": 0}),
            S.LLM_TOKEN_COUNT_PROMPT: 120 + 40 * i, S.LLM_TOKEN_COUNT_COMPLETION: 30,
            S.LLM_TOKEN_COUNT_TOTAL: 150 + 40 * i, S.LLM_COST_TOTAL: 0.0025,
            f"{S.LLM_TOOLS}.0.tool.json_schema": json.dumps({"type": "function", "function": {
                "name": "refund", "parameters": {"type": "object"}}}),
            **_messages(S.LLM_INPUT_MESSAGES, history),
            **_messages(S.LLM_OUTPUT_MESSAGES, [answer]),
        })  # fmt: skip
        llm.end(end_time=t + 400 * MS)
        history = [*history, answer]
        if last:
            break
        tool = tracer.start_span("refund", context=ctx, start_time=t + 410 * MS, attributes={
            S.OPENINFERENCE_SPAN_KIND: Kind.TOOL.value, S.TOOL_NAME: "refund",
            T.TOOL_CALL_ID: call_id, S.INPUT_VALUE: json.dumps(REFUND),
            S.INPUT_MIME_TYPE: "application/json", S.OUTPUT_VALUE: json.dumps({"refunded": 30}),
        })  # fmt: skip
        if fail_last_tool and i == loops - 1:
            tool.set_status(trace.Status(trace.StatusCode.ERROR, "card declined"))
        tool.end(end_time=t + 540 * MS)
        history = [*history, {"role": "tool", "tool_call_id": call_id, "content": "refunded 30"}]
        t += 550 * MS
    agent.end(end_time=t + 500 * MS)
    provider.shutdown()
    return list(exporter.get_finished_spans())
