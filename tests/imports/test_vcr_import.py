"""`tracekit import --format vcr` of vcrpy cassettes of model API traffic (OpenAI Chat
Completions, OpenAI Responses, Anthropic Messages; JSON bodies and SSE streams; gzipped and
binary bodies), built with the SDKs' own types and vcrpy's own serializer: each interaction a
model call and an http event, the tool results the next request carries a tool call between
them, on the responses' Date clock, scrubbed, idempotent, exported back as a cassette, and an
imported runaway carried through export, make-test and the generated test's pytest run."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _agent_logs import openhands_events, swe_agent_traj, write_events, write_traj
from _e2e import made_test_passes
from _langfuse_logs import langfuse_trace
from _langfuse_logs import write_json as write_langfuse
from _langsmith_logs import openai_runs, write_runs
from _otel_traces import otlp_json, refund_agent_spans
from _vcr_cassettes import (
    API_KEY,
    ARGS,
    GAVE_UP,
    RESULT,
    SECRET,
    START,
    SYSTEM,
    anthropic_messages,
    openai_chat,
    openai_responses,
    response,
    write_cassette,
)
from click.testing import CliRunner
from vcr.request import Request
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

import tracekit
from tracekit._import import vcr
from tracekit._import.source import head, reader_for
from tracekit.cli import cli
from tracekit.testing import Recording

_APIS = {"openai.chat": openai_chat, "openai.responses": openai_responses,
         "anthropic.messages": anthropic_messages}  # fmt: skip
_MODELS = {"openai.chat": "gpt-4o-mini-2024-07-18", "openai.responses": "gpt-4.1-mini-2025-04-14",
           "anthropic.messages": "claude-sonnet-4-5-20250929"}  # fmt: skip
_LOOP = ["prompt", "http", "model_output", "tool_call", "tool_result"]


def _events(store: Path, run_id: str) -> list[dict[str, Any]]:
    return Recording(store).rows(f"SELECT * FROM events WHERE run_id = '{run_id}' ORDER BY seq")


def _imported(path: Path, store: Path, fmt: str = "vcr") -> list[dict[str, Any]]:
    (run_id,) = tracekit.import_traces([path], store, fmt=fmt).runs
    assert run_id.startswith("vcr-")
    return _events(store, run_id)


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def _text(message: dict[str, Any]) -> str:
    """The text of an assistant message, whichever API's shape it has."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content)
    return str(content or "")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("api", list(_APIS))
def test_each_api_is_model_calls_with_the_tool_calls_between_them(
    tmp_path: Path, api: str, stream: bool
) -> None:
    path = write_cassette(tmp_path / "refund.yaml", _APIS[api](6, stream=stream))
    events = _imported(path, tmp_path / "store")
    assert [e["kind"] for e in events] == ["run_start", *_LOOP * 6, *_LOOP[:3], "run_end"]
    start = json.loads(events[0]["attrs"])
    assert start["imported"] == "vcr" and start["interactions"] == 7
    assert start["hosts"] == ["api.anthropic.com" if "anthropic" in api else "api.openai.com"]
    assert events[0]["name"] == "refund" and events[0]["model_version"] == _MODELS[api]
    outputs = _of(events, "model_output")
    assert [o["step"] for o in outputs] == list(range(1, 8))
    assert {o["model_version"] for o in outputs} == {_MODELS[api]}
    attrs = json.loads(outputs[0]["attrs"])
    assert attrs["api"] == api and attrs["stream"] is stream and attrs["http_status"] == 200
    declared = attrs["tool_calls"]
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in declared] == [
        ("call_01", "refund", ARGS)]  # fmt: skip
    assert "tool_calls" not in json.loads(outputs[-1]["attrs"])
    assert _text(json.loads(outputs[-1]["output"])["messages"][0]) == GAVE_UP
    tokens_in = {"openai.chat": 120, "openai.responses": 200, "anthropic.messages": 300}[api]
    tokens_out = {"openai.chat": 18, "openai.responses": 21, "anthropic.messages": 42}[api]
    assert (outputs[0]["tokens_in"], outputs[0]["tokens_out"]) == (tokens_in, tokens_out)
    assert all(o["cost_usd"] and o["cost_usd"] > 0 for o in outputs)  # the shipped prices
    calls, results = _of(events, "tool_call"), _of(events, "tool_result")
    assert [c["call_id"] for c in calls] == [r["call_id"] for r in results] == [
        f"call_{i:02d}" for i in range(1, 7)]  # fmt: skip
    assert {(c["name"], c["args"], c["status"]) for c in calls} == {
        ("refund", '{"amount":30,"order_id":"42"}', "started")
    }
    assert {(r["status"], json.loads(r["output"])) for r in results} == {("ok", RESULT)}
    prompt = json.loads(_of(events, "prompt")[0]["args"])
    said = prompt.get("system") or prompt.get("instructions") or prompt["messages"][0]["content"]
    assert said == SYSTEM and prompt["tools"]
    assert events[1]["ts"] == START  # the first response's Date


