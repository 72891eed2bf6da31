"""`tracekit import` of Langfuse traces: generations as model calls and tool observations as
tool calls on the trace's own clock, costed as Langfuse costed them, a failed root a failed run,
idempotent, scrubbed, and an imported runaway carried through export, make-test and the
generated test's pytest run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from _e2e import made_test_passes
from _langfuse_logs import (
    ARGS,
    SECRET,
    START,
    TOKENS_IN,
    TOOL,
    TRACE_ID,
    langfuse_trace,
    observations_page,
    write_json,
    write_lines,
)
from click.testing import CliRunner

import tracekit
from tracekit._import.source import reader_for
from tracekit.cli import cli
from tracekit.testing import Recording

RUN = f"langfuse-{TRACE_ID}"


def _events(store: Path, run_id: str = RUN) -> list[dict[str, Any]]:
    return Recording(store).rows(f"SELECT * FROM events WHERE run_id = '{run_id}' ORDER BY seq")


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    return write_json(tmp_path / "trace.json", langfuse_trace(loops=6))


def test_a_trace_is_a_run_of_generations_and_tool_calls(tmp_path: Path, trace_file: Path) -> None:
    store = tmp_path / "store"
    assert tracekit.import_traces([trace_file], store).runs == [RUN]
    events = _events(store)
    kinds = [e["kind"] for e in events]
    assert kinds == ["run_start", *["prompt", "model_output", "tool_call", "tool_result"] * 6,
                     "prompt", "model_output", "run_end"]  # fmt: skip
    assert events[0]["ts"] >= START and events[-1]["status"] == "error"
    assert "Rate limit" in (events[-1]["error"] or "")
    outputs = [e for e in events if e["kind"] == "model_output"]
    assert outputs[0]["tokens_in"] == TOKENS_IN and outputs[-1]["status"] == "error"
    assert all(o["cost_usd"] == pytest.approx(0.000204) for o in outputs[:-1])  # the last failed
    declared = json.loads(outputs[0]["attrs"])["tool_calls"]
    assert [(d["name"], json.loads(d["arguments"])) for d in declared] == [(TOOL, ARGS)]
    calls = [e for e in events if e["kind"] == "tool_call"]
    assert {(c["name"], c["args"]) for c in calls} == {
        (TOOL, json.dumps(ARGS, separators=(",", ":")))
    }
    assert calls[0]["call_id"] == declared[0]["id"]
    times = [e["ts"] for e in events]
    assert times == sorted(times) and (times[-1] - times[0]).total_seconds() > 1


def test_a_page_of_observations_and_lines_of_traces_read_as_the_same_run(tmp_path: Path) -> None:
    trace = langfuse_trace(loops=3, fail=False)
    page = write_json(tmp_path / "page.json", observations_page(trace))
    lines = write_lines(tmp_path / "traces.jsonl", [trace])
    store_a, store_b = tmp_path / "a", tmp_path / "b"
    assert tracekit.import_traces([page], store_a, fmt="langfuse").runs == [RUN]
    assert tracekit.import_traces([lines], store_b).runs == [RUN]
    kinds = [e["kind"] for e in _events(store_a)]
    assert kinds == [e["kind"] for e in _events(store_b)]
    assert kinds.count("tool_call") == 3 and _events(store_b)[-1]["status"] == "ok"


def test_the_older_observations_view_is_costed_the_same(tmp_path: Path) -> None:
    path = write_json(tmp_path / "legacy.json", langfuse_trace(loops=2, legacy=True))
    store = tmp_path / "store"
    tracekit.import_traces([path], store)
    outputs = [e for e in _events(store) if e["kind"] == "model_output"]
    assert len(outputs) == 3 and all(o["cost_usd"] == pytest.approx(0.000204) for o in outputs[:-1])


def test_importing_again_adds_nothing_and_secrets_never_reach_the_store(
    tmp_path: Path, trace_file: Path
) -> None:
    store = tmp_path / "store"
    first = tracekit.import_traces([trace_file], store)
    zipped = tmp_path / "trace.json.gz"
    zipped.write_bytes(gzip.compress(trace_file.read_bytes()))
    again = tracekit.import_traces([trace_file, zipped], store)
    assert again.runs == [] and again.already == first.runs == [RUN]
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    assert SECRET.encode() not in raw and SECRET[8:].encode() not in raw
    assert "Where is my refund" in _events(store)[1]["args"]


def test_auto_finds_a_langfuse_trace(trace_file: Path) -> None:
    assert reader_for(trace_file, "auto")[0] == "langfuse"


@pytest.mark.parametrize(
    "content",
    ['{"id": "x", "observations": 3}', "[1, 2, 3]", "not json\n"],
)
def test_a_file_that_is_not_a_langfuse_export_is_a_one_line_error(
    tmp_path: Path, content: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = CliRunner().invoke(cli, ["import", str(bad), "--store", str(tmp_path / "s"),
                                      "--format", "langfuse"])  # fmt: skip
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ") and str(bad) in line and "Langfuse" in line


def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
    tmp_path: Path, trace_file: Path
) -> None:
    generated = made_test_passes(trace_file, tmp_path, fmt="langfuse")
    assert SECRET not in generated and SECRET[8:] not in generated
