"""Policy replay sees the tool calls a model output declares when the trace records no tool
call for them: an imported trace of model calls only is judged like one with its tool spans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from _otel_traces import otlp_json, refund_agent_spans

import tracekit
from tracekit._replay.feed import decisions, with_declared_calls
from tracekit.testing import Recording


def _bundle(tmp_path: Path, spans: list[Any]) -> Path:
    tmp_path.mkdir()
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(otlp_json(spans)))
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([trace], store).runs
    return Path(tracekit.export_incident([run_id], "loop", out=tmp_path / "fx", store=store))


def _chat_only(loops: int) -> list[Any]:
    spans = refund_agent_spans(loops=loops)
    return [s for s in spans if s.attributes.get("gen_ai.operation.name") != "execute_tool"]


def test_a_trace_of_model_calls_only_is_contained_at_the_same_step(tmp_path: Path) -> None:
    guard = tracekit.Guard(max_repeats=3)
    full = tracekit.replay(_bundle(tmp_path / "full", refund_agent_spans(loops=6)), guard)
    chat = tracekit.replay(_bundle(tmp_path / "chat", _chat_only(6)), guard)
    assert full.contained and chat.contained, (full.describe(), chat.describe())
    assert chat.signal == full.signal and chat.step == full.step
    assert chat.spend_usd == full.spend_usd


def test_declared_calls_are_attempts_with_their_arguments(tmp_path: Path) -> None:
    store = tmp_path / "store"
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(otlp_json(_chat_only(2))))
    tracekit.import_traces([trace], store)
    events = pa.Table.from_pylist(Recording(store).rows(
        "SELECT * FROM events ORDER BY seq"))  # fmt: skip
    calls = [r for r in decisions(events) if r["kind"] == "tool_call"]
    assert [(c["name"], c["call_id"], c["args"]) for c in calls] == [
        ("refund", f"call_{i}", '{"amount":30,"order_id":"42"}') for i in (1, 2)]  # fmt: skip
    assert all(c["attrs"] == '{"declared":true}' for c in calls)


def _row(kind: str, seq: int, **columns: Any) -> dict[str, Any]:
    row = {"run_id": "r", "kind": kind, "seq": seq, "step": seq, "name": None, "call_id": None,
           "args": None, "attrs": None, "status": "ok", "cost_usd": None}  # fmt: skip
    return row | columns


def _declaring(seq: int, *names: str) -> dict[str, Any]:
    calls = [{"id": f"sdk_{seq}_{n}", "name": n, "arguments": "{}"} for n in names]
    return _row("model_output", seq, attrs=json.dumps({"tool_calls": calls}))


def test_a_recorded_attempt_answers_one_declared_call_whatever_its_id() -> None:
    rows = [
        _declaring(1, "refund", "lookup"),
        _row("tool_call", 2, name="lookup", call_id="call_1", args="{}"),  # tracekit's own id
        _row("guard", 3, name="refund", args="{}", status="refused"),  # refused: attempted
        _declaring(4, "refund", "notify"),
        _row("tool_call", 5, name="billing.refund", call_id="call_2", args="{}"),  # renamed
    ]
    added = [r for r in with_declared_calls(rows) if r not in rows]
    assert [(r["name"], r["seq"]) for r in added] == [("notify", 4)]
    assert with_declared_calls(rows[1:3]) == rows[1:3]
