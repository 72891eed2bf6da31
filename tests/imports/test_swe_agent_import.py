"""`tracekit import` of SWE-agent trajectories (``.traj``): each step a model call and a tool
call on a clock of their own, the run's cost spread over its model calls, a failed exit a
failed run, idempotent, scrubbed, and an imported runaway carried through export, make-test
and the generated test's pytest run."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _agent_logs import COMMAND, INSTANCE, SECRET, swe_agent_traj, write_traj
from _e2e import made_test_passes
from click.testing import CliRunner

import tracekit
from tracekit._import.source import reader_for
from tracekit.cli import cli
from tracekit.testing import Recording


def _events(store: Path, run_id: str) -> list[dict[str, Any]]:
    return Recording(store).rows(f"SELECT * FROM events WHERE run_id = '{run_id}' ORDER BY seq")


@pytest.fixture
def traj_file(tmp_path: Path) -> Path:
    """A function-calling SWE-agent run that runs the same command 6 times, then hits its
    cost limit and autosubmits."""
    return write_traj(tmp_path / f"{INSTANCE}.traj", swe_agent_traj(loops=6))


def test_a_trajectory_is_a_run_of_model_calls_and_actions(tmp_path: Path, traj_file: Path) -> None:
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([traj_file], store).runs
    assert run_id.startswith(f"swe-{INSTANCE}-")
    events = _events(store, run_id)
    kinds = [e["kind"] for e in events]  # the autosubmission made no model call
    assert kinds == ["run_start", *["prompt", "model_output", "tool_call", "tool_result"] * 6,
                     "run_end"]  # fmt: skip
    assert events[0]["name"] == INSTANCE and events[0]["model_version"] == "gpt-4o-mini"
    meta = json.loads(events[0]["attrs"])
    assert meta["imported"] == "swe-agent" and meta["exit_status"] == "submitted (exit_cost)"
    assert (events[-1]["status"], events[-1]["error"]) == (
        "error",
        "exit_status: submitted (exit_cost)",
    )
    assert events[1]["ts"] == datetime(2000, 1, 1, tzinfo=UTC)  # no time in the file: a fixed one
    took = (events[-1]["ts"] - events[0]["ts"]).total_seconds()
    assert took == pytest.approx(sum(0.25 + 0.01 * i for i in range(6)) + 0.017, abs=1e-6)
    outputs = [e for e in events if e["kind"] == "model_output"]
    assert [o["step"] for o in outputs] == list(range(1, 7))
    assert sum(o["tokens_in"] for o in outputs) == 9_000 * 6
    assert sum(o["cost_usd"] for o in outputs) == pytest.approx(0.0126 * 6)
    declared = json.loads(outputs[0]["attrs"])["tool_calls"]
    assert declared == [{"id": "call_01ABCDEF", "name": "bash",
                         "arguments": json.dumps({"command": COMMAND})}]  # fmt: skip
    calls = [e for e in events if e["kind"] == "tool_call"]
    assert {(c["name"], c["args"]) for c in calls} == {
        ("bash", '{"command":"python reproduce.py"}')
    }
    assert calls[0]["call_id"] == "call_01ABCDEF"
    result = next(e for e in events if e["kind"] == "tool_result")
    assert json.loads(result["output"]) == "344\n" and result["latency_ms"] == pytest.approx(250)
    second = json.loads(events[5]["args"])["messages"]  # step 2's query: the tool answer in it
    assert second[-1] == {"role": "tool", "content": "OBSERVATION:\n344\n",
                          "tool_call_id": "call_01ABCDEF"}  # fmt: skip
    assert not any("message_type" in m or "agent" in m for m in second)


def test_an_older_thought_action_trajectory_reads_its_prompts_from_the_history(
    tmp_path: Path,
) -> None:
    traj = swe_agent_traj(loops=2, function_calling=False, with_query=False,
                          exit_status="submitted")  # fmt: skip
    path = write_traj(tmp_path / "old.traj", traj)
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([path], store, fmt="swe-agent").runs
    events = _events(store, run_id)
    calls = [(e["name"], json.loads(e["args"])) for e in events if e["kind"] == "tool_call"]
    assert calls == [("python", {"command": COMMAND})] * 2 + [("submit", {"command": "submit"})]
    prompts = [json.loads(e["args"])["messages"] for e in events if e["kind"] == "prompt"]
    assert [len(p) for p in prompts] == [2, 4, 6]  # the history before each step's answer
    assert "tool_calls" not in json.loads(events[2]["attrs"])  # no function calling
    result = next(e for e in events if e["kind"] == "tool_result")
    assert json.loads(result["attrs"]) == {"state": {"working_dir": "/marshmallow"}}
    assert events[-1]["status"] == "ok" and events[-1]["error"] is None


def test_importing_again_adds_nothing_and_secrets_never_reach_the_store(
    tmp_path: Path, traj_file: Path
) -> None:
    store = tmp_path / "store"
    first = tracekit.import_traces([traj_file], store)
    again = tracekit.import_traces([traj_file], store)
    zipped = traj_file.with_name("zipped.traj.gz")
    zipped.write_bytes(gzip.compress(traj_file.read_bytes()))
    gunzipped = tracekit.import_traces([zipped], store)  # the same run, gzipped
    assert again.runs == gunzipped.runs == [] and again.already == gunzipped.already == first.runs
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    assert SECRET.encode() not in raw and SECRET[8:].encode() not in raw
    prompt = _events(store, first.runs[0])[1]["args"]
    assert "TimeDelta serialization precision" in prompt  # the rest of it is kept


def test_auto_finds_a_trajectory_and_no_other_reader_claims_it(traj_file: Path) -> None:
    assert reader_for(traj_file, "auto")[0] == "swe-agent"
    renamed = traj_file.with_name("run.json")
    traj_file.rename(renamed)
    assert reader_for(renamed, "auto")[0] == "swe-agent"  # by its first key, whatever its name


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json at all\n", "not a SWE-agent trajectory (.traj) (not JSON"),
        ('{"history": [], "info": {}}', "expected a JSON object with a 'trajectory' list"),
        ("[1, 2]", "expected a JSON object with a 'trajectory' list"),
    ],
)
def test_a_file_that_is_not_a_trajectory_is_a_one_line_error(
    tmp_path: Path, content: str, expected: str
) -> None:
    bad = tmp_path / "bad.traj"
    bad.write_text(content)
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["import", str(bad), "--store", str(store),
                                      "--format", "swe-agent"])  # fmt: skip
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and str(bad) in message and expected in message
    assert "Traceback" not in result.output
    assert not list(store.rglob("*.parquet"))


def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
    tmp_path: Path, traj_file: Path
) -> None:
    generated = made_test_passes(traj_file, tmp_path, incident="repro-loop")
    assert SECRET not in generated and SECRET[8:] not in generated
