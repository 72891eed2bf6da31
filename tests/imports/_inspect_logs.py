"""Inspect AI eval logs, built from inspect_ai's own types (``EvalLog``, ``EvalSpec``,
``EvalSample``, ``ModelEvent``, ``ToolEvent``, ``ChatMessage*``, ``ModelOutput``) and written by
its own ``write_eval_log``, as a ``.eval`` (zip) or a ``.json`` log: a refund agent that looks
the same order up over and over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from inspect_ai.dataset import Sample
from inspect_ai.event import (
    Event,
    ModelEvent,
    SampleInitEvent,
    SpanBeginEvent,
    SpanEndEvent,
    ToolEvent,
)
from inspect_ai.log import (
    EvalConfig,
    EvalDataset,
    EvalError,
    EvalLog,
    EvalSample,
    EvalSpec,
    EvalStats,
    write_eval_log,
)
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    ModelCall,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolCall, ToolCallError, ToolInfo, ToolParams
from inspect_ai.util import JSONSchema

SECRET = "sk-proj-" + "Q7rT2xW9kL4mN8pV3bZ6cF1hJ5sD0gA2eY7uI4oR"  # pasted by a customer
START = datetime(2025, 7, 14, 9, 30, 0, tzinfo=UTC)
TASK = "refund_triage"
MODEL = "openai/gpt-4o-mini"
EVAL_ID = "hTnYVUbCBaJKdyrFWUaHfG"
RUN_ID = "B3xKq9ZpLmR2vT7wYc4NdE"
TOOL = "lookup_order"
ARGS = {"order_id": "A-1001"}
ORDER = '{"order_id": "A-1001", "status": "delivered", "amount": 42.5}'
COST = 0.00042  # each model call's recorded cost
CRASH = "RuntimeError: refund service unavailable"
_SYSTEM = "You are a refund agent. Look orders up with lookup_order before refunding."
_TOOLS = [
    ToolInfo(
        name=TOOL,
        description="Look an order up by its id.",
        parameters=ToolParams(
            properties={"order_id": JSONSchema(type="string")}, required=["order_id"]
        ),
    )
]


def question(sample_id: str) -> str:
    """The customer's message of a sample: long enough for Inspect to pool it as an
    attachment, with an API key pasted in."""
    return (f"[{sample_id}] My order A-1001 arrived broken and I want a refund. In case you "
            f"need it for the refund portal, my key is {SECRET}. Please hurry.")  # fmt: skip


def eval_log(
    loops: int = 6,
    *,
    samples: tuple[str, ...] = ("refund-1",),
    epochs: int = 1,
    crash: bool = True,
) -> EvalLog:
    """An eval of ``samples`` x ``epochs``: each sample a chat where the model looks the same
    order up ``loops`` times, then (``crash``) its next call fails and the sample with it, or
    else it answers; one of its lookups (the second) times out."""
    built = [_sample(sid, epoch, loops, crash, n)
             for n, (sid, epoch) in enumerate((s, e) for s in samples
                                              for e in range(1, epochs + 1))]  # fmt: skip
    spec = EvalSpec(
        eval_id=EVAL_ID,
        run_id=RUN_ID,
        created=START.isoformat(),
        task=TASK,
        task_id="refund_triage_v1_4f2a",
        task_version=1,
        task_file="refunds.py",
        dataset=EvalDataset(name="refund_tickets", samples=len(samples), sample_ids=list(samples)),
        model=MODEL,
        model_generate_config=GenerateConfig(temperature=0.0),
        config=EvalConfig(epochs=epochs, message_limit=40),
        solver="react",
        metadata={"team": "payments"},
    )
    return EvalLog(
        status="error" if crash else "success",
        eval=spec,
        samples=built,
        stats=EvalStats(
            started_at=START.isoformat(), completed_at=(START + timedelta(minutes=5)).isoformat()
        ),
        error=EvalError(message=CRASH, traceback="Traceback ...", traceback_ansi="")
        if crash
        else None,
    )


def write_log(path: Path, log: EvalLog) -> Path:
    """``log`` written by Inspect: a zip for a ``.eval`` name, else its JSON log."""
    write_eval_log(log, str(path), format="eval" if path.suffix == ".eval" else "json")
    return path


def _sample(sample_id: str, epoch: int, loops: int, crash: bool, n: int) -> EvalSample:
    clock = _Clock(START + timedelta(minutes=n, seconds=1))
    user = ChatMessageUser(content=question(sample_id), source="input")
    messages: list[ChatMessage] = [ChatMessageSystem(content=_SYSTEM), user]
    events: list[Event] = [
        SampleInitEvent(
            timestamp=clock.at(0), sample=Sample(input=[user], id=sample_id, target="refund")
        ),
        SpanBeginEvent(timestamp=clock.at(0.01), id=f"solver-{n}", name="react", type="solver"),
    ]
    for i in range(loops):
        call = ToolCall(id=f"call_{sample_id}_{epoch}_{i + 1:02d}", function=TOOL,
                        arguments=dict(ARGS))  # fmt: skip
        reply = ChatMessageAssistant(content="Let me look the order up.", tool_calls=[call],
                                     model="gpt-4o-mini", source="generate")  # fmt: skip
        events.append(_model_event(clock, messages, reply, i))
        failed = i == 1
        events.append(_tool_event(clock, call, failed))
        messages = [*messages, reply, ChatMessageTool(
            content="" if failed else ORDER, tool_call_id=call.id, function=TOOL,
            error=ToolCallError("timeout", "lookup_order timed out after 30s") if failed
            else None)]  # fmt: skip
    error = None
    if crash:
        events.append(_failed_model_event(clock, messages))
        error = EvalError(message=CRASH, traceback="Traceback (most recent call last):\n...",
                          traceback_ansi="")  # fmt: skip
    else:
        answer = ChatMessageAssistant(content="Your refund of $42.50 is on its way.",
                                      model="gpt-4o-mini", source="generate")  # fmt: skip
        events.append(_model_event(clock, messages, answer, loops))
        messages = [*messages, answer]
    events.append(SpanEndEvent(timestamp=clock.at(0.01), id=f"solver-{n}"))
    return EvalSample(
        id=sample_id,
        epoch=epoch,
        input=[user],
        target="refund",
        messages=messages,
        events=events,
        metadata={"channel": "email"},
        started_at=START.isoformat(),
        completed_at=clock.now.isoformat(),
        total_time=(clock.now - START).total_seconds(),
        working_time=clock.working,
        error=error,
        uuid=f"uuid-{sample_id}-{epoch}",
    )


def _model_event(
    clock: _Clock, messages: list[ChatMessage], reply: ChatMessageAssistant, i: int
) -> ModelEvent:
    """A model call of 1.5 s (its working time 1.2 s) after 0.1 s."""
    started = clock.at(0.1)
    usage = ModelUsage(input_tokens=1_200 + 100 * i, output_tokens=40,
                       total_tokens=1_240 + 100 * i, input_tokens_cache_read=1_000,
                       total_cost=COST)  # fmt: skip
    stop = "tool_calls" if reply.tool_calls else "stop"
    output = ModelOutput(model="gpt-4o-mini-2024-07-18", usage=usage, time=1.2,
                         choices=[ChatCompletionChoice(message=reply, stop_reason=stop)],
                         response_id=f"chatcmpl-{i + 1:03d}")  # fmt: skip
    return ModelEvent(timestamp=started, model=MODEL, input=list(messages), tools=_TOOLS,
                      tool_choice="auto", config=GenerateConfig(temperature=0.0),
                      output=output, call=_wire(messages, i), completed=clock.at(1.5),
                      working_time=1.2, working_start=clock.working_start(1.2))  # fmt: skip


def _wire(messages: list[ChatMessage], i: int) -> ModelCall:
    """The request as the provider was sent it (Inspect pools its messages in a .eval)."""
    sent: list[Any] = [{"role": m.role, "content": m.text} for m in messages]
    return ModelCall(request={"model": "gpt-4o-mini", "messages": sent, "temperature": 0.0},
                     response={"id": f"chatcmpl-{i + 1:03d}", "object": "chat.completion"},
                     time=1.2)  # fmt: skip


def _failed_model_event(clock: _Clock, messages: list[ChatMessage]) -> ModelEvent:
    started = clock.at(0.1)
    return ModelEvent(timestamp=started, model=MODEL, input=list(messages), tools=_TOOLS,
                      tool_choice="auto", config=GenerateConfig(temperature=0.0),
                      output=ModelOutput(model=MODEL, error=CRASH), error=CRASH,
                      completed=clock.at(0.3), working_time=0.3,
                      working_start=clock.working_start(0.3))  # fmt: skip


def _tool_event(clock: _Clock, call: ToolCall, failed: bool) -> ToolEvent:
    """A lookup of 0.25 s (a timeout: 30 s) after 0.05 s."""
    started = clock.at(0.05)
    took = 30.0 if failed else 0.25
    return ToolEvent(timestamp=started, id=call.id, function=call.function,
                     arguments=dict(call.arguments), result="" if failed else ORDER,
                     error=ToolCallError("timeout", "lookup_order timed out after 30s")
                     if failed else None, completed=clock.at(took), working_time=took,
                     working_start=clock.working_start(took))  # fmt: skip


class _Clock:
    """The sample's clock: each step after the last; the working time so far."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.working = 0.0

    def at(self, after_s: float) -> datetime:
        self.now += timedelta(seconds=after_s)
        return self.now

    def working_start(self, took: float) -> float:
        begun = self.working
        self.working += took
        return begun
