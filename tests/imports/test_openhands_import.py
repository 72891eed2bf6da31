"""`tracekit import` of OpenHands event streams: each model response a model call whose
prompt is the conversation so far, each action it chose a tool call answered by the
observation it caused, in their recorded time, costed by the running total, a stuck agent a
failed run, idempotent, scrubbed, and an imported runaway carried through export, make-test
and the generated test's pytest run."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from _agent_logs import COMMAND, OH_START, SECRET, openhands_events, write_events
from _e2e import made_test_passes
from click.testing import CliRunner

import tracekit
from tracekit._import.source import reader_for
from tracekit.cli import cli
from tracekit.testing import Recording


def _events(store: Path, run_id: str) -> list[dict[str, Any]]:
    return Recording(store).rows(f"SELECT * FROM events WHERE run_id = '{run_id}' ORDER BY seq")


@pytest.fixture
def stream_file(tmp_path: Path) -> Path:
    """A CodeActAgent that runs the same command 6 times until its stuck detector stops it,
    saved as a trajectory (a JSON list of events)."""
    return write_events(tmp_path / "trajectory.json", openhands_events(loops=6))


def test_a_stream_is_a_run_of_model_calls_and_tool_calls(tmp_path: Path, stream_file: Path) -> None:
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([stream_file], store).runs
    assert run_id.startswith("openhands-")
    events = _events(store, run_id)
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "run_start",
        *["prompt", "model_output", "tool_call", "tool_result"] * 6,
        "run_end",
    ]
    assert events[0]["ts"] == OH_START.replace(tzinfo=UTC)  # its own time, read as UTC
    assert (events[-1]["status"], events[-1]["error"]) == (
        "error",
        "AgentStuckInLoopError: Agent got stuck in a loop",
    )
    outputs = [e for e in events if e["kind"] == "model_output"]
    assert [o["step"] for o in outputs] == list(range(1, 7))
    assert {o["model_version"] for o in outputs} == {"gpt-4o-mini"}
    assert [(o["tokens_in"], o["tokens_out"]) for o in outputs] == [(2_000, 60)] * 6
    assert [o["cost_usd"] for o in outputs] == [pytest.approx(0.01)] * 6  # the running total's rise
    assert outputs[0]["latency_ms"] == pytest.approx(2_000)
    assert json.loads(outputs[0]["attrs"])["tool_calls"] == [
        {"id": "toolu_01", "name": "execute_bash", "arguments": json.dumps({"command": COMMAND})}
    ]
    calls = [e for e in events if e["kind"] == "tool_call"]
    assert {(c["name"], c["args"]) for c in calls} == {
        ("execute_bash", '{"command":"python reproduce.py"}')
    }
    results = [e for e in events if e["kind"] == "tool_result"]
    assert [r["call_id"] for r in results] == [c["call_id"] for c in calls]
    assert json.loads(results[0]["output"]) == "344\n" and results[0]["latency_ms"] == 500
    assert json.loads(results[0]["attrs"])["metadata"]["exit_code"] == 0
    prompts = [json.loads(e["args"]) for e in events if e["kind"] == "prompt"]
    assert prompts[0]["system"].startswith("You are OpenHands agent")
    assert [t["function"]["name"] for t in prompts[0]["tools"]] == ["execute_bash", "finish"]
    assert [m["role"] for m in prompts[1]["messages"]] == ["user", "assistant", "tool"]
    assert prompts[1]["messages"][2] == {
        "role": "tool",
        "tool_call_id": "toolu_01",
        "name": "execute_bash",
        "content": "344\n",
    }


def test_one_event_a_line_a_finish_and_a_failed_observation(tmp_path: Path) -> None:
    events = openhands_events(loops=2, finish=True, fail_last=True)
    path = write_events(tmp_path / "events.jsonl", events, lines=True)
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([path], store).runs
    rows = _events(store, run_id)
    results = [e for e in rows if e["kind"] == "tool_result"]
    assert [(r["status"], r["error"]) for r in results] == [
        ("ok", None),
        ("error", "Sandbox is not responding"),
    ]
    calls = [e["name"] for e in rows if e["kind"] == "tool_call"]
    assert calls == ["execute_bash", "execute_bash", "finish"]  # finish: no observation
    assert rows[-1]["status"] == "ok"  # the agent's last state: finished


def test_evaluation_output_is_a_run_per_instance(tmp_path: Path) -> None:
    lines = [
        {
            "instance_id": f"marshmallow-{n}",
            "instruction": "fix it",
            "error": None,
            "metrics": {"accumulated_cost": 0.02},
            "history": openhands_events(loops=n),
        }
        for n in (1, 2)
    ]
    path = tmp_path / "output.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    store = tmp_path / "store"
    runs = tracekit.import_traces([path], store).runs
    assert len(runs) == 2 and all(r.startswith("openhands-marshmallow-") for r in runs)
    names = {_events(store, r)[0]["name"] for r in runs}
    assert names == {"marshmallow-1", "marshmallow-2"}


def test_importing_again_adds_nothing_and_secrets_never_reach_the_store(
    tmp_path: Path, stream_file: Path
) -> None:
    store = tmp_path / "store"
    first = tracekit.import_traces([stream_file], store)
    again = tracekit.import_traces([stream_file], store)
    assert again.runs == [] and again.already == first.runs
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    assert SECRET.encode() not in raw and SECRET[8:].encode() not in raw
    prompt = _events(store, first.runs[0])[1]["args"]
    assert "TimeDelta serialization precision" in prompt


def test_auto_finds_a_stream_in_either_layout(tmp_path: Path) -> None:
    events = openhands_events(loops=1)
    listed = write_events(tmp_path / "a.json", events)
    lines = write_events(tmp_path / "b.jsonl", events, lines=True)
    assert reader_for(listed, "auto")[0] == reader_for(lines, "auto")[0] == "openhands"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json at all\n", "not an OpenHands event stream (line 1 is not JSON"),
        ("[]", "expected a JSON list of events"),
        ('[{"kind": "MessageEvent", "source": "user"}]', "none of its 1 item(s) is an event"),
    ],
)
def test_a_file_that_is_not_an_event_stream_is_a_one_line_error(
    tmp_path: Path, content: str, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    store = tmp_path / "store"
    result = CliRunner().invoke(
        cli, ["import", str(bad), "--store", str(store), "--format", "openhands"]
    )
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and str(bad) in message and expected in message
    assert "Traceback" not in result.output
    assert not list(store.rglob("*.parquet"))


def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
    tmp_path: Path, stream_file: Path
) -> None:
    generated = made_test_passes(stream_file, tmp_path, incident="stuck-loop")
    assert SECRET not in generated and SECRET[8:] not in generated
