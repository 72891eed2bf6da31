"""Columns encoded on the writer thread (``Deferred``): what an instrumented SDK call hands the
recorder instead of JSON text, so the agent's step never waits on encoding.

The text must be the same as if it had been encoded in the call, redaction must still apply,
and an encoder that fails must cost the row its payload only (never the row, never the batch).
The prompt taken as sent is tested with the SDKs, in tests/integrations/test_sdk_instrument.py.
"""

from __future__ import annotations

import json
from typing import Any

from tracekit import Redactor, canonical_json
from tracekit._capture.rows import Deferred, Event, MemorySink, event_row, to_batch

STATIC = ("run_1", None, "run_1", "acme", "rel", "m", "p", "t")


def _row(seq: int, args: Any = None, output: Any = None, attrs: Any = None) -> tuple[Any, ...]:
    return event_row(STATIC, seq, 0, 1_000_000, "prompt", "m", f"call_{seq}", args, output,
                     attrs=attrs)  # fmt: skip


def _broken(value: Any) -> str:
    raise RuntimeError("the answer object was closed")


def test_a_deferred_column_is_encoded_in_the_batch_as_it_would_have_been_in_the_call() -> None:
    prompt = {"messages": [{"role": "user", "content": "refund 42"}], "tools": []}
    rows = [_row(0, Deferred((canonical_json, prompt))), _row(1, canonical_json(prompt))]
    batch = to_batch(rows, Redactor(), "w1", 0)
    deferred, eager = batch.column("args").to_pylist()
    assert deferred == eager == canonical_json(prompt)


def test_a_deferred_secret_is_redacted_like_any_other() -> None:
    sent = {"messages": [{"role": "user", "content": "my key is sk-live-abcdefghijklmnop1234"}]}
    batch = to_batch([_row(0, Deferred((canonical_json, sent)))], Redactor(), "w1", 0)
    [args] = batch.column("args").to_pylist()
    assert "sk-live-abcdefghijklmnop1234" not in args
    assert json.loads(batch.column("attrs").to_pylist()[0])["redacted"] == 1


def test_an_encoder_that_fails_costs_its_column_not_the_row_or_the_batch() -> None:
    rows = [_row(0, "{}", Deferred((_broken, object())), Deferred((_broken, None))), _row(1, "[1]")]
    batch = to_batch(rows, Redactor(), "w1", 0)
    assert batch.num_rows == 2
    assert batch.column("call_id").to_pylist() == ["call_0", "call_1"]
    output = json.loads(batch.column("output").to_pylist()[0])
    assert output == {"$unencodable": "RuntimeError: the answer object was closed"}
    assert batch.column("args").to_pylist() == ["{}", "[1]"]


def test_a_memory_sink_reads_deferred_columns_as_text() -> None:
    sink = MemorySink()
    sink.emit(_row(0, Deferred((canonical_json, [1, 2])), attrs=Deferred((lambda v: None, 0))))
    [event] = sink.events()
    assert isinstance(event, Event) and event.args == "[1,2]" and event.attrs is None
