"""Named postmortem queries: each runs on a real demo store and answers what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tracekit
from tracekit._demo import run_demo
from tracekit._query.named import named_queries, named_query, run_named

ISSUE_QUERIES = {"run_timeline", "effects_by_run", "spend_per_tenant", "tool_rate",
                 "repeated_calls", "no_progress", "fanout", "first_seen_destinations",
                 "runs_by_release", "guard_decisions"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Two demo stores' worth in one: the guarded demo (a halted runaway, guard decisions)."""
    root = tmp_path_factory.mktemp("queries") / "store"
    result = run_demo(root, guarded=True)
    tracekit.configure(store=tmp_path_factory.mktemp("elsewhere") / "store", guard=False)
    return root, {"runaway": result.runaway["run_id"]}


def rows(store: Path, name: str, **params: object) -> list[dict[str, object]]:
    with tracekit.connect(store) as con:
        cursor = run_named(con, name, **params)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def tk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True,
                          text=True, timeout=120)


def test_the_library_has_the_queries_the_postmortem_needs() -> None:
    queries = named_queries()
    assert set(queries) >= ISSUE_QUERIES
    for query in queries.values():
        assert query.description and not query.description.startswith("param")
        used = set(re.findall(r"\$(\w+)", query.sql))
        assert used == {p.name for p in query.params}, query.name  # declared = used


def test_every_named_query_runs_on_a_demo_store(demo: tuple[Path, dict[str, str]]) -> None:
    store, ids = demo
    given = {"run_timeline": {"run_id": ids["runaway"]}, "no_progress": {"min_steps": 3},
             "tool_rate": {"min_calls": 1}}
    for name in named_queries():
        assert rows(store, name, **given.get(name, {})), f"{name} found nothing in the store"
    [spiral] = rows(store, "no_progress", min_steps=3)  # the runaway, halted at step 5
    assert spiral["run_id"] == ids["runaway"] and spiral["steps_without_progress"] == 4


def test_the_timeline_and_the_effects_of_the_runaway(demo: tuple[Path, dict[str, str]]) -> None:
    store, ids = demo
    timeline = rows(store, "run_timeline", run_id=ids["runaway"])
    assert [r["seq"] for r in timeline] == list(range(len(timeline)))
    assert timeline[0]["kind"] == "run_start" and timeline[-1]["kind"] == "run_end"
    effects = rows(store, "effects_by_run", run_id=ids["runaway"])
    fired = [e for e in effects if e["status"] == "fired"]
    assert len(fired) == 1 and fired[0]["tool"] == "issue_refund"
    assert fired[0]["step"] is not None and "O-9001" in str(fired[0]["args"])  # joined


def test_loops_spend_and_guard_decisions(demo: tuple[Path, dict[str, str]]) -> None:
    store, ids = demo
    [loop] = rows(store, "repeated_calls", min_repeats=3)
    assert loop["run_id"] == ids["runaway"] and loop["tool"] == "issue_refund"
    assert loop["calls"] == 3  # the guard halted the 4th
    assert rows(store, "repeated_calls", min_repeats=4) == []
    [decision] = [d for d in rows(store, "guard_decisions") if d["status"] == "halted"]
    assert decision["signal"] == "repeats" and decision["run_id"] == ids["runaway"]
    spend = sum(r["spend_usd"] for r in rows(store, "spend_per_tenant", window_minutes=60))
    with tracekit.connect(store) as con:
        total = con.execute("SELECT sum(cost_usd) FROM runs").fetchone()[0]
    assert spend == pytest.approx(total, abs=1e-5)


def test_trees_destinations_and_releases(demo: tuple[Path, dict[str, str]]) -> None:
    store, _ = demo
    trees = rows(store, "fanout")
    assert len(trees) == 4 and {(t["sub_runs"], t["depth"], t["widest"]) for t in trees} == {
        (1, 1, 1)}
    assert len(rows(store, "first_seen_destinations", limit=2)) == 2
    assert rows(store, "fanout", min_sub_runs=2) == []
    firsts = rows(store, "first_seen_destinations")
    assert {(f["tenant"], f["destination"]) for f in firsts} >= {
        ("acme", "payments-api"), ("globex", "customer-email")}
    assert {f["tenant"] for f in rows(store, "first_seen_destinations", tenant="acme")} == {
        "acme"}
    [release] = rows(store, "runs_by_release")
    assert release["prompt"] == "support-v14" and release["runs"] == 9
    assert release["guard_halts"] == 1


def test_parameters_are_checked_with_plain_errors() -> None:
    query = named_query("tool_rate")
    assert query.bind({}) == {"min_calls": 10, "limit": 1000}
    assert query.bind({"min_calls": "7"}) == {"min_calls": 7, "limit": 1000}
    with pytest.raises(ValueError, match="takes int"):
        query.bind({"min_calls": "many"})
    with pytest.raises(ValueError, match="has no parameter nope"):
        query.bind({"nope": "1"})
    with pytest.raises(ValueError, match="needs --param run_id"):
        named_query("run_timeline").bind({})
    with pytest.raises(ValueError, match="did you mean repeated_calls"):
        named_query("repeted_calls")


def test_the_cli_lists_and_runs_named_queries(demo: tuple[Path, dict[str, str]]) -> None:
    store, ids = demo
    listed = tk("query", "--list")
    assert listed.returncode == 0
    for name in ISSUE_QUERIES:
        assert name in listed.stdout and named_query(name).description[:30] in listed.stdout
    out = tk("query", "--name", "run_timeline", "--param", f"run_id={ids['runaway'][:-3]}",
             "--store", str(store), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert '"run_start"' in out.stdout  # a unique run-id prefix works
    for bad, message in ((["--name", "nope"], "no named query"),
                         (["--name", "tool_rate", "--param", "min_calls"], "key=value"),
                         (["--name", "tool_rate", "--param", "min_calls=x"], "takes int"),
                         (["SELECT 1", "--list"], "give one of")):
        out = tk("query", *bad, "--store", str(store))
        assert out.returncode == 1 and message in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_connect_reads_the_configured_store(demo: tuple[Path, dict[str, str]],
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    store, _ = demo
    monkeypatch.delenv("TRACEKIT_HOME", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./.tracekit here
    tracekit.configure(store=store, guard=False)
    try:
        with tracekit.connect() as con:
            (runs,) = con.execute("SELECT count(*) FROM runs").fetchone() or (0,)
        assert runs >= 5
    finally:
        tracekit.configure(store=tmp_path / "elsewhere", guard=False)
