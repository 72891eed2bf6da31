"""`tracekit import` of LangSmith run exports: a trace a run, its ``llm`` runs model calls and
its ``tool`` runs tool calls on the runs' own clock, chains kept in attrs, the root's error a
failed run, idempotent, scrubbed, and an imported runaway carried through export, make-test
and the generated test's pytest run."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _e2e import made_test_passes
from _langsmith_logs import (
    COMMAND,
    COST,
    MODEL,
    PROJECT,
    RECURSION,
    SECRET,
    START,
    langgraph_runs,
    openai_runs,
    write_runs,
)
from click.testing import CliRunner

import tracekit
from tracekit._import.source import reader_for
from tracekit.cli import cli
from tracekit.testing import Recording


def _events(store: Path, run_id: str) -> list[dict[str, Any]]:
    return Recording(store).rows(f"SELECT * FROM events WHERE run_id = '{run_id}' ORDER BY seq")


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A LangGraph agent's trace that runs the same command 6 times until its recursion limit,
    exported as a JSON list of runs."""
    return write_runs(tmp_path / "runs.json", langgraph_runs(loops=6))


def test_a_langgraph_trace_is_a_run_of_model_calls_and_tool_calls(
    tmp_path: Path, export: Path
) -> None:
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([export], store).runs
    assert run_id == "langsmith-00000000-0000-0001-0000-000000000001"
    events = _events(store, run_id)
    kinds = [e["kind"] for e in events]
    assert kinds == ["run_start", *["prompt", "model_output", "tool_call", "tool_result"] * 6,
                     "run_end"]  # fmt: skip
    assert events[0]["name"] == "LangGraph" and events[0]["model_version"] == MODEL
    meta = json.loads(events[0]["attrs"])
    assert meta["imported"] == "langsmith" and meta["session_id"] == str(PROJECT)
    assert meta["tags"] == ["repro"] and meta["metadata"] == {"thread_id": "thread-1867"}
    assert (events[-1]["status"], events[-1]["error"]) == ("error", RECURSION)
    # the runs' own clock: model calls 2 s, commands 0.5 s, from the graph's start
    assert events[0]["ts"] == START
    assert events[1]["ts"] == START + timedelta(seconds=0.01)
    assert events[2]["ts"] == START + timedelta(seconds=2.01)
    assert events[4]["ts"] == START + timedelta(seconds=2.51)
    assert events[-1]["ts"] == START + timedelta(seconds=0.01 + 6 * 2.5)
    outputs = [e for e in events if e["kind"] == "model_output"]
    assert [o["step"] for o in outputs] == list(range(1, 7))
    assert {(o["tokens_in"], o["tokens_out"], o["latency_ms"]) for o in outputs} == {
        (2_000, 60, 2_000.0)
    }
    assert sum(o["cost_usd"] for o in outputs) == pytest.approx(float(COST) * 6)
    attrs = json.loads(outputs[0]["attrs"])
    assert attrs["tool_calls"] == [{"id": "call_01", "name": "bash",
                                    "arguments": json.dumps({"command": COMMAND},
                                                            separators=(",", ":"))}]  # fmt: skip
    assert attrs["chain"] == ["LangGraph", "agent"] and attrs["metadata"]["ls_model_name"] == MODEL
    message = json.loads(outputs[0]["output"])["messages"][0]
    assert message["role"] == "assistant" and message["tool_calls"][0]["id"] == "call_01"
    calls = [e for e in events if e["kind"] == "tool_call"]
    assert {(c["name"], c["args"]) for c in calls} == {
        ("bash", '{"command":"python reproduce.py"}')
    }
    assert [c["call_id"] for c in calls] == [f"call_{i:02d}" for i in range(1, 7)]
    assert json.loads(calls[0]["attrs"])["chain"] == ["LangGraph", "tools"]
    result = next(e for e in events if e["kind"] == "tool_result")
    assert json.loads(result["output"]) == "344\n" and result["latency_ms"] == pytest.approx(500)
    second = json.loads(events[5]["args"])["messages"]  # the 2nd call was sent the tool's answer
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool"]
    assert second[-1] == {"role": "tool", "content": "344\n", "tool_call_id": "call_01",
                          "name": "bash"}  # fmt: skip


def test_a_traceable_openai_trace_in_json_lines(tmp_path: Path) -> None:
    path = write_runs(tmp_path / "runs.jsonl", openai_runs(loops=6), lines=True)
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([path], store, fmt="langsmith").runs
    events = _events(store, run_id)
    kinds = [e["kind"] for e in events]
    assert kinds == ["run_start", *["prompt", "model_output", "tool_call", "tool_result"] * 6,
                     "prompt", "model_output", "run_end"]  # fmt: skip
    assert events[0]["name"] == "repro_agent" and events[-1]["status"] == "ok"
    outputs = [e for e in events if e["kind"] == "model_output"]
    assert {(o["name"], o["tokens_in"], o["tokens_out"]) for o in outputs} == {(MODEL, 2_000, 60)}
    declared = json.loads(outputs[0]["attrs"])["tool_calls"]
    assert declared == [{"id": "call_oa01", "name": "bash",
                         "arguments": json.dumps({"command": COMMAND})}]  # fmt: skip
    assert json.loads(outputs[-1]["output"])["messages"] == [
        {"role": "assistant", "content": "It prints 344."}
    ]
    calls = [e for e in events if e["kind"] == "tool_call"]  # paired with the declared calls
    assert [c["call_id"] for c in calls] == [f"call_oa{i:02d}" for i in range(1, 7)]
    first = json.loads(events[1]["args"])["messages"]
    assert first[0] == {"role": "system", "content": "You are a coding agent. Use the bash tool."}
    assert events[1]["ts"] == START and events[2]["ts"] == START + timedelta(seconds=1.5)


