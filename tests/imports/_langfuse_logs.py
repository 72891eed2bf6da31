"""Langfuse traces as its public API returns them: each observation built as the SDK's own
``langfuse.api.ObservationV2`` (with ``Usage`` for the deprecated ``usage`` of the v1
``ObservationsView``) and serialised the SDK's way (``.json()``: camelCase aliases, set fields
only); the trace around them is ``GET /api/public/traces/{id}``'s ``TraceWithFullDetails``
(``langfuse`` 5 has no model of it: its fields as the API reference gives them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from langfuse.api import ObservationLevel, ObservationV2, Usage

SECRET = "sk-proj-" + "Zq8Xw2Vb6Nm4Lk1Jh9Gf7Ds5Aa3Pp0Oo8Ii6Uu4Y"  # pasted in a chat: never stored
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PROJECT = "cm3p2example0project"
START = datetime(2025, 6, 2, 14, 3, 10, tzinfo=UTC)
MODEL = "gpt-4o-mini-2024-07-18"
TOOL = "lookup_order"
ARGS = {"order_id": "A-1001"}
TOOL_RESULT = {"order_id": "A-1001", "status": "refund_pending", "amount": 42.5}
QUESTION = f"Where is my refund for order A-1001? My key is {SECRET}"
SYSTEM = "You are a customer support agent for ACME. Use the tools to look orders up."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL,
            "description": "Look an order up by its id.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]
TOKENS_IN, TOKENS_OUT = 1_200, 40
COST_IN, COST_OUT = 0.00018, 0.000024
_COST = round(COST_IN + COST_OUT, 9)


class _Trace:
    """A trace being written: observations in order, each after the last on one clock."""

    def __init__(self, trace_id: str, legacy: bool) -> None:
        self.trace_id = trace_id
        self.legacy = legacy
        self.t = START
        self.count = 0
        self.observations: list[dict[str, Any]] = []

    def add(self, after_s: float, took_s: float, **fields: Any) -> str:
        """An observation ``after_s`` after the last one ended, taking ``took_s``."""
        self.count += 1
        self.t += timedelta(seconds=after_s)
        begun, self.t = self.t, self.t + timedelta(seconds=took_s)
        obs_id = f"{self.count:04x}{self.trace_id[:12]}"
        obs = ObservationV2(
            id=obs_id,
            trace_id=self.trace_id,
            project_id=PROJECT,
            start_time=begun,
            end_time=self.t,
            latency=took_s,
            environment="production",
            **fields,
        )
        dumped = json.loads(obs.json())
        if self.legacy:  # the v1 ObservationsView: calculated costs and a usage, no totalCost
            dumped.pop("projectId", None)
            dumped.pop("environment", None)
            total = dumped.pop("totalCost", None)
            if total is not None:
                dumped |= {"calculatedInputCost": COST_IN, "calculatedOutputCost": COST_OUT,
                           "calculatedTotalCost": total}  # fmt: skip
                details = dumped["usageDetails"]
                usage = Usage(input=details["input"], output=details["output"],
                              total=details["total"], unit="TOKENS")  # fmt: skip
                dumped["usage"] = json.loads(usage.json())
        self.observations.append(dumped)
        return obs_id


def langfuse_trace(
    loops: int = 6,
    *,
    trace_id: str = TRACE_ID,
    fail: bool = True,
    tool_type: str = "TOOL",
    legacy: bool = False,
) -> dict[str, Any]:
    """A support agent (v3 SDK: a root ``AGENT`` observation) that looks the same order up
    ``loops`` times over: each turn a ``GENERATION`` (the OpenAI integration's input, with
    tools: ``{"messages", "tools"}``; output the assistant message with its ``tool_calls``)
    and the ``TOOL`` (or ``tool_type``) observation of the call; a ``RETRIEVER`` before the
    first turn and an ``EVENT`` after the loop. ``fail``: the last generation hits a rate
    limit (``level`` ERROR) and the agent fails with it; else it answers."""
    trace = _Trace(trace_id, legacy)
    agent = trace.add(0.0, 0.0, type="AGENT", name="support-agent", input={"question": QUESTION})
    trace.add(0.01, 0.05, type="RETRIEVER", name="policy-search", parent_observation_id=agent,
              input={"query": "refund policy"},
              output=[{"title": "Refunds", "text": "Refunds take 5 business days."}])  # fmt: skip
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]
    for i in range(loops):
        call_id = f"call_{i + 1:02d}LOOKUP"
        reply = {"role": "assistant", "content": None, "tool_calls": [_call(call_id)]}
        _generation(trace, agent, messages, reply, i)
        messages = [*messages, reply]
        trace.add(0.01, 0.2, type=tool_type, name=TOOL, parent_observation_id=agent,
                  input=ARGS, output=TOOL_RESULT,
                  metadata={"tool_call_id": call_id} if tool_type == "EVENT" else None)  # fmt: skip
        messages = [*messages, {"role": "tool", "tool_call_id": call_id,
                                "content": json.dumps(TOOL_RESULT)}]  # fmt: skip
    trace.add(0.01, 0.0, type="EVENT", name="loop-detected", parent_observation_id=agent,
              level=ObservationLevel.WARNING, metadata={"repeats": loops})  # fmt: skip
    answer = {"role": "assistant", "content": "Your refund of $42.50 is pending."}
    _generation(trace, agent, messages, None if fail else answer, loops)
    end = trace.t + timedelta(seconds=0.01)
    root = trace.observations[0]
    root["endTime"] = end.isoformat().replace("+00:00", "Z")
    if fail:
        root |= {"level": "ERROR", "statusMessage": "RateLimitError: Rate limit reached"}
    else:
        root["output"] = answer
    total = sum(o.get("totalCost") or o.get("calculatedTotalCost") or 0
                for o in trace.observations)  # fmt: skip
    return {
        "id": trace_id,
        "timestamp": "2025-06-02T14:03:10.000Z",
        "name": "support-chat",
        "input": {"question": QUESTION},
        "output": None if fail else answer,
        "sessionId": "session-7f3a",
        "release": "support-bot@1.4.2",
        "version": "v7",
        "userId": "user-1042",
        "metadata": {"channel": "web", "region": "eu"},
        "tags": ["support", "refunds"],
        "public": False,
        "environment": "production",
        "htmlPath": f"/project/{PROJECT}/traces/{trace_id}",
        "latency": (end - START).total_seconds(),
        "totalCost": round(total, 9),
        "observations": trace.observations,
        "scores": [],
        "bookmarked": False,
        "projectId": PROJECT,
        "createdAt": "2025-06-02T14:03:11.000Z",
        "updatedAt": "2025-06-02T14:03:20.000Z",
    }


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": TOOL, "arguments": json.dumps(ARGS)}}  # fmt: skip


def _generation(
    trace: _Trace, agent: str, messages: list[dict[str, Any]], reply: dict[str, Any] | None,
    i: int,
) -> None:  # fmt: skip
    """One OpenAI chat completion as the Langfuse OpenAI integration records it; ``reply``
    ``None``: the call failed."""
    fields: dict[str, Any] = {
        "type": "GENERATION",
        "name": "OpenAI-generation",
        "parent_observation_id": agent,
        "input": {"messages": messages, "tools": TOOLS},
        "model": MODEL,
        "model_parameters": {"temperature": 0, "max_tokens": "inf"},
        "metadata": {"turn": i + 1},
    }
    if reply is None:
        error = "RateLimitError: Rate limit reached for gpt-4o-mini"
        fields |= {"level": ObservationLevel.ERROR, "status_message": error}
        trace.add(0.01, 0.3, **fields)
        return
    tokens_in = TOKENS_IN + 100 * i
    fields |= {
        "output": reply,
        "usage_details": {"input": tokens_in, "output": TOKENS_OUT,
                          "total": tokens_in + TOKENS_OUT},
        "cost_details": {"input": COST_IN, "output": COST_OUT, "total": _COST},
        "total_cost": _COST,
        "completion_start_time": trace.t + timedelta(seconds=0.01 + 0.41),
        "level": ObservationLevel.DEFAULT,
    }  # fmt: skip
    trace.add(0.01, 0.8, **fields)


def observations_page(trace: dict[str, Any]) -> dict[str, Any]:
    """``GET /api/public/v2/observations?traceId=...``: the trace's observations, each with
    what it repeats of its trace, and the cursor of the next page."""
    repeated = {"traceName": trace["name"], "sessionId": trace["sessionId"],
                "userId": trace["userId"], "tags": trace["tags"],
                "release": trace["release"]}  # fmt: skip
    return {"data": [o | repeated for o in trace["observations"]], "meta": {"cursor": None}}


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def write_lines(path: Path, docs: list[Any]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path
