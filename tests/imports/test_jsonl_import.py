"""`tracekit import --format jsonl`: a team's own agent log, one event a line, and the JSONL of
an exported bundle (tracekit's own rows) imported again, with one-line errors for bad lines and
an imported runaway carried through export, make-test and the generated test's run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _e2e import made_test_passes
from _otel_traces import SECRET, otlp_json, refund_agent_spans, write_lines
from click.testing import CliRunner

import tracekit
from tracekit._import.jsonl import timestamp_ns
from tracekit.cli import cli
from tracekit.errors import ImportFormatError
from tracekit.testing import Recording

_COLUMNS = ("kind", "name", "call_id", "args", "output", "status", "error", "tokens_in",
            "tokens_out", "cost_usd", "ts", "step", "seq", "model_version")  # fmt: skip


def _log(loops: int = 6) -> list[dict[str, Any]]:
    """A support agent's own log: a model call that asks for a refund and the refund, again and
    again, 550 ms a loop, times as ISO-8601; the first prompt carries an API key."""
    lines: list[dict[str, Any]] = [{"run_id": "ticket-981", "kind": "run_start",
                                    "ts": "2026-12-03T10:00:00Z", "name": "support",
                                    "tenant": "acme"}]  # fmt: skip
    for i in range(loops):
        at = f"2026-12-03T10:00:{i * 0.55:06.3f}Z"
        then = f"2026-12-03T10:00:{i * 0.55 + 0.3:06.3f}Z"
        lines += [
            {"run_id": "ticket-981", "kind": "prompt", "ts": at, "name": "gpt-4o-mini",
             "args": {"messages": [{"role": "user", "content": f"refund 42, key {SECRET}"}]}},
            {"run_id": "ticket-981", "kind": "model_output", "ts": then, "model": "gpt-4o-mini",
             "name": "gpt-4o-mini", "tokens_in": 100, "tokens_out": 20, "trace": "abc",
             "output": json.dumps({"content": "refunding"})},
            {"run_id": "ticket-981", "kind": "tool_call", "ts": then, "name": "refund",
             "call_id": f"c{i}", "args": {"order_id": "42", "amount": 30}},
            {"run_id": "ticket-981", "kind": "tool_result", "ts": then, "name": "refund",
             "call_id": f"c{i}", "output": {"refunded": 30}, "latency_ms": 12.5},
        ]  # fmt: skip
    return [*lines, {"run_id": "ticket-981", "kind": "run_end", "ts": "2026-12-03T10:00:04Z",
                     "status": "error", "error": "stopped by an operator"}]  # fmt: skip


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in _log()))
    return path


def _events(store: Path) -> list[dict[str, Any]]:
    return Recording(store).rows("SELECT * FROM events ORDER BY run_id, seq")


def test_times_in_every_form_teams_log_them() -> None:
    ns = 1_764_756_000_123_456_000  # 2025-12-03T10:00:00.123456Z
    assert timestamp_ns("2025-12-03T10:00:00.123456Z") == ns
    assert timestamp_ns("2025-12-03T11:00:00.123456+01:00") == ns
    assert timestamp_ns("2025-12-03 10:00:00.123456") == ns  # naive: UTC
    assert timestamp_ns(ns) == ns and timestamp_ns(ns // 1000) == ns
    assert timestamp_ns(1_764_756_000_123) == ns - 456_000  # ms
    assert timestamp_ns(1_764_756_000.5) == 1_764_756_000_500_000_000  # seconds
    assert timestamp_ns("1764756000") == 1_764_756_000_000_000_000


def test_a_teams_own_log_is_a_run_in_its_order_and_time(tmp_path: Path, log_file: Path) -> None:
    store = tmp_path / "store"
    report = tracekit.import_traces([log_file], store)  # found by auto
    assert report.runs == ["ticket-981"]
    events = _events(store)
    kinds = [e["kind"] for e in events]
    assert kinds == ["run_start", *["prompt", "model_output", "tool_call", "tool_result"] * 6,
                     "run_end"]  # fmt: skip
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert (events[-1]["ts"] - events[0]["ts"]).total_seconds() == 4.0
    assert (events[0]["name"], events[0]["tenant"]) == ("support", "acme")
    assert (events[-1]["status"], events[-1]["error"]) == ("error", "stopped by an operator")
    output, call = events[2], events[3]
    assert output["cost_usd"] and output["model_version"] == "gpt-4o-mini"
    assert json.loads(output["output"]) == {"content": "refunding"}  # JSON text kept as JSON
    assert json.loads(output["attrs"]) == {"trace": "abc"}  # what has no column
    assert call["status"] == "started"
    assert json.loads(call["args"]) == {"amount": 30, "order_id": "42"}
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    assert SECRET[8:].encode() not in raw
    assert tracekit.import_traces([log_file], store).already == ["ticket-981"]


def test_an_exported_bundles_jsonl_imports_again_as_the_same_run(tmp_path: Path) -> None:
    trace = write_lines(tmp_path / "t.jsonl", otlp_json(refund_agent_spans(loops=3)))
    first = tmp_path / "first"
    (run_id,) = tracekit.import_traces([trace], first).runs
    bundle = tracekit.export_incident([run_id], "again", out=tmp_path / "fx", store=first,
                                      jsonl=True)  # fmt: skip
    second = tmp_path / "second"
    report = tracekit.import_traces([Path(bundle) / "events.jsonl"], second, fmt="jsonl")
    assert report.runs == [run_id]
    before = [{k: e[k] for k in _COLUMNS} for e in _events(first)]
    after = [{k: e[k] for k in _COLUMNS} for e in _events(second)]
    assert after == before


@pytest.mark.parametrize(("line", "expected"), [
    ({"kind": "prompt", "ts": 1}, "no run_id: each line"),
    ({"run_id": "r", "kind": "thought", "ts": 1}, "unknown kind 'thought': use one of"),
    ({"run_id": "r", "kind": "prompt", "ts": "yesterday"}, "ts 'yesterday' is not a time"),
    ({"run_id": "r", "kind": "tool_result", "ts": 1, "status": "fine"}, "unknown status 'fine'"),
])  # fmt: skip
def test_a_bad_line_is_a_one_line_error_naming_it(tmp_path: Path, line: dict[str, Any],
                                                  expected: str) -> None:  # fmt: skip
    path = tmp_path / "log.jsonl"
    good = {"run_id": "r", "kind": "prompt", "ts": 1}
    path.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(ImportFormatError, match=expected):
        tracekit.import_traces([path], tmp_path / "store", fmt="jsonl")
    result = CliRunner().invoke(cli, ["import", str(path), "--format", "jsonl",
                                      "--store", str(tmp_path / "store")])  # fmt: skip
    message = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and f"{path}:2:" in message and "Traceback" not in result.output
    assert not list((tmp_path / "store").rglob("*.parquet"))


def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
        tmp_path: Path, log_file: Path) -> None:  # fmt: skip
    generated = made_test_passes(log_file, tmp_path, fmt="jsonl")
    assert SECRET not in generated and SECRET[8:] not in generated