@pytest.mark.parametrize("api", list(_APIS))
def test_a_streamed_answer_is_the_answer_its_events_add_up_to(tmp_path: Path, api: str) -> None:
    plain = _imported(write_cassette(tmp_path / "a.yaml", _APIS[api](2)), tmp_path / "s1")
    streamed = _imported(write_cassette(tmp_path / "b.yaml", _APIS[api](2, stream=True)),
                         tmp_path / "s2")  # fmt: skip

    def said(events: list[dict[str, Any]]) -> list[Any]:
        return [(_text(json.loads(o["output"])["messages"][0]),
                 json.loads(o["attrs"]).get("tool_calls"), o["tokens_in"], o["tokens_out"],
                 o["model_version"]) for o in _of(events, "model_output")]  # fmt: skip

    assert said(streamed) == said(plain)
    stream_http = json.loads(_of(streamed, "http")[0]["output"])
    assert stream_http["streamed"] is True and "streamed" not in json.loads(
        _of(plain, "http")[0]["output"])  # fmt: skip


@pytest.mark.parametrize(
    ("api", "cut"),
    [
        ("openai.responses", "event: response.completed"),
        ("anthropic.messages", "event: message_delta"),
    ],
)
def test_a_stream_cut_short_is_what_it_streamed(tmp_path: Path, api: str, cut: str) -> None:
    exchanges = _APIS[api](1, stream=True)
    request, got = exchanges[0]
    body = got["body"]["string"]
    exchanges[0] = (request, got | {"body": {"string": body[: body.index(cut.encode())]}})
    events = _imported(write_cassette(tmp_path / "cut.yaml", exchanges), tmp_path / "store")
    declared = json.loads(_of(events, "model_output")[0]["attrs"])["tool_calls"]
    assert [(c["id"], json.loads(c["arguments"])) for c in declared] == [("call_01", ARGS)]
    assert [e["kind"] for e in events][1:-1] == [*_LOOP, *_LOOP[:3]]


def test_parallel_tool_calls_are_declared_and_each_answered(tmp_path: Path) -> None:
    for api, build in _APIS.items():
        path = write_cassette(tmp_path / f"{api}.yaml", build(parallel=True, stream=True))
        events = _imported(path, tmp_path / f"store-{api}")
        kinds = [e["kind"] for e in events]
        assert kinds == ["run_start", *_LOOP[:3], "tool_call", "tool_result", "tool_call",
                         "tool_result", *_LOOP[:3], "run_end"], api  # fmt: skip
        declared = json.loads(_of(events, "model_output")[0]["attrs"])["tool_calls"]
        assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in declared] == [
            ("call_lookup", "lookup_order", {"order_id": "42"}),
            ("call_refund", "refund", ARGS)], api  # fmt: skip
        calls = _of(events, "tool_call")
        assert [(c["call_id"], c["name"]) for c in calls] == [
            ("call_lookup", "lookup_order"), ("call_refund", "refund")]  # fmt: skip


def test_a_tool_result_from_the_next_request_is_between_the_model_calls(tmp_path: Path) -> None:
    exchanges = anthropic_messages(1)
    request, got = exchanges[1]
    body = json.loads(request.body)
    body["messages"][-1]["content"][0] |= {"is_error": True, "content": "card declined"}
    exchanges[1] = (Request("POST", request.uri, json.dumps(body), dict(request.headers)), got)
    events = _imported(write_cassette(tmp_path / "c.yaml", exchanges), tmp_path / "store")
    output, call, result, prompt = events[3:7]
    assert (output["kind"], call["kind"], result["kind"], prompt["kind"]) == (
        "model_output", "tool_call", "tool_result", "prompt")  # fmt: skip
    assert output["ts"] < call["ts"] < result["ts"] < prompt["ts"]
    assert (result["status"], json.loads(result["output"]), result["error"]) == (
        "error", "card declined", '"card declined"')  # fmt: skip
    assert result["latency_ms"] == pytest.approx(500, rel=0.01)  # within the 2 s between them


