"""Traces made with OpenTelemetry's own SDK (its tracer, its span types), written as OTLP/JSON
the two ways exporters write it: the OTLP/JSON encoding (hex ids, what the Collector's file
exporter writes) and protobuf's JSON mapping of the SDK's own OTLP encoder (base64 ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

T0 = 1_764_720_000_000_000_000  # 2025-12-03T00:00:00Z, in ns
MS = 1_000_000
SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c"  # an API key pasted into a chat: never stored


def refund_agent_spans(
    loops: int = 6,
    tenant: str = "acme",
    fail_last_tool: bool = False,
    processor: SpanProcessor | None = None,
) -> list[ReadableSpan]:
    """An airline support agent that refunds order 42 again and again: an ``invoke_agent``
    span, and in it ``loops`` x (a chat span whose output calls the refund tool, the
    ``execute_tool`` span that runs it), then a last chat span that answers. 3.3 s of agent
    time in all: each loop 550 ms apart. ``processor`` is added to the tracer provider too
    (and shut down with it)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-agent",
                                                        "tenant": tenant}))  # fmt: skip
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if processor is not None:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("support-agent")
    t = T0
    agent = tracer.start_span("invoke_agent support", kind=SpanKind.INTERNAL, start_time=t,
                              attributes={"gen_ai.operation.name": "invoke_agent",
                                          "gen_ai.agent.name": "support",
                                          "gen_ai.conversation.id": "conv-1"})  # fmt: skip
    from opentelemetry import trace

    ctx = trace.set_span_in_context(agent)
    ask = f"Refund order 42; the admin key is {SECRET}"
    messages: list[dict[str, Any]] = [{"role": "user", "parts": [{"type": "text", "content": ask}]}]
    for i in range(loops + 1):
        last = i == loops
        call_id = f"call_{i + 1}"
        out_parts: list[dict[str, Any]] = (
            [{"type": "text", "content": "Done."}] if last else
            [{"type": "tool_call", "id": call_id, "name": "refund",
              "arguments": {"order_id": "42", "amount": 30}}]
        )  # fmt: skip
        output = [{"role": "assistant", "parts": out_parts,
                   "finish_reason": "stop" if last else "tool_call"}]  # fmt: skip
        chat = tracer.start_span("chat gpt-4o-mini", context=ctx, kind=SpanKind.CLIENT,
                                 start_time=t + 10 * MS, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": f"chatcmpl-{i}",
            "gen_ai.response.finish_reasons": ["stop" if last else "tool_calls"],
            "gen_ai.usage.input_tokens": 120 + 40 * i, "gen_ai.usage.output_tokens": 30,
            "gen_ai.input.messages": json.dumps(messages),
            "gen_ai.output.messages": json.dumps(output),
        })  # fmt: skip
        chat.end(end_time=t + 400 * MS)
        messages = [*messages, *output]
        if last:
            break
        tool = tracer.start_span("execute_tool refund", context=ctx, kind=SpanKind.INTERNAL,
                                 start_time=t + 410 * MS, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund",
            "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "function",
            "gen_ai.tool.call.arguments": json.dumps({"order_id": "42", "amount": 30}),
            "gen_ai.tool.call.result": json.dumps({"refunded": 30}),
            "http.request.header.authorization": [f"Bearer {SECRET}"],
        })  # fmt: skip
        if fail_last_tool and i == loops - 1:
            tool.set_status(Status(StatusCode.ERROR, "card declined"))
        tool.end(end_time=t + 540 * MS)
        messages = [*messages, {"role": "tool", "parts": [
            {"type": "tool_call_response", "id": call_id, "response": {"refunded": 30}}]}]
        t += 550 * MS
    agent.end(end_time=t + 500 * MS)
    provider.shutdown()
    return list(exporter.get_finished_spans())


# -- OTLP/JSON, as the specification encodes it --------------------------------------------
def otlp_json(spans: list[ReadableSpan]) -> dict[str, Any]:
    """One ExportTraceServiceRequest in the OTLP/JSON encoding: hex ids, enums as integers,
    64-bit integers and times as decimal strings."""
    resource = spans[0].resource
    return {"resourceSpans": [{
        "resource": {"attributes": _kvs(dict(resource.attributes))},
        "scopeSpans": [{"scope": {"name": "support-agent"},
                        "spans": [_span(s) for s in spans]}],
    }]}  # fmt: skip


def _span(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.get_span_context()
    assert ctx is not None
    doc: dict[str, Any] = {
        "traceId": format(ctx.trace_id, "032x"), "spanId": format(ctx.span_id, "016x"),
        "name": s.name, "kind": s.kind.value + 1,
        "startTimeUnixNano": str(s.start_time), "endTimeUnixNano": str(s.end_time),
        "attributes": _kvs(dict(s.attributes or {})),
        "status": {"code": {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}[
            s.status.status_code]},
    }  # fmt: skip
    if s.status.description:
        doc["status"]["message"] = s.status.description
    if s.parent is not None:
        doc["parentSpanId"] = format(s.parent.span_id, "016x")
    return doc


def _kvs(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any(v)} for k, v in attrs.items()]


def _any(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_any(x) for x in v]}}
    return {"stringValue": str(v)}


def protobuf_json(spans: list[ReadableSpan]) -> str:
    """The SDK's own OTLP encoder's message, in protobuf's JSON mapping (base64 ids)."""
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return MessageToJson(encode_spans(spans))


def write_lines(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path
