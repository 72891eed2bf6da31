"""`tracekit import` of Inspect AI eval logs (``.eval`` zips and ``.json`` logs written by
Inspect's own ``write_eval_log``): each sample and epoch a run of its model events and tool
events in their recorded time, pooled messages and attachments resolved, recorded costs,
a sample's error a failed run, idempotent, scrubbed, and an imported runaway carried through
export, make-test and the generated test's pytest run."""

from __future__ import annotations

import gzip
import importlib
import json
import sys
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _e2e import made_test_passes
from _inspect_logs import (
    ARGS,
    COST,
    CRASH,
    EVAL_ID,
    MODEL,
    ORDER,
    RUN_ID,
    SECRET,
    START,
    TASK,
    TOOL,
    eval_log,
    question,
    write_log,
)
from click.testing import CliRunner

import tracekit
from tracekit._import import READERS
from tracekit._import.source import head, reader_for
from tracekit.cli import cli
from tracekit.testing import Recording

FORMATS = ("eval", "json")
SAMPLE_RUN = f"inspect-{EVAL_ID}-refund-1-1"


def _events(store: Path, run_id: str) -> list[dict[str, Any]]:
    return Recording(store).rows(f"SELECT * FROM events WHERE run_id = '{run_id}' ORDER BY seq")


def _log(tmp_path: Path, suffix: str, **kwargs: Any) -> Path:
    return write_log(tmp_path / f"refunds.{suffix}", eval_log(**kwargs))


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_sample_is_a_run_of_model_events_and_tool_events(tmp_path: Path, suffix: str) -> None:
    store = tmp_path / "store"
    path = _log(tmp_path, suffix)
    assert tracekit.import_traces([path], store).runs == [SAMPLE_RUN]
    events = _events(store, SAMPLE_RUN)
    kinds = [e["kind"] for e in events]  # the seventh call failed: the sample with it
    assert kinds == ["run_start", *["prompt", "model_output", "tool_call", "tool_result"] * 6,
                     "prompt", "model_output", "run_end"]  # fmt: skip
    begun = START + timedelta(seconds=1)  # the sample's first event
    assert events[0]["ts"] == begun and events[1]["ts"] == begun + timedelta(seconds=0.11)
    assert events[2]["ts"] == begun + timedelta(seconds=1.61)  # its `completed`
    assert (events[3]["ts"], events[4]["ts"]) == (begun + timedelta(seconds=1.66),
                                                  begun + timedelta(seconds=1.91))  # fmt: skip
    meta = json.loads(events[0]["attrs"])
    assert meta["imported"] == "inspect" and events[0]["name"] == TASK
    assert (meta["task"], meta["model"], meta["eval_id"], meta["inspect_run_id"]) == (
        TASK, MODEL, EVAL_ID, RUN_ID)  # fmt: skip
    assert (meta["sample_id"], meta["epoch"], meta["target"]) == ("refund-1", 1, "refund")
    assert (events[-1]["status"], events[-1]["error"]) == ("error", CRASH)

    outputs = [e for e in events if e["kind"] == "model_output"]
    assert {o["model_version"] for o in outputs[:6]} == {"gpt-4o-mini-2024-07-18"}
    assert [o["tokens_in"] for o in outputs[:6]] == [1_200 + 100 * i for i in range(6)]
    assert [o["cost_usd"] for o in outputs[:6]] == [pytest.approx(COST)] * 6  # as recorded
    assert outputs[0]["latency_ms"] == pytest.approx(1_500)
    assert (outputs[-1]["status"], outputs[-1]["error"]) == ("error", CRASH)
    attrs = json.loads(outputs[0]["attrs"])
    assert attrs["tool_calls"] == [{"id": "call_refund-1_1_01", "name": TOOL,
                                    "arguments": '{"order_id":"A-1001"}'}]  # fmt: skip
    assert attrs["usage"]["input_tokens_cache_read"] == 1_000
    assert attrs["stop_reason"] == "tool_calls" and attrs["working_time"] == 1.2
    wire = attrs["call"]["request"]["messages"]  # pooled in a .eval: put back
    assert [m["role"] for m in wire] == ["system", "user"] and "call_refs" not in attrs["call"]
    answer = json.loads(outputs[0]["output"])["messages"]
    assert answer[0]["role"] == "assistant" and answer[0]["tool_calls"][0]["function"] == TOOL

    prompts = [json.loads(e["args"])["messages"] for e in events if e["kind"] == "prompt"]
    assert [len(p) for p in prompts] == [2 + 2 * i for i in range(7)]  # input refs resolved
    assert "attachment://" not in events[1]["args"]
    assert prompts[0][1]["content"].startswith("[refund-1] My order A-1001 arrived broken")
    assert prompts[1][-1]["tool_call_id"] == "call_refund-1_1_01"
    assert json.loads(events[1]["attrs"])["tools"][0]["name"] == TOOL

    calls = [e for e in events if e["kind"] == "tool_call"]
    assert {(c["name"], c["args"]) for c in calls} == {
        (TOOL, json.dumps(ARGS, separators=(",", ":")))
    }
    assert [c["call_id"] for c in calls] == [f"call_refund-1_1_{i:02d}" for i in range(1, 7)]
    results = [e for e in events if e["kind"] == "tool_result"]
    assert json.loads(results[0]["output"]) == ORDER and results[0]["status"] == "ok"
    assert results[0]["latency_ms"] == pytest.approx(250)
    assert (results[1]["status"], results[1]["error"]) == (
        "error", "timeout: lookup_order timed out after 30s")  # fmt: skip
    assert results[1]["latency_ms"] == pytest.approx(30_000)