def test_a_failed_tool_run_is_a_failed_tool_result(tmp_path: Path) -> None:
    path = write_runs(tmp_path / "runs.json", langgraph_runs(loops=2, fail_tool=True))
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([path], store).runs
    results = [e for e in _events(store, run_id) if e["kind"] == "tool_result"]
    assert [r["status"] for r in results] == ["ok", "error"]
    assert results[1]["error"] == "TimeoutError('command timed out after 0.5 s')"
    assert results[1]["call_id"] == "call_02"  # paired with the declared call by name


def test_two_traces_in_one_file_are_two_runs(tmp_path: Path) -> None:
    runs = langgraph_runs(loops=1) + openai_runs(loops=1)
    path = write_runs(tmp_path / "runs.json", runs)
    report = tracekit.import_traces([path], tmp_path / "store")
    assert sorted(report.runs) == ["langsmith-00000000-0000-0001-0000-000000000001",
                                   "langsmith-00000000-0000-0002-0000-000000000001"]  # fmt: skip


def test_importing_again_adds_nothing_and_secrets_never_reach_the_store(
    tmp_path: Path, export: Path
) -> None:
    store = tmp_path / "store"
    first = tracekit.import_traces([export], store)
    again = tracekit.import_traces([export], store)
    zipped = export.with_name("zipped.json.gz")
    zipped.write_bytes(gzip.compress(export.read_bytes()))
    gunzipped = tracekit.import_traces([zipped], store)  # the same run, gzipped
    assert again.runs == gunzipped.runs == [] and again.already == gunzipped.already == first.runs
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    assert SECRET.encode() not in raw and SECRET[8:].encode() not in raw
    prompt = _events(store, first.runs[0])[1]["args"]
    assert "TimeDelta serialization precision" in prompt  # the rest of it is kept


def test_auto_finds_an_export_and_no_other_reader_claims_it(tmp_path: Path, export: Path) -> None:
    assert reader_for(export, "auto")[0] == "langsmith"
    lines = write_runs(tmp_path / "runs.jsonl", openai_runs(loops=1), lines=True)
    assert reader_for(lines, "auto")[0] == "langsmith"
    zipped = tmp_path / "runs.json.gz"
    zipped.write_bytes(gzip.compress(export.read_bytes()))
    assert reader_for(zipped, "auto")[0] == "langsmith"


def test_the_reader_claims_none_of_the_other_formats_fixtures(tmp_path: Path) -> None:
    from _agent_logs import openhands_events, swe_agent_traj, write_events, write_traj
    from _openinference_traces import refund_agent_spans as openinference_spans
    from _otel_traces import otlp_json, refund_agent_spans, write_lines

    from tracekit._import import langsmith
    from tracekit._import.source import head

    others = [
        write_traj(tmp_path / "a.traj", swe_agent_traj(loops=2)),
        write_events(tmp_path / "oh.json", openhands_events(loops=2)),
        write_events(tmp_path / "oh.jsonl", openhands_events(loops=2), lines=True),
        write_lines(tmp_path / "otel.json", otlp_json(refund_agent_spans(loops=2))),
        write_lines(tmp_path / "oi.json", otlp_json(openinference_spans(loops=2))),
    ]
    for path in others:
        assert not langsmith.sniff(path, head(path)), path.name


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json at all\n", "not a LangSmith run export (not JSON"),
        ('{"runs": [{"name": "x"}]}', "expected a JSON list of LangSmith runs"),
        ("[1, 2]", "expected a JSON list of LangSmith runs"),
        ('{"id": "1", "run_type": "llm", "start_time": "x"}\n{oops\n', "line 2 is not JSON"),
    ],
)
def test_a_file_that_is_not_an_export_is_a_one_line_error(
    tmp_path: Path, content: str, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["import", str(bad), "--store", str(store),
                                      "--format", "langsmith"])  # fmt: skip
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and str(bad) in message and expected in message
    assert "Traceback" not in result.output
    assert not list(store.rglob("*.parquet"))


def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
    tmp_path: Path, export: Path
) -> None:
    generated = made_test_passes(export, tmp_path, fmt="langsmith", incident="repro-loop")
    assert SECRET not in generated and SECRET[8:] not in generated


def test_an_imported_openai_runaway_passes_under_auto(tmp_path: Path) -> None:
    path = write_runs(tmp_path / "runs.jsonl", openai_runs(loops=6), lines=True)
    generated = made_test_passes(path, tmp_path)
    assert SECRET not in generated and SECRET[8:] not in generated


def test_an_export_of_the_llm_runs_only_is_still_a_run(tmp_path: Path) -> None:
    runs = [r for r in langgraph_runs(loops=2) if r.run_type == "llm"]  # list_runs(run_type=)
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([write_runs(tmp_path / "llm.json", runs)], store).runs
    events = _events(store, run_id)
    assert run_id == "langsmith-00000000-0000-0001-0000-000000000001"
    assert [e["kind"] for e in events].count("model_output") == 2
    assert events[0]["name"] == "ChatOpenAI" and events[-1]["status"] == "ok"
