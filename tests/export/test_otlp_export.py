"""`tracekit export --format otlp-json`: a run as one OTLP/JSON document of OTel GenAI spans,
which OpenTelemetry's own decoder accepts and `tracekit import` reads back as the same run."""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracekit
from tracekit.cli import cli
from tracekit.testing import Recording, recording

#: the columns "the same run" means; seq order is compared by comparing the lists
COLUMNS = ("kind", "name", "call_id", "args", "output", "status", "error", "tokens_in",
           "tokens_out", "cost_usd", "ts", "attrs")  # fmt: skip


@tracekit.tool
def refund(order_id: str, amount: int) -> dict[str, Any]:
    if amount < 0:
        raise ValueError(f"cannot refund {amount}")
    return {"refunded": amount, "order_id": order_id}


_model = st.tuples(st.just("model"), st.text(max_size=20), st.integers(0, 10**6),
                   st.integers(0, 10**6), st.floats(0, 5, allow_nan=False))  # fmt: skip
_tool = st.tuples(st.just("tool"), st.sampled_from(["42", "43"]), st.integers(-3, 100))
_progress = st.tuples(st.just("progress"), st.text(min_size=1, max_size=12))
STEPS = st.lists(st.one_of(_model, _tool, _progress), max_size=8)


def record(store: Path, steps: list[tuple[Any, ...]], tenant: str = "acme") -> str:
    """A run recorded through tracekit's public API: model calls, tool calls, progress."""
    with recording(store), tracekit.run(tenant=tenant) as run:
        for step in steps:
            if step[0] == "model":
                run.prompt([{"role": "user", "content": step[1]}])
                usage = {"prompt_tokens": step[2], "completion_tokens": step[3]}
                run.model_output(step[1][::-1], model="gpt-test", cost_usd=step[4], usage=usage)
            elif step[0] == "tool":
                with contextlib.suppress(ValueError):  # a failed tool call is recorded too
                    refund(step[1], step[2])
            else:
                run.progress(step[1], detail=step[1])
    return run.run_id


def the_run(store: Path, run_id: str) -> tuple[list[tuple[Any, ...]], str]:
    """The run's events (without run_start/run_end, which each store makes) and its end."""
    events = Recording(store).events(run_id)
    inner = [tuple(e[c] for c in COLUMNS) for e in events
             if e["kind"] not in ("run_start", "run_end")]  # fmt: skip
    return inner, events[-1]["status"]


