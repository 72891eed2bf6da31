"""The recording API end to end: real store in tmp_path, read back with ``tracekit.connect``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import types
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracekit
from tracekit import Release


def q(root: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = tracekit.connect(root)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def events(root: Path, run_id: str, cols: str = "kind, name, step, status") -> list[tuple]:
    return q(root, f"SELECT {cols} FROM events WHERE run_id = ? ORDER BY seq", [run_id])


class AnthropicUsage(pydantic.BaseModel):
    input_tokens: int
    output_tokens: int


class Opaque:
    __slots__ = ()


class BrokenDump:
    def model_dump(self, **kwargs: Any) -> Any:
        raise RuntimeError("nope")


# -- the basic decisions -----------------------------------------------------------------------
def test_run_prompt_output_progress_error(store: Path) -> None:
    with tracekit.run(tenant="acme", ticket="T-1") as run:
        assert tracekit.current_run() is run
        run.prompt([{"role": "user", "content": "hi"}], temperature=0.5)
        run.model_output("hello", usage={"prompt_tokens": 11, "completion_tokens": 4},
                         cost_usd=0.25, latency_ms=12.5)
        run.progress("order found", order="A-1")
        run.model_output("again", tool_calls=[{"name": "x"}], model="gpt-other",
                         usage={"input_tokens": 7, "output_tokens": 2}, cost_usd=0.5)
        run.error(ValueError("bad order"))
        run.error("plain text problem", retry=2)
        assert run.step == 2
    assert tracekit.current_run() is None
    tracekit.shutdown()
    rows = events(store, run.run_id, "seq, kind, name, step, status, args, output, error, "
                  "tokens_in, tokens_out, cost_usd, latency_ms, attrs, tenant, schema_version")
    assert [r[0] for r in rows] == list(range(8))  # seq gap-free from 0
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("run_start", None, 0, "running"),
        ("prompt", "unknown", 0, None),
        ("model_output", "unknown", 1, "ok"),
        ("progress", "order found", 1, "ok"),
        ("model_output", "gpt-other", 2, "ok"),
        ("error", None, 2, "error"),
        ("error", None, 2, "error"),
        ("run_end", None, 2, "ok"),
    ]
    start, prompt, out1, progress, out2, err1, err2, _ = rows
    assert json.loads(start[12]) == {"ticket": "T-1"}
    assert json.loads(prompt[5]) == [{"role": "user", "content": "hi"}]
    assert json.loads(prompt[12]) == {"temperature": 0.5}
    assert json.loads(out1[6]) == {"content": "hello"}
    assert out1[8:12] == (11, 4, 0.25, 12.5)
    assert json.loads(out2[6]) == {"content": "again", "tool_calls": [{"name": "x"}]}
    assert out2[8:11] == (7, 2, 0.5)
    assert json.loads(progress[12]) == {"order": "A-1"}
    assert err1[7] == "ValueError: bad order"
    assert err2[7] == "plain text problem"
    assert json.loads(err2[12]) == {"retry": 2}
    assert {r[13] for r in rows} == {"acme"}
    assert {r[14] for r in rows} == {tracekit.SCHEMA_VERSION}


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}, (10, 3)),
        ({"input_tokens": 8, "output_tokens": 5}, (8, 5)),
        (types.SimpleNamespace(prompt_tokens=6, completion_tokens=1), (6, 1)),
        (AnthropicUsage(input_tokens=4, output_tokens=9), (4, 9)),
        ({"input_tokens": 0, "output_tokens": 0, "prompt_tokens": 99}, (0, 0)),
        ({"prompt_tokens": "12", "completion_tokens": None}, (12, None)),
        ({"prompt_tokens": "lots"}, (None, None)),
        ("garbage", (None, None)),
        (None, (None, None)),
    ],
)
def test_usage_styles(store: Path, usage: Any, expected: tuple[Any, Any]) -> None:
    with tracekit.run(tenant="t") as run:
        run.model_output("x", usage=usage)
    tracekit.flush()
    assert events(store, run.run_id, "tokens_in, tokens_out")[1] == expected


# -- tools ---------------------------------------------------------------------------------------
@tracekit.tool
def lookup(order_id: str, verbose: bool = False, *, region: str = "eu") -> dict[str, Any]:
    time.sleep(0.02)
    return {"order": order_id, "verbose": verbose, "region": region}


@tracekit.tool(name="refund", writes=True)
def refund_order(order_id: str, amount: float) -> str:
    if amount > 100:
        raise ValueError(f"amount {amount} too large")
    return "refunded"


@tracekit.tool
async def async_search(query: str, limit: int = 3) -> list[str]:
    await asyncio.sleep(0.01)
    if limit < 0:
        raise LookupError("negative limit")
    return [query] * limit


def test_sync_tool_call_and_result(store: Path) -> None:
    with tracekit.run(tenant="t") as run:
        run.model_output("calling")
        assert lookup("A-1", True, region="us") == {"order": "A-1", "verbose": True,
                                                    "region": "us"}
        assert lookup(order_id="B-2") == {"order": "B-2", "verbose": False, "region": "eu"}
        assert refund_order("A-1", 5.0) == "refunded"
        with pytest.raises(ValueError, match="too large"):
            refund_order("A-1", 500)
    tracekit.flush()
    rows = events(store, run.run_id,
                  "kind, name, call_id, step, args, output, status, error, latency_ms, attrs")
    tools = [r for r in rows if r[0] in ("tool_call", "tool_result")]
    assert [(r[0], r[1], r[2]) for r in tools] == [
        ("tool_call", "lookup", "call_1"), ("tool_result", "lookup", "call_1"),
        ("tool_call", "lookup", "call_2"), ("tool_result", "lookup", "call_2"),
        ("tool_call", "refund", "call_3"), ("tool_result", "refund", "call_3"),
        ("tool_call", "refund", "call_4"), ("tool_result", "refund", "call_4"),
    ]
    assert {r[3] for r in tools} == {1}
    assert json.loads(tools[0][4]) == {"order_id": "A-1", "verbose": True, "region": "us"}
    assert json.loads(tools[2][4]) == {"order_id": "B-2"}
    assert json.loads(tools[1][5]) == {"order": "A-1", "verbose": True, "region": "us"}
    assert tools[0][6] == "started"
    assert tools[1][6] == "ok"
    assert tools[1][8] >= 19.0  # the tool slept 20 ms
    assert tools[0][8] is None
    assert json.loads(tools[4][9]) == {"writes": True}
    assert tools[0][9] is None
    assert json.loads(tools[5][5]) == "refunded"
    failed = tools[7]
    assert failed[5] is None
    assert failed[6] == "error"
    assert failed[7] == "ValueError: amount 500 too large"
    assert failed[8] is not None and failed[8] >= 0
    # a handled tool error does not fail the run
    assert rows[-1][:1] == ("run_end",) and rows[-1][6] == "ok"


def test_async_tool(store: Path) -> None:
    async def agent() -> str:
        async with tracekit.run(tenant="t") as run:
            assert await async_search("x", limit=2) == ["x", "x"]
            with pytest.raises(LookupError):
                await async_search("y", -1)
        return run.run_id

    run_id = asyncio.run(agent())
    tracekit.flush()
    rows = events(store, run_id, "kind, name, call_id, args, output, status, error, latency_ms")
    assert [r[:3] for r in rows[1:-1]] == [
        ("tool_call", "async_search", "call_1"), ("tool_result", "async_search", "call_1"),
        ("tool_call", "async_search", "call_2"), ("tool_result", "async_search", "call_2"),
    ]
    assert json.loads(rows[1][3]) == {"query": "x", "limit": 2}
    assert json.loads(rows[2][4]) == ["x", "x"]
    assert rows[2][7] >= 9.0
    assert json.loads(rows[3][3]) == {"query": "y", "limit": -1}
    assert rows[4][5:7] == ("error", "LookupError: negative limit")


def test_concurrent_async_runs_keep_their_own_tool_calls(store: Path) -> None:
    async def agent(tenant: str) -> str:
        async with tracekit.run(tenant=tenant) as run:
            for i in range(3):
                await async_search(f"{tenant}-{i}", 1)
        return run.run_id

    async def main() -> list[str]:
        return await asyncio.gather(agent("a"), agent("b"), agent("c"))

    ids = asyncio.run(main())
    tracekit.flush()
    for run_id, tenant in zip(ids, "abc", strict=True):
        rows = events(store, run_id, "kind, args, tenant, call_id, seq")
        calls = [json.loads(r[1])["query"] for r in rows if r[0] == "tool_call"]
        assert calls == [f"{tenant}-{i}" for i in range(3)]
        assert {r[2] for r in rows} == {tenant}
        assert [r[4] for r in rows] == list(range(8))


def test_call_tool(store: Path) -> None:
    def plain(a: int, b: int = 0) -> int:
        return a + b

    with tracekit.run(tenant="t") as run:
        assert run.call_tool("adder", plain, 2, b=3) == 5
        with pytest.raises(ZeroDivisionError):
            run.call_tool("divider", lambda x: 1 / x, 0)
    tracekit.flush()
    rows = events(store, run.run_id, "kind, name, call_id, args, output, status, error")
    assert [r[:3] for r in rows[1:-1]] == [
        ("tool_call", "adder", "call_1"), ("tool_result", "adder", "call_1"),
        ("tool_call", "divider", "call_2"), ("tool_result", "divider", "call_2"),
    ]
    args = json.loads(rows[1][3])
    assert args in ({"*args": [2], "b": 3}, {"a": 2, "b": 3})
    assert json.loads(rows[2][4]) == 5
    assert rows[4][5] == "error" and rows[4][6].startswith("ZeroDivisionError")


def test_tool_outside_a_run_just_runs(store: Path) -> None:
    assert tracekit.current_run() is None
    assert refund_order("Z", 1) == "refunded"
    with pytest.raises(ValueError):
        refund_order("Z", 1000)
    assert asyncio.run(async_search("q", 1)) == ["q"]
    assert refund_order.__name__ == "refund_order"
    assert refund_order.__tracekit_tool__ == {"name": "refund", "writes": True}
    tracekit.flush()
    assert q(store, "SELECT count(*) FROM events") == [(0,)]


def test_methods_as_tools_drop_self(store: Path) -> None:
    class Shop:
        @tracekit.tool
        def price(self, sku: str) -> int:
            return 3

    with tracekit.run(tenant="t") as run:
        Shop().price("S-1")
    tracekit.flush()
    assert json.loads(events(store, run.run_id, "args")[1][0]) == {"sku": "S-1"}


# -- lineage, identity, release ------------------------------------------------------------------
def test_sub_agents_three_levels(store: Path) -> None:
    with tracekit.run(tenant="t") as root:
        with tracekit.run(tenant="t", parent=root) as child:
            assert tracekit.current_run() is child
            with tracekit.run(tenant="t", parent=child) as grandchild:
                lookup("G")
            assert tracekit.current_run() is child
        assert tracekit.current_run() is root
    with tracekit.run(tenant="t", parent="run_external") as by_id:
        pass
    tracekit.flush()
    got = {r[0]: r[1:] for r in q(
        store, "SELECT run_id, parent_run_id, root_run_id, count(*) FROM events GROUP BY ALL")}
    assert got[root.run_id] == (None, root.run_id, 2)
    assert got[child.run_id] == (root.run_id, root.run_id, 2)
    assert got[grandchild.run_id] == (child.run_id, root.run_id, 4)  # the tool call is its own
    assert got[by_id.run_id] == ("run_external", "run_external", 2)
    runs = {r[0]: r[1:] for r in q(store, "SELECT run_id, parent_run_id, root_run_id FROM runs")}
    assert runs[grandchild.run_id] == (child.run_id, root.run_id)
    with pytest.raises(TypeError):
        tracekit.run(tenant="t", parent=42)  # type: ignore[arg-type]


def test_explicit_run_id_and_bad_tenant(store: Path) -> None:
    with tracekit.run(tenant="t", run_id="incident-42-replay") as run:
        run.progress("p")
    assert run.run_id == "incident-42-replay"
    tracekit.flush()
    assert events(store, "incident-42-replay", "kind") == [
        ("run_start",), ("progress",), ("run_end",)]
    for bad in ("", None, 5):
        with pytest.raises(ValueError, match="tenant"):
            tracekit.run(tenant=bad)  # type: ignore[arg-type]
    # generated ids are unique and prefixed
    ids = {tracekit.run(tenant="t").run_id for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("run_") for i in ids)


def test_release_stamped_on_every_row(tmp_path: Path) -> None:
    root = tmp_path / "store"
    release = Release(model="gpt-x", prompt="v3", tools="v7")
    tracekit.configure(store=root, release=release)
    canary = Release(model="gpt-y", prompt="v3", tools="v7")
    try:
        with tracekit.run(tenant="t") as one:
            one.prompt("a")
            one.model_output("b")
            lookup("x")
        with tracekit.run(tenant="t") as two:
            two.progress("p")
        with tracekit.run(tenant="t", release=canary) as three:
            three.prompt("c")
        tracekit.flush()
    finally:
        tracekit.shutdown()
    rows = q(root, "SELECT run_id, kind, name, release_id, model_version, prompt_version, "
                   "tools_version FROM events")
    assert len(rows) == 12
    by_run: dict[str, set[tuple[Any, ...]]] = {}
    for run_id, kind, name, *stamp in rows:
        assert all(stamp), (kind, stamp)
        by_run.setdefault(run_id, set()).add(tuple(stamp))
        if kind in ("prompt", "model_output"):
            assert name == (canary if run_id == three.run_id else release).model
    assert by_run[one.run_id] == by_run[two.run_id] == {
        (release.release_id, "gpt-x", "v3", "v7")}
    assert by_run[three.run_id] == {(canary.release_id, "gpt-y", "v3", "v7")}
    assert release.release_id != canary.release_id
    assert q(root, "SELECT count(DISTINCT release_id) FROM runs") == [(2,)]
    # dict form is the same release
    assert tracekit.configure(store=root, release={"model": "gpt-x", "prompt": "v3",
                                                   "tools": "v7"}).release == release
    tracekit.shutdown()


_part = st.text(st.characters(blacklist_characters="\x1f", blacklist_categories=("Cs",)),
                min_size=1, max_size=8)


@settings(max_examples=200, deadline=None, database=None)
@given(st.tuples(_part, _part, _part), st.tuples(_part, _part, _part))
def test_release_id_same_triple_same_id(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    ra = Release(model=a[0], prompt=a[1], tools=a[2])
    assert ra.release_id == Release(model=a[0], prompt=a[1], tools=a[2]).release_id
    assert len(ra.release_id) == 12
    rb = Release(model=b[0], prompt=b[1], tools=b[2])
    assert (ra.release_id == rb.release_id) == (a == b)


def test_release_id_has_no_separator_collision() -> None:
    a = Release(model="m\x1fp", prompt="t", tools="x")
    b = Release(model="m", prompt="p\x1ft", tools="x")
    assert a.release_id != b.release_id


# -- failing runs --------------------------------------------------------------------------------
def test_run_that_raises_ends_with_error(store: Path) -> None:
    with pytest.raises(KeyError), tracekit.run(tenant="t") as run:
        run.model_output("thinking", cost_usd=0.1)
        lookup("x")
        raise KeyError("missing")
    assert tracekit.current_run() is None
    tracekit.flush()
    last = events(store, run.run_id, "kind, status, error, step")[-1]
    assert last == ("run_end", "error", "KeyError: 'missing'", 1)
    assert q(store, "SELECT status, steps, tool_calls FROM runs WHERE run_id = ?",
             [run.run_id]) == [("error", 1, 1)]


# -- views ---------------------------------------------------------------------------------------
RUNS_COLUMNS = ["run_id", "parent_run_id", "root_run_id", "tenant", "release_id", "started",
                "ended", "steps", "tool_calls", "tokens_in", "tokens_out", "cost_usd", "status",
                "events", "last_ts"]
TOOL_CALLS_COLUMNS = ["run_id", "tenant", "call_id", "step", "seq", "tool", "args", "output",
                      "status", "error", "latency_ms", "called", "returned", "writes",
                      "release_id"]


def test_runs_and_tool_calls_views(store: Path) -> None:
    seen_inside: list[Any] = []

    @tracekit.tool
    def peek(run_id: str) -> str:
        tracekit.flush()
        seen_inside.extend(q(store, "SELECT call_id, status, output FROM tool_calls "
                                    "WHERE run_id = ? ORDER BY seq", [run_id]))
        seen_inside.extend(q(store, "SELECT status, ended FROM runs WHERE run_id = ?", [run_id]))
        return "peeked"

    with tracekit.run(tenant="acme") as run:
        run.model_output("a", usage={"prompt_tokens": 10, "completion_tokens": 1},
                         cost_usd=0.125)
        refund_order("A", 1)
        run.model_output("b", usage={"input_tokens": 5, "output_tokens": 2}, cost_usd=0.25)
        with pytest.raises(ValueError):
            refund_order("B", 1000)
        peek(run.run_id)
    tracekit.flush()
    # a call still in flight reads as no_result; a run still going reads as running
    assert seen_inside == [
        ("call_1", "ok", '"refunded"'), ("call_2", "error", None), ("call_3", "no_result", None),
        ("running", None),
    ]

    con = tracekit.connect(store)
    try:
        assert [c[0] for c in con.execute("DESCRIBE runs").fetchall()] == RUNS_COLUMNS
        assert [c[0] for c in con.execute("DESCRIBE tool_calls").fetchall()] == (
            TOOL_CALLS_COLUMNS)
        row = con.execute("SELECT * FROM runs WHERE run_id = ?", [run.run_id]).fetchone()
        calls = con.execute(
            "SELECT * FROM tool_calls WHERE run_id = ? ORDER BY seq", [run.run_id]).fetchall()
    finally:
        con.close()
    r = dict(zip(RUNS_COLUMNS, row, strict=True))
    assert r["parent_run_id"] is None and r["root_run_id"] == run.run_id
    assert r["tenant"] == "acme"
    assert r["release_id"] == Release().release_id
    assert r["started"] <= r["ended"] == r["last_ts"]
    assert r["started"].tzinfo is not None
    assert (r["steps"], r["tool_calls"], r["tokens_in"], r["tokens_out"]) == (2, 3, 15, 3)
    assert r["cost_usd"] == pytest.approx(0.375)
    assert (r["status"], r["events"]) == ("ok", 10)

    c = [dict(zip(TOOL_CALLS_COLUMNS, x, strict=True)) for x in calls]
    assert [(x["tool"], x["call_id"], x["step"], x["status"], x["writes"]) for x in c] == [
        ("refund", "call_1", 1, "ok", True),
        ("refund", "call_2", 2, "error", True),
        ("peek", "call_3", 2, "ok", False),
    ]
    assert json.loads(c[0]["args"]) == {"order_id": "A", "amount": 1}
    assert json.loads(c[0]["output"]) == "refunded"
    assert c[1]["output"] is None and c[1]["error"] == "ValueError: amount 1000 too large"
    assert all(x["called"] <= x["returned"] and x["latency_ms"] >= 0 for x in c)
    assert {x["tenant"] for x in c} == {"acme"}
    assert {x["release_id"] for x in c} == {Release().release_id}


# -- storage -------------------------------------------------------------------------------------
def test_live_segment_then_sorted_zstd_parquet(store: Path) -> None:
    # two runs whose events interleave, with ids that sort opposite to their emission order
    b = tracekit.run(tenant="t", run_id="run-b")
    a = tracekit.run(tenant="t", run_id="run-a")
    with b, a:
        for i in range(5):
            b.progress(f"b{i}")
            a.progress(f"a{i}")
    before = time.time()
    assert tracekit.flush(timeout=10)

    # visible before shutdown, from the live segment only
    assert list(store.glob("events/**/*.parquet")) == []
    assert len(list((store / "segments").glob("*.arrows"))) == 1
    assert q(store, "SELECT run_id, count(*) FROM events GROUP BY 1 ORDER BY 1") == [
        ("run-a", 7), ("run-b", 7)]

    assert tracekit.shutdown()
    parts = sorted(store.glob("events/date=*/part-*.parquet"))
    assert len(parts) == 1
    assert list((store / "segments").glob("*.arrows")) == []
    assert [p.name for p in store.rglob("*") if p.name.startswith(".tmp")] == []
    today = dt.datetime.fromtimestamp(before, dt.UTC).strftime("%Y-%m-%d")
    assert parts[0].parent.name == f"date={today}"

    table = pq.read_table(parts[0])
    keys = list(zip(table["run_id"].to_pylist(), table["seq"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert keys[0] == ("run-a", 0) and len(keys) == 14
    assert {t.date().isoformat() for t in table["ts"].to_pylist()} == {today}
    meta = pq.read_metadata(parts[0])
    assert meta.num_rows == 14
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for col in range(group.num_columns):
            assert group.column(col).compression == "ZSTD"
    # the same rows through SQL, exactly once
    assert q(store, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(14, 14)]
    assert q(store, "SELECT name FROM events WHERE run_id = 'run-b' AND kind = 'progress' "
                    "ORDER BY seq") == [(f"b{i}",) for i in range(5)]


def test_recording_resumes_after_shutdown(store: Path) -> None:
    with tracekit.run(tenant="t") as first:
        pass
    tracekit.shutdown()
    with tracekit.run(tenant="t") as second:
        pass
    tracekit.shutdown()
    assert len(list(store.glob("events/date=*/part-*.parquet"))) == 2
    assert {r[0] for r in q(store, "SELECT run_id FROM runs")} == {first.run_id, second.run_id}


# -- payloads that cannot be encoded -------------------------------------------------------------
def test_unencodable_payloads_never_raise(store: Path) -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)

    @tracekit.tool
    def weird(obj: Any, *rest: Any) -> Any:
        return BrokenDump()

    with tracekit.run(tenant="t", meta=Opaque()) as run:
        run.prompt(Opaque(), extra=cyclic)
        run.model_output(cyclic, tool_calls={1: float("nan"), "1": {2, 3}})
        assert isinstance(weird(Opaque(), cyclic, b"\x00"), BrokenDump)
        run.progress(Opaque())  # type: ignore[arg-type]
        run.error(Opaque())  # type: ignore[arg-type]
        run.event("guard", name="custom", attrs=Opaque(), output={"x": Opaque()})
    assert tracekit.flush(timeout=10)
    tracekit.shutdown()
    rows = events(store, run.run_id, "kind, args, output, attrs")
    assert [r[0] for r in rows] == ["run_start", "prompt", "model_output", "tool_call",
                                    "tool_result", "progress", "error", "guard", "run_end"]
    for _kind, *payloads in rows:
        for p in payloads:
            if p is not None:
                json.loads(p)  # every stored payload is valid JSON
    opaque = f"{Opaque.__module__}.{Opaque.__qualname__}"
    assert json.loads(rows[0][3]) == {"meta": {"$object": opaque}}
    assert json.loads(rows[1][1]) == {"$object": opaque}
    assert json.loads(rows[2][2])["content"] == [1, {"$ref": "builtins.list"}]
    assert json.loads(rows[3][1]) == {"obj": {"$object": opaque},
                                      "*args": [[1, {"$ref": "builtins.list"}], {"$bytes": "AA=="}]}
    broken = f"{BrokenDump.__module__}.{BrokenDump.__qualname__}"
    assert json.loads(rows[4][2]) == {"$object": broken}


def test_mistyped_values_are_coerced_not_lost(store: Path) -> None:
    with tracekit.run(tenant="t") as run:
        run.model_output("x", cost_usd="0.01", latency_ms="oops")  # type: ignore[arg-type]
        run.event("guard", name=123, status=True, cost_usd=2)  # type: ignore[arg-type]
        run.progress("after")
    assert tracekit.flush(timeout=10)
    rows = events(store, run.run_id, "kind, name, status, cost_usd, latency_ms")
    assert rows[1] == ("model_output", "unknown", "ok", 0.01, None)
    assert rows[2] == ("guard", "123", "True", 2.0, None)
    assert [r[0] for r in rows[3:]] == ["progress", "run_end"]


POISON = [
    pytest.param(lambda run: run.prompt(["caf\udce9"]), id="lone-surrogate-text"),
    pytest.param(lambda run: run.model_output("x", usage={"prompt_tokens": 2**70}),
                 id="token-count-beyond-int64"),
]


@pytest.mark.parametrize("poison", POISON)
def test_one_bad_row_does_not_lose_the_others(store: Path, poison: Any) -> None:
    with tracekit.run(tenant="t") as run:
        poison(run)  # never raises into the caller ...
        run.progress("after")
    ok = tracekit.flush(timeout=2)
    tracekit.shutdown(timeout=0.5)
    # ... and the rest of the run must still reach the store
    assert ok
    assert ("progress",) in events(store, run.run_id, "kind")