def test_the_clock_is_the_date_header_else_a_fixed_one(tmp_path: Path) -> None:
    dated = _imported(write_cassette(tmp_path / "d.yaml", openai_chat(2)), tmp_path / "s1")
    prompts = [p["ts"] for p in _of(dated, "prompt")]
    assert prompts == [START + timedelta(seconds=s) for s in (0, 2, 4)]
    undated = _imported(write_cassette(tmp_path / "u.yaml", openai_chat(2, dated=False)),
                        tmp_path / "s2")  # fmt: skip
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    assert [p["ts"] for p in _of(undated, "prompt")] == [epoch + timedelta(seconds=s)
                                                         for s in range(3)]  # fmt: skip
    same = openai_chat(2, dated=False)
    for _, got in same:  # all answered within the same second: 1 ms apart, in cassette order
        got["headers"]["Date"] = ["Sat, 14 Mar 2026 09:26:53 GMT"]
    close = _imported(write_cassette(tmp_path / "s.yaml", same), tmp_path / "s3")
    assert [p["ts"] for p in _of(close, "prompt")] == [START + timedelta(milliseconds=m)
                                                       for m in range(3)]  # fmt: skip
    assert [e["kind"] for e in close][1:-1] == [*_LOOP * 2, *_LOOP[:3]]


def test_gzipped_and_binary_bodies_are_read(tmp_path: Path) -> None:
    exchanges = openai_chat(2, gzip_body=True)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
    receipt = Request("GET", "https://files.example.com/receipt.png?token=abc123", None,
                      {"Accept": "image/png"})  # fmt: skip
    exchanges.insert(1, (receipt, response(png, at=1) | {"headers": {"Content-Type": [
        "image/png"], "Date": ["Sat, 14 Mar 2026 09:26:54 GMT"]}}))  # fmt: skip
    path = write_cassette(tmp_path / "z.yaml", exchanges)
    assert "!!binary" in path.read_text()  # vcrpy wrote the gzipped and the PNG bodies so
    events = _imported(path, tmp_path / "store")
    outputs = _of(events, "model_output")
    assert len(outputs) == 3 and _text(json.loads(outputs[-1]["output"])["messages"][0]) == GAVE_UP
    assert json.loads(outputs[0]["attrs"])["tool_calls"][0]["id"] == "call_01"
    https = [json.loads(h["output"]) for h in _of(events, "http")]
    assert "content-encoding" not in https[0]["headers"] and json.loads(https[0]["text"])["id"]
    assert https[1]["base64"] and "text" not in https[1]
    fetched = json.loads(_of(events, "http")[1]["args"])
    assert fetched["url"] == "https://files.example.com/receipt.png?token=[REDACTED]"
    assert _of(events, "http")[1]["name"] == "GET files.example.com/receipt.png"
    bundle = _exported(tmp_path, events[0]["run_id"])
    _, responses = deserialize((bundle / "cassette.yaml").read_text(), yamlserializer)
    assert responses[1]["body"]["string"] == png  # served back byte for byte
    whole = tmp_path / "whole.yaml.gz"  # the whole file gzipped: the same run
    whole.write_bytes(gzip.compress(path.read_bytes()))
    again = tracekit.import_traces([whole], tmp_path / "store")
    assert again.runs == [] and again.already == [events[0]["run_id"]]


def _exported(tmp_path: Path, run_id: str) -> Path:
    return Path(tracekit.export_incident([run_id], "loop", out=tmp_path / "fx",
                                         store=tmp_path / "store"))  # fmt: skip