def roundtrip(store: Path, run_id: str, work: Path) -> tuple[Path, str]:
    path = tracekit.export_otlp(run_id, work / "run.otlp.json", store=store)
    (imported,) = tracekit.import_traces([path], work / "again").runs
    return path, imported


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_import_of_export_is_the_same_run(steps: list[tuple[Any, ...]]) -> None:
    """``import(export(run)) == run``: the same events in the same seq order, each with the
    same kind, name, call_id, args, output, status, error, tokens_in/out, cost_usd, ts (to the
    microsecond the store keeps) and attrs, and the same run status (ok or error; a halted run
    comes back error, see the halted test). Not compared: the run id
    (``otel-<trace id>`` after the import), event ids, release stamp, and the run_start/run_end
    rows each store writes itself."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_id = record(work / "store", steps)
        _, imported = roundtrip(work / "store", run_id, work)
        assert imported.startswith("otel-")
        assert the_run(work / "again", imported) == the_run(work / "store", run_id)


def test_the_document_is_genai_spans_with_string_ints_and_times(tmp_path: Path) -> None:
    steps = [("model", "hi", 11, 4, 0.25), ("tool", "42", 30), ("tool", "42", -1),
             ("progress", "found")]  # fmt: skip
    run_id = record(tmp_path / "store", steps)
    path, _ = roundtrip(tmp_path / "store", run_id, tmp_path)
    doc = json.loads(path.read_text())
    (resource,) = doc["resourceSpans"]
    stamp = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}
    assert stamp["tracekit.run_id"] == {"stringValue": run_id}
    assert stamp["tracekit.tenant"] == {"stringValue": "acme"} and "tracekit.release_id" in stamp
    spans = resource["scopeSpans"][0]["spans"]
    ops = [_attrs(s)["gen_ai.operation.name"]["stringValue"] for s in spans]
    assert ops == ["invoke_agent", "chat", "execute_tool", "execute_tool"]
    chat = _attrs(spans[1])
    assert chat["gen_ai.usage.input_tokens"] == {"intValue": "11"}
    assert chat["tracekit.cost_usd"] == {"doubleValue": 0.25}
    assert json.loads(chat["gen_ai.input.messages"]["stringValue"]) == [
        {"role": "user", "content": "hi"}]  # fmt: skip
    tool = _attrs(spans[2])
    assert tool["gen_ai.tool.name"]["stringValue"] == "refund"
    assert json.loads(tool["gen_ai.tool.call.result"]["stringValue"])["refunded"] == 30
    assert spans[3]["status"]["code"] == 2 and "cannot refund" in spans[3]["status"]["message"]
    for span in spans:
        assert isinstance(span["startTimeUnixNano"], str) and len(span["traceId"]) == 32
        assert len(span["spanId"]) == 16 and span.get("parentSpanId", spans[0]["spanId"])
    kinds = [_attrs(e)["tracekit.kind"]["stringValue"] for e in spans[0]["events"]]
    assert kinds == ["prompt", "model_output", "tool_call", "tool_result", "tool_call",
                     "tool_result", "progress"]  # fmt: skip
    again = tracekit.export_otlp(run_id, tmp_path / "again.json", store=tmp_path / "store")
    assert again.read_bytes() == path.read_bytes()  # ids from the run id and seq


def test_opentelemetrys_own_decoder_reads_the_document(tmp_path: Path) -> None:
    json_format = pytest.importorskip("google.protobuf.json_format")
    service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    run_id = record(tmp_path / "store", [("model", "hi", 1, 2, 0.1), ("tool", "42", 5)])
    path = tracekit.export_otlp(run_id, tmp_path / "run.json", store=tmp_path / "store")
    text = path.read_text()
    json_format.Parse(text, service.ExportTraceServiceRequest())  # every field name and type known
    # OTLP/JSON's one deviation from protobuf's JSON mapping: ids are hex, not base64
    request = json_format.Parse(_base64_ids(text), service.ExportTraceServiceRequest())
    spans = request.resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans][1:] == ["chat gpt-test", "execute_tool refund"]
    assert spans[1].parent_span_id == spans[0].span_id and len(spans[0].trace_id) == 16
    assert spans[0].trace_id.hex() == json.loads(text)["resourceSpans"][0]["scopeSpans"][0][
        "spans"][0]["traceId"]  # fmt: skip
    assert spans[1].attributes[0].value.string_value == "chat"


def test_the_cli_writes_otlp_json_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    store = tmp_path / "store"
    run_id = record(store, [("model", "hi", 1, 2, 0.1)])
    runner = CliRunner()
    out = tmp_path / "run.json"
    done = runner.invoke(cli, ["export", "--run", run_id, "--format", "otlp-json", "-o",
                               str(out), "--store", str(store)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "OTLP/JSON" in done.output and json.loads(out.read_text())["resourceSpans"]
    bad = runner.invoke(cli, ["export", "--run", run_id, "--format", "zipkin", "--store",
                              str(store)])  # fmt: skip
    assert bad.exit_code == 2 and "zipkin" in bad.output
    two = runner.invoke(cli, ["export", "--run", run_id, "--run", run_id, "--format",
                              "otlp-json", "--store", str(store)])  # fmt: skip
    assert two.exit_code == 2 and "exactly one --run" in two.output
    bundle = runner.invoke(cli, ["export", "--run", run_id, "--store", str(store)])
    assert bundle.exit_code == 2 and "--incident is required" in bundle.output


def _base64_ids(text: str) -> str:
    def encode(doc: Any) -> Any:
        if isinstance(doc, dict):
            return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in _IDS else encode(v)
                    for k, v in doc.items()}  # fmt: skip
        return [encode(v) for v in doc] if isinstance(doc, list) else doc

    return json.dumps(encode(json.loads(text)))


_IDS = ("traceId", "spanId", "parentSpanId")


def _attrs(item: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in item["attributes"]}


def test_a_halted_run_keeps_its_guard_decision(tmp_path: Path) -> None:
    """The guard's decision (an event only tracekit has) rides along as a ``tracekit.event``."""
    tracekit.configure(store=tmp_path / "store", guard=tracekit.Guard(max_repeats=2))
    try:
        with pytest.raises(tracekit.Halted), tracekit.run(tenant="acme") as run:
            for _ in range(4):
                refund("42", 30)
    finally:
        tracekit.shutdown()
        tracekit.configure(guard=None)
    _, imported = roundtrip(tmp_path / "store", run.run_id, tmp_path)
    events, status = the_run(tmp_path / "again", imported)
    recorded, halted = the_run(tmp_path / "store", run.run_id)
    assert events == recorded and [e[:2] for e in events][-1] == ("guard", "refund")
    # OTel spans end OK or ERROR, and an import's run ends ok or error: halted comes back error
    assert (halted, status) == ("halted", "error")
