"""``tracekit.otel.SpanProcessor`` on a real TracerProvider: the GenAI spans of a trace are one
run in their recorded order and time, the same rows ``tracekit import`` makes of an OTLP dump of
the same spans (which then adds nothing), scrubbed, never guarded, and nothing the processor
meets raises into the instrumented program."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import tracekit
import tracekit.otel
from tracekit.otel import SpanProcessor
from tracekit.testing import Recording

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imports"))
from _otel_traces import MS, SECRET, T0, otlp_json, refund_agent_spans

Store = Callable[..., Path]


def _run_id(spans: list[Any]) -> str:
    return f"otel-{spans[0].get_span_context().trace_id:032x}"


def _rows(store: Path) -> list[dict[str, Any]]:
    """Every event but its id (the live writer's and the importer's differ by design)."""
    rows = Recording(store).rows("SELECT * FROM events ORDER BY run_id, seq")
    return [{k: v for k, v in r.items() if k != "event_id"} for r in rows]


def test_a_trace_is_a_run_in_its_recorded_order_and_time(guarded: Store) -> None:
    store = guarded()
    processor = SpanProcessor()
    spans = refund_agent_spans(loops=3, processor=processor)
    events = Recording(store).events(_run_id(spans))
    kinds = [e["kind"] for e in events]
    assert kinds == ["run_start", *["prompt", "model_output", "tool_call", "tool_result"] * 3,
                     "prompt", "model_output", "run_end"]  # fmt: skip
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["step"] for e in events if e["kind"] == "model_output"] == [1, 2, 3, 4]
    ts = [int(e["ts"].timestamp() * 1e6) for e in events]
    assert ts[0] == T0 // 1000 and ts[1] == (T0 + 10 * MS) // 1000  # recorded, not now
    assert ts == sorted(ts) and ts[-1] - ts[0] == (3 * 550 + 500) * 1000
    start, output = events[0], events[2]
    assert (start["name"], start["tenant"], start["status"]) == ("support", "acme", "running")
    assert output["model_version"] == "gpt-4o-mini-2024-07-18" and output["cost_usd"] > 0
    assert json.loads(output["attrs"])["tool_calls"][0]["name"] == "refund"
    assert events[-1]["status"] == "ok"
    assert (processor.errors, processor.late, processor.dropped) == (0, 0, 0)


def test_events_wait_for_the_local_root_span(guarded: Store) -> None:
    store = guarded()
    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())
    tracer = provider.get_tracer("t")
    agent = tracer.start_span(
        "invoke_agent a", attributes={"gen_ai.operation.name": "invoke_agent"}
    )
    ctx = trace.set_span_in_context(agent)
    with tracer.start_span("chat m", context=ctx, attributes={"gen_ai.operation.name": "chat"}):
        pass
    assert Recording(store).rows("SELECT * FROM events") == []  # numbered only once complete
    agent.end()
    provider.shutdown()
    assert [e["kind"] for e in Recording(store).events()] == [
        "run_start", "prompt", "model_output", "run_end"]  # fmt: skip


def test_the_rows_are_the_import_of_the_same_spans_and_importing_adds_nothing(
    guarded: Store, tmp_path: Path
) -> None:
    store = guarded()
    spans = refund_agent_spans(loops=4, processor=SpanProcessor())
    tracekit.shutdown()  # compacted into Parquet, as at the end of the program
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps(otlp_json(spans)))
    imported = tracekit.import_traces([dump], tmp_path / "imported")
    assert imported.runs == [_run_id(spans)]
    live = _rows(store)
    assert live == _rows(tmp_path / "imported")  # every column, seq, step, ts, cost, release
    again = tracekit.import_traces([dump], store)
    assert again.runs == [] and again.already == [_run_id(spans)]
    assert _rows(store) == live


def test_a_span_that_will_not_convert_is_counted_never_raised(
    guarded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = guarded()
    real = tracekit.otel.unit_of

    def failing(span: Any, asked: Any) -> Any:
        if span.name.startswith("execute_tool"):
            raise ValueError("a convention's bug")
        return real(span, asked)

    monkeypatch.setattr(tracekit.otel, "unit_of", failing)
    processor = SpanProcessor()
    spans = refund_agent_spans(loops=2, processor=processor)  # no exception reaches the agent
    assert processor.errors == 2 and processor.last_error == "ValueError: a convention's bug"
    kinds = [e["kind"] for e in Recording(store).events(_run_id(spans))]
    assert kinds == ["run_start", *["prompt", "model_output"] * 3, "run_end"]  # the rest of it


def test_a_failing_recorder_is_counted_never_raised(
    guarded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    guarded()

    def broken(row: Any) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(tracekit.otel.PROCESS, "emit", broken)
    processor = SpanProcessor()
    refund_agent_spans(loops=1, processor=processor)
    assert processor.errors == 1 and "no space left" in str(processor.last_error)


def test_shutdown_records_what_is_open_and_flushes(
    guarded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEKIT_FLUSH_INTERVAL", "3600")  # the writer writes only when asked
    store = guarded()
    provider = TracerProvider()
    processor = SpanProcessor()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    agent = tracer.start_span(
        "invoke_agent a", attributes={"gen_ai.operation.name": "invoke_agent"}
    )
    ctx = trace.set_span_in_context(agent)
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}
    with tracer.start_span("execute_tool lookup", context=ctx, attributes=tool):
        pass
    provider.shutdown()  # the agent span never ended: the program is going away
    with tracekit.connect(store) as con:  # no flush of its own: only what is durable
        kinds = [k for (k,) in con.execute("SELECT kind FROM events ORDER BY seq").fetchall()]
    assert kinds == ["run_start", "tool_call", "tool_result", "run_end"]
    assert processor.force_flush(1000) is True


def test_a_late_span_and_one_beyond_the_bound_are_counted(guarded: Store) -> None:
    store = guarded()
    provider = TracerProvider()
    processor = SpanProcessor(max_events=2)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    chat = {"gen_ai.operation.name": "chat"}
    agent = tracer.start_span(
        "invoke_agent a", attributes={"gen_ai.operation.name": "invoke_agent"}
    )
    ctx = trace.set_span_in_context(agent)
    with tracer.start_span("chat 1", context=ctx, attributes=chat):
        pass  # two drafts held: the bound
    with tracer.start_span("chat 2", context=ctx, attributes=chat):
        pass
    late = tracer.start_span("chat 3", context=ctx, attributes=chat)
    agent.end()
    late.end()
    provider.shutdown()
    assert (processor.dropped, processor.late, processor.errors) == (1, 1, 0)
    events = Recording(store).events()
    assert [(e["kind"], e["name"]) for e in events] == [
        ("run_start", "invoke_agent a"),
        ("prompt", "chat 1"),
        ("model_output", "chat 1"),
        ("run_end", "invoke_agent a"),
    ]


def test_secrets_never_reach_the_store_and_nothing_is_guarded(guarded: Store) -> None:
    store = guarded(max_steps=1, max_repeats=2)
    spans = refund_agent_spans(loops=6, processor=SpanProcessor())
    kinds = [e["kind"] for e in Recording(store).events(_run_id(spans))]
    assert kinds.count("tool_call") == 6 and "guard" not in kinds
    tracekit.shutdown()
    raw = b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file())
    assert SECRET[8:].encode() not in raw
    prompt = Recording(store).rows("SELECT args FROM events WHERE kind = 'prompt' LIMIT 1")
    assert "Refund order 42" in prompt[0]["args"]