def test_http_events_export_as_the_cassette_without_secrets(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "refund.yaml", anthropic_messages(3, stream=True))
    store = tmp_path / "store"
    first = tracekit.import_traces([path], store)
    again = tracekit.import_traces([path], store)
    assert again.runs == [] and again.already == first.runs
    events = _events(store, first.runs[0])
    https = _of(events, "http")
    assert len(https) == 4 and {h["name"] for h in https} == {"POST api.anthropic.com/v1/messages"}
    sent = json.loads(https[0]["args"])
    assert set(sent) == {"method", "url", "headers", "text"} and sent["method"] == "POST"
    assert sent["headers"]["x-api-key"] == "[REDACTED]"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    got = json.loads(https[0]["output"])
    assert set(got) == {"status", "reason", "headers", "text", "streamed"}
    assert got["headers"]["set-cookie"] == "[REDACTED]" and got["status"] == 200
    raw = b"".join(p.read_bytes() for p in store.rglob("*.parquet"))
    for secret in (SECRET, API_KEY, SECRET[8:], API_KEY[13:]):
        assert secret.encode() not in raw
    bundle = _exported(tmp_path, first.runs[0])
    text = (bundle / "cassette.yaml").read_text()
    assert SECRET not in text and API_KEY not in text and SECRET[8:] not in text
    requests, responses = deserialize(text, yamlserializer)
    assert [r.uri for r in requests] == [path_request.uri for path_request, _ in
                                         anthropic_messages(3, stream=True)]  # fmt: skip
    assert b"event: message_start" in responses[0]["body"]["string"]
    assert json.loads(requests[1].body)["messages"][1]["content"][0]["id"] == "call_01"


def test_an_error_response_is_a_failed_model_output(tmp_path: Path) -> None:
    exchanges = openai_responses(1)
    request, _ = exchanges[-1]
    failure = {"error": {"message": "Rate limit reached for gpt-4.1-mini", "type": "requests",
                         "code": "rate_limit_exceeded"}}  # fmt: skip
    exchanges[-1] = (request, response(json.dumps(failure).encode(), status=429, at=2,
                                       reason="Too Many Requests"))  # fmt: skip
    events = _imported(write_cassette(tmp_path / "e.yaml", exchanges), tmp_path / "store")
    last = _of(events, "model_output")[-1]
    assert last["status"] == "error" and last["error"].startswith("HTTP 429: {")
    assert "Rate limit reached" in last["error"]
    assert _of(events, "http")[-1]["status"] == "error"
    assert events[-1]["status"] == "error" and "HTTP 429" in events[-1]["error"]


def test_auto_finds_a_cassette_and_claims_no_other_format(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "refund.yaml", openai_chat(2))
    assert reader_for(path, "auto")[0] == "vcr"
    zipped = tmp_path / "refund.yaml.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    assert reader_for(zipped, "auto")[0] == "vcr"
    others = [write_traj(tmp_path / "a.traj", swe_agent_traj()),
              write_events(tmp_path / "oh.json", openhands_events()),
              write_events(tmp_path / "oh.jsonl", openhands_events(), lines=True),
              write_langfuse(tmp_path / "lf.json", langfuse_trace()),
              write_runs(tmp_path / "ls.json", openai_runs()),
              tmp_path / "otel.json"]  # fmt: skip
    others[-1].write_text(json.dumps(otlp_json(refund_agent_spans())))
    for other in others:
        assert not vcr.sniff(other, head(other)), other.name
        assert reader_for(other, "auto")[0] != "vcr", other.name


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("interactions: [1, 2\n", "not a vcrpy cassette"),
        ("interactions:\n- 1\nversion: 1\n", "not a vcrpy cassette"),
        ("interactions: []\nversion: 1\n", "expected at least one interaction"),
        ("- request: {}\n", "not a vcrpy cassette"),
    ],
)
def test_a_file_that_is_not_a_cassette_is_a_one_line_error(
    tmp_path: Path, content: str, expected: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["import", str(bad), "--store", str(store),
                                      "--format", "vcr"])  # fmt: skip
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and str(bad) in message and expected in message
    assert "Traceback" not in result.output
    assert not list(store.rglob("*.parquet"))


@pytest.mark.parametrize("api", ["openai.chat", "anthropic.messages"])
def test_an_imported_runaway_is_exported_made_a_test_and_the_test_passes(
    tmp_path: Path, api: str
) -> None:
    path = write_cassette(tmp_path / "refund.yaml", _APIS[api](6, stream=True))
    generated = made_test_passes(path, tmp_path, fmt="vcr")
    assert SECRET not in generated and SECRET[8:] not in generated and API_KEY not in generated
    assert "HALT_BY_STEP = 4" in generated  # the 4th identical refund is where the guard halts
    cassette = tmp_path / "project" / "fixtures" / "incidents" / "refund-loop" / "cassette.yaml"
    text = cassette.read_text()
    assert text.count("- request:") == 7
    assert SECRET not in text and SECRET[8:] not in text and API_KEY not in text
