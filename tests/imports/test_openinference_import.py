"""`tracekit import` of OpenInference traces (Arize Phoenix, the openinference-*
instrumentations): flattened messages read back, usage and cost, tool spans as tool calls,
and an imported runaway carried through export, make-test and the generated test's run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _e2e import made_test_passes
from _openinference_traces import refund_agent_spans
from _otel_traces import MS, SECRET, T0, otlp_json, write_lines
from _otel_traces import refund_agent_spans as genai_spans
from click.testing import CliRunner

import tracekit
from tracekit._import.openinference import unflatten
from tracekit.cli import cli
from tracekit.errors import ImportFormatError
from tracekit.testing import Recording


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "phoenix.jsonl", otlp_json(refund_agent_spans(loops=6)))


def _events(store: Path) -> list[dict[str, Any]]:
    return Recording(store).rows("SELECT * FROM events ORDER BY run_id, seq")


def test_flattened_attributes_are_read_back_as_lists_and_objects() -> None:
    attrs = {"a.0.m.role": "user", "a.1.m.role": "assistant", "a.1.m.calls.0.id": "c",
             "a.10.m.role": "tool", "b.x": 1}  # fmt: skip
    assert unflatten(attrs, "a.") == [{"m": {"role": "user"}},
                                      {"m": {"role": "assistant", "calls": [{"id": "c"}]}},
                                      {"m": {"role": "tool"}}]  # fmt: skip
    assert unflatten(attrs, "z.") is None


@pytest.mark.parametrize("fmt", ["auto", "openinference", "otlp-json"])
def test_an_openinference_trace_is_a_run_of_model_and_tool_calls(
        tmp_path: Path, trace_file: Path, fmt: str) -> None:  # fmt: skip
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([trace_file], store, fmt=fmt).runs
    events = _events(store)
    assert run_id.startswith("otel-") and {e["run_id"] for e in events} == {run_id}
    kinds = [e["kind"] for e in events]
    assert kinds[1:-1] == ["prompt", "model_output", "tool_call", "tool_result"] * 6 + [
        "prompt", "model_output"]  # fmt: skip
    start, end = events[0], events[-1]
    assert start["name"] == "support" and json.loads(start["attrs"])["imported"] == "openinference"
    assert (end["ts"] - start["ts"]).total_seconds() == pytest.approx(6 * 0.55 + 0.5, abs=0.01)
    assert int(events[1]["ts"].timestamp() * 1e6) == (T0 + 10 * MS) // 1000
    prompt = json.loads(events[1]["args"])
    assert [m["role"] for m in prompt["messages"]] == ["system", "user"]
    assert prompt["messages"][1]["content"].startswith("Refund order 42")  # from its parts
    assert prompt["tools"][0]["function"]["name"] == "refund"
    output = events[2]
    assert (output["tokens_in"], output["tokens_out"], output["cost_usd"]) == (120, 30, 0.0025)
    assert output["model_version"] == "gpt-4o-mini-2024-07-18"
    attrs = json.loads(output["attrs"])
    assert attrs["tool_calls"] == [{"id": "call_1", "name": "refund",
                                    "arguments": '{"order_id": "42", "amount": 30}'}]  # fmt: skip
    assert attrs["llm.provider"] == "openai" and attrs["token_count"]["total"] == 150
    call, result = events[3], events[4]
    assert (call["name"], call["call_id"], json.loads(call["args"])) == (
        "refund", "call_1", {"order_id": "42", "amount": 30})  # fmt: skip
    assert result["call_id"] == "call_1" and json.loads(result["output"]) == {"refunded": 30}


def test_a_failed_tool_span_fails_its_result_and_secrets_stay_out(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", otlp_json(refund_agent_spans(2, fail_last_tool=True)))
    store = tmp_path / "store"
    tracekit.import_traces([path], store)
    results = [e for e in _events(store) if e["kind"] == "tool_result"]
    assert [(r["status"], r["error"]) for r in results] == [("ok", None),
                                                            ("error", "card declined")]  # fmt: skip
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    assert SECRET[8:].encode() not in raw


def test_a_trace_of_the_other_convention_is_a_one_line_error(tmp_path: Path) -> None:
    genai = write_lines(tmp_path / "genai.jsonl", otlp_json(genai_spans(loops=1)))
    with pytest.raises(ImportFormatError, match=r"none with OpenInference attributes"):
        tracekit.import_traces([genai], tmp_path / "store", fmt="openinference")
    result = CliRunner().invoke(cli, ["import", str(genai), "--format", "openinference",
                                      "--store", str(tmp_path / "store")])  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "openinference.span.kind" in result.output.strip().splitlines()[-1]


def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
        tmp_path: Path, trace_file: Path) -> None:  # fmt: skip
    generated = made_test_passes(trace_file, tmp_path, fmt="openinference")
    assert SECRET not in generated and SECRET[8:] not in generated
