"""`tracekit import --format vcr` of a vcrpy cassette of OpenAI Chat Completions traffic (plain
JSON bodies), built with the SDK's own types and vcrpy's own serializer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion
from vcr.request import Request
from vcr.serialize import serialize
from vcr.serializers import yamlserializer

import tracekit
from tracekit.errors import ImportFormatError
from tracekit.testing import Recording

SECRET = "sk-live-9f8e7d6c5b4a39281706"


def _cassette(path: Path) -> Path:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": f"refund order 7 (my key {SECRET})"}]})  # fmt: skip
    answer = ChatCompletion(id="c1", object="chat.completion", created=1, model="gpt-4o-mini",
                            choices=[{"index": 0, "finish_reason": "stop", "message": {
                                "role": "assistant", "content": "done"}}],
                            usage={"prompt_tokens": 12, "completion_tokens": 3,
                                   "total_tokens": 15})  # fmt: skip
    request = Request("POST", "https://api.openai.com/v1/chat/completions", body,
                      {"Authorization": [f"Bearer {SECRET}"]})  # fmt: skip
    response = {"status": {"code": 200, "message": "OK"}, "headers": {},
                "body": {"string": answer.model_dump_json().encode()}}  # fmt: skip
    path.write_text(serialize({"requests": [request], "responses": [response]}, yamlserializer))
    return path


def test_a_chat_completion_is_a_prompt_and_a_model_output(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (run_id,) = tracekit.import_traces([_cassette(tmp_path / "c.yaml")], store).runs
    assert run_id.startswith("vcr-")
    rows = Recording(store).rows(f"SELECT * FROM events WHERE run_id = '{run_id}' ORDER BY seq")
    assert [r["kind"] for r in rows] == ["run_start", "prompt", "model_output", "run_end"]
    out = rows[2]
    assert json.loads(out["output"])["messages"][0]["content"] == "done"
    assert (out["tokens_in"], out["tokens_out"]) == (12, 3)
    assert not any(SECRET in json.dumps(r, default=str) for r in rows)


def test_a_file_that_is_not_a_cassette_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("interactions: [1, 2\n")
    with pytest.raises(ImportFormatError) as err:
        tracekit.import_traces([path], tmp_path / "store", fmt="vcr")
    assert "\n" not in str(err.value) and "vcrpy cassette" in str(err.value)