@pytest.mark.parametrize("suffix", FORMATS)
def test_each_sample_and_epoch_is_a_run_of_its_own(tmp_path: Path, suffix: str) -> None:
    store = tmp_path / "store"
    path = _log(tmp_path, suffix, loops=2, samples=("refund-1", "refund-2"), epochs=2,
                crash=False)  # fmt: skip
    runs = tracekit.import_traces([path], store).runs
    assert sorted(runs) == sorted(f"inspect-{EVAL_ID}-refund-{s}-{e}" for s in (1, 2)
                                  for e in (1, 2))  # fmt: skip
    for run_id in runs:
        events = _events(store, run_id)
        assert [e["kind"] for e in events].count("tool_call") == 2
        assert (events[-1]["status"], events[-1]["error"]) == ("ok", None)
        last = json.loads([e for e in events if e["kind"] == "model_output"][-1]["output"])
        assert last["messages"][0]["content"] == "Your refund of $42.50 is on its way."
        sample = run_id.removeprefix(f"inspect-{EVAL_ID}-").rsplit("-", 1)[0]
        assert question(sample).split(SECRET)[0] in events[1]["args"]  # each its own input
    later = _events(store, f"inspect-{EVAL_ID}-refund-2-1")[0]["ts"]
    assert later > _events(store, f"inspect-{EVAL_ID}-refund-1-1")[0]["ts"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_importing_again_adds_nothing_and_secrets_never_reach_the_store(
    tmp_path: Path, suffix: str
) -> None:
    store = tmp_path / "store"
    path = _log(tmp_path, suffix)
    first = tracekit.import_traces([path], store)
    again = tracekit.import_traces([path], store)
    zipped = path.with_name(f"zipped.{suffix}.gz")
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    gunzipped = tracekit.import_traces([zipped], store)  # the same runs, gzipped
    assert first.runs == [SAMPLE_RUN]
    assert again.runs == gunzipped.runs == [] and again.already == gunzipped.already == first.runs
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    assert SECRET.encode() not in raw and SECRET[8:].encode() not in raw
    prompt = _events(store, SAMPLE_RUN)[1]["args"]
    assert "arrived broken and I want a refund" in prompt  # the rest of it is kept


def test_an_older_deflated_eval_reads_the_same(tmp_path: Path) -> None:
    zstd = _log(tmp_path, "eval")
    deflated = tmp_path / "deflated.eval"
    with zipfile.ZipFile(zstd) as source, zipfile.ZipFile(deflated, "w") as target:
        assert {i.compress_type for i in source.infolist()} == {93}  # Inspect's zstd
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), zipfile.ZIP_DEFLATED)
    a, b = tmp_path / "a", tmp_path / "b"
    tracekit.import_traces([zstd], a)
    tracekit.import_traces([deflated], b)
    columns = ("kind", "ts", "name", "call_id", "args", "output", "status", "tokens_in")
    assert [[e[c] for c in columns] for e in _events(a, SAMPLE_RUN)] == [
        [e[c] for c in columns] for e in _events(b, SAMPLE_RUN)]  # fmt: skip


def test_a_zstd_eval_without_a_decompressor_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _log(tmp_path, "eval")
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "compression.zstd", None)
    with pytest.raises(
        tracekit.errors.ImportFormatError, match=r"needs Python 3\.14 or the zstandard"
    ):
        tracekit.import_traces([path], tmp_path / "store")


@pytest.mark.parametrize("suffix", FORMATS)
def test_auto_finds_an_eval_log_and_no_other_reader_claims_it(tmp_path: Path, suffix: str) -> None:
    path = _log(tmp_path, suffix)
    assert reader_for(path, "auto")[0] == "inspect"
    renamed = path.rename(path.with_name("log.zip" if suffix == "eval" else "log.txt"))
    assert reader_for(renamed, "auto")[0] == "inspect"  # by its content, whatever its name
    text = head(renamed)
    for fmt, module in READERS.items():
        if module != "inspect_log":
            reader = importlib.import_module(f"tracekit._import.{module}")
            assert not reader.sniff(renamed, text), fmt


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.json", "not json at all\n", "not an Inspect AI eval log (.eval or .json) (not JSON"),
        ("bad.json", '{"samples": []}', "expected a JSON object with an 'eval' spec"),
        ("bad.json", "[1, 2]", "expected a JSON object with an 'eval' spec"),
        ("bad.json", '{"version": 2, "status": "success", "eval": {"task": "t"}}',
         "expected the samples of the eval"),
        ("bad.eval", {"other.json": "{}"}, "expected a zip with header.json"),
        ("bad.eval", {"header.json": '{"eval": {"task": "t"}}', "samples/1_epoch_1.json": "{"},
         "its samples/1_epoch_1.json is not readable JSON"),
        ("bad.eval", "PK\x03\x04 truncated", "a damaged zip"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_an_eval_log_is_a_one_line_error(
    tmp_path: Path, name: str, content: str | dict[str, str], expected: str
) -> None:
    bad = tmp_path / name
    if isinstance(content, dict):
        _zip(bad, content)
    else:
        bad.write_text(content)
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["import", str(bad), "--store", str(store),
                                      "--format", "inspect"])  # fmt: skip
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and str(bad) in message and expected in message
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(store.rglob("*.parquet"))


@pytest.mark.parametrize("suffix", FORMATS)
def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
    tmp_path: Path, suffix: str
) -> None:
    path = _log(tmp_path, suffix)
    generated = made_test_passes(path, tmp_path, fmt="inspect" if suffix == "json" else "auto",
                                 incident="lookup-loop")  # fmt: skip
    assert SECRET not in generated and SECRET[8:] not in generated
