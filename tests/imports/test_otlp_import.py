"""`tracekit import` of OTLP/JSON traces made with OpenTelemetry's own SDK: runs in their
recorded order and time, costed, scrubbed, idempotent, never guarded, and an imported runaway
carried through export, make-test and the generated test's pytest run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from _e2e import made_test_passes
from _otel_traces import MS, SECRET, T0, otlp_json, protobuf_json, refund_agent_spans, write_lines
from click.testing import CliRunner

import tracekit
from tracekit._import.otlp import any_value, hex_id, read_spans
from tracekit.cli import cli
from tracekit.errors import ImportFormatError
from tracekit.testing import Recording


def _events(store: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    where = f"WHERE run_id = '{run_id}'" if run_id else ""
    return Recording(store).rows(f"SELECT * FROM events {where} ORDER BY run_id, seq")


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    """A runaway refund agent (6 refunds of the same order) as one OTLP/JSON document."""
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(otlp_json(refund_agent_spans(loops=6))))
    return path


def test_ids_and_values_are_read_in_every_encoding_exporters_use() -> None:
    trace = "5b8efff798038103d269b633813fc60c"
    assert hex_id(trace.upper(), 32) == trace
    assert hex_id("W47/95gDgQPSabYzgT/GDA==", 32) == trace  # protobuf's JSON mapping: base64
    assert hex_id(str(int("123456789abcdef0", 16)), 16) == "123456789abcdef0"  # decimal
    assert hex_id("", 16) is None and hex_id(None, 16) is None
    assert any_value({"intValue": "9007199254740993"}) == 9007199254740993  # beyond a double
    assert any_value({"intValue": 7}) == 7
    assert any_value({"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": True}]}}) == [
        "a", True]  # fmt: skip
    kvlist = {"kvlistValue": {"values": [{"key": "k", "value": {"doubleValue": 0.5}}]}}
    assert any_value(kvlist) == {"k": 0.5}


def test_one_document_a_line_and_gzip_read_the_same_spans(tmp_path: Path) -> None:
    spans = refund_agent_spans(loops=2)
    one = tmp_path / "one.json"
    one.write_text(json.dumps(otlp_json(spans), indent=2))
    lines = write_lines(tmp_path / "lines.jsonl", otlp_json(spans[:3]), otlp_json(spans[3:]))
    zipped = tmp_path / "lines.jsonl.gz"
    zipped.write_bytes(gzip.compress(lines.read_bytes()))
    read = [[(s.trace_id, s.span_id, s.start_ns) for s in read_spans(p)]
            for p in (one, lines, zipped)]  # fmt: skip
    assert read[0] == read[1] == read[2] and len(read[0]) == len(spans)
    assert read[0][0][2] >= T0


def test_an_otel_trace_is_a_run_in_its_recorded_order_and_time(tmp_path: Path,
                                                                 trace_file: Path) -> None:
    store = tmp_path / "store"
    report = tracekit.import_traces([trace_file], store)
    (run_id,) = report.runs
    assert run_id.startswith("otel-") and len(run_id) == len("otel-") + 32  # the trace id
    events = _events(store, run_id)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds[1:-1] == ["prompt", "model_output", "tool_call", "tool_result"] * 6 + [
        "prompt", "model_output"]  # fmt: skip
    assert [e["seq"] for e in events] == list(range(len(events)))  # gap-free, in time order
    assert [e["step"] for e in events if e["kind"] == "model_output"] == list(range(1, 8))
    ts = [e["ts"] for e in events]
    assert ts == sorted(ts)
    span = (ts[-1] - ts[0]).total_seconds()
    assert span == pytest.approx(6 * 0.550 + 0.500, abs=0.01)  # the agent's time, not the import's
    assert int(ts[1].timestamp() * 1e6) == (T0 + 10 * MS) // 1000
    start = events[0]
    assert start["name"] == "support" and start["tenant"] == "acme"
    output = next(e for e in events if e["kind"] == "model_output")
    assert output["model_version"] == "gpt-4o-mini-2024-07-18" == output["name"]
    assert output["tokens_in"] == 120 and output["tokens_out"] == 30
    assert output["cost_usd"] and output["cost_usd"] > 0  # from the shipped price table
    call = json.loads(output["attrs"])["tool_calls"][0]
    assert call == {"id": "call_1", "name": "refund", "arguments": '{"amount":30,"order_id":"42"}'}
    tool = next(e for e in events if e["kind"] == "tool_call")
    assert (tool["name"], tool["call_id"], json.loads(tool["args"])) == (
        "refund", "call_1", {"amount": 30, "order_id": "42"})  # fmt: skip
    assert json.loads(next(e for e in events if e["kind"] == "tool_result")["output"]) == {
        "refunded": 30}  # fmt: skip
    assert events[-1]["status"] == "ok"


def test_importing_again_in_either_json_encoding_adds_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    spans = refund_agent_spans(loops=3)
    hexed = write_lines(tmp_path / "hex.jsonl", otlp_json(spans))
    base64ed = tmp_path / "pb.json"
    base64ed.write_text(protobuf_json(spans))
    first = tracekit.import_traces([hexed], store)
    before = _events(store)
    again = tracekit.import_traces([hexed], store)
    other = tracekit.import_traces([base64ed], store)
    assert first.runs and first.events == len(before)
    assert again.runs == other.runs == [] and again.already == other.already == first.runs
    assert _events(store) == before


def test_secrets_in_messages_and_attributes_never_reach_the_store(tmp_path: Path,
                                                                   trace_file: Path) -> None:
    store = tmp_path / "store"
    tracekit.import_traces([trace_file], store)
    con = tracekit.connect(store)
    hits = con.execute(
        "SELECT count(*) FROM events WHERE concat_ws('|', args, output, attrs, error, name) "
        "LIKE ?", [f"%{SECRET[8:]}%"]).fetchone()  # fmt: skip
    assert hits == (0,)
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    assert SECRET.encode() not in raw and SECRET[8:].encode() not in raw
    prompt = con.execute("SELECT args FROM events WHERE kind = 'prompt' LIMIT 1").fetchone()
    assert prompt is not None and "Refund order 42" in prompt[0]  # the rest of it is kept


def test_the_import_is_never_guarded(tmp_path: Path, trace_file: Path) -> None:
    tracekit.configure(store=tmp_path / "live", guard=tracekit.Guard(max_steps=1, max_repeats=2))
    try:
        report = tracekit.import_traces([trace_file], tmp_path / "store")
    finally:
        tracekit.shutdown()
    kinds = [e["kind"] for e in _events(tmp_path / "store", report.runs[0])]
    assert kinds.count("tool_call") == 6 and "guard" not in kinds


def test_a_failed_tool_span_is_a_failed_tool_result(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", otlp_json(refund_agent_spans(3, fail_last_tool=True)))
    report = tracekit.import_traces([path], tmp_path / "store")
    results = [e for e in _events(tmp_path / "store", report.runs[0])
               if e["kind"] == "tool_result"]  # fmt: skip
    assert [r["status"] for r in results] == ["ok", "ok", "error"]
    assert results[-1]["error"] == "card declined"


@pytest.mark.parametrize(
    ("content", "fmt", "expected"),
    [
        ("not json at all\n", "auto", "not a trace format tracekit knows; name one with --format"),
        ("not json at all\n", "otlp-json", "not OTLP/JSON"),
        ('{"traces": []}\n', "otel-genai", "expected an object with 'resourceSpans'"),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "GET /"}]}]}]}), "auto",
         "none with OpenTelemetry GenAI attributes"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_a_genai_trace_is_a_one_line_error(
        tmp_path: Path, content: str, fmt: str, expected: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["import", str(bad), "--store", str(store), "--format", fmt])
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and str(bad) in message and expected in message
    assert "Traceback" not in result.output
    assert not list(store.rglob("*.parquet"))  # nothing half-written


def test_a_binary_file_and_an_unknown_format_are_one_line_errors(tmp_path: Path) -> None:
    binary = tmp_path / "dump.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 64)
    with pytest.raises(ImportFormatError, match="not a trace format tracekit knows"):
        tracekit.import_traces([binary], tmp_path / "store")
    with pytest.raises(ImportFormatError, match="not a text or gzipped OTLP/JSON file"):
        tracekit.import_traces([binary], tmp_path / "store", fmt="otlp-json")
    result = CliRunner().invoke(cli, ["import", str(binary), "--format", "zipkin"])
    assert result.exit_code == 2 and "'zipkin' is not one of 'auto'" in result.output


def test_the_cli_reports_runs_and_what_was_already_there(tmp_path: Path,
                                                         trace_file: Path) -> None:
    store = tmp_path / "store"
    args = ["import", str(trace_file), "--store", str(store), "--tenant", "globex"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "imported 1 run(s), 28 events, from 14 spans in 1 file(s)" in first.output
    second = CliRunner().invoke(cli, args)
    assert "imported 0 run(s)" in second.output and "1 run(s) already in the store" in second.output
    assert {e["tenant"] for e in _events(store)} == {"globex"}


def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
        tmp_path: Path, trace_file: Path) -> None:
    generated = made_test_passes(trace_file, tmp_path)
    assert SECRET not in generated and SECRET[8:] not in generated
