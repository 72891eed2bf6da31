"""tracekit diff: two runs aligned step by step, and the first step where they diverge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tracekit
from tracekit._demo import run_demo
from tracekit._query.rundiff import diff_runs
from tracekit.testing import recording


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("diff") / "store"
    result = run_demo(root, runaway_steps=6, guarded=False)
    tracekit.configure(store=tmp_path_factory.mktemp("elsewhere") / "store", guard=False)
    return root, [r["run_id"] for r in result.runs]  # 4 healthy, then the runaway


def tk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True,
                          text=True, timeout=120)


def test_a_run_against_itself_has_no_divergence(demo: tuple[Path, list[str]]) -> None:
    store, runs = demo
    with tracekit.connect(store) as con:
        result = diff_runs(con, runs[-1], runs[-1][:-2])  # a unique prefix works
    assert result.step is None and result.differences == [] and result.context == []
    assert all(same for *_, same in result.rows) and len(result.rows) == 7
    assert "the same decisions over 7 step(s)" in result.summary()


def test_the_first_divergence_and_what_changed(demo: tuple[Path, list[str]]) -> None:
    store, runs = demo
    with tracekit.connect(store) as con:
        result = diff_runs(con, runs[1], runs[-1])  # initech's refund vs acme's runaway
    assert result.step == 1
    assert result.differences == ['decision 2 lookup_order: args.order_id (A "O-7120", '
                                  'B "O-9001")']
    assert result.context == ["tenant: A initech, B acme"]
    steps = {step: (a, b, same) for step, a, b, same in result.rows}
    assert steps[7][0] == "-" and "issue_refund" in steps[7][1]  # only the runaway goes on
    assert not steps[1][2]


def test_a_new_release_shows_in_the_context(tmp_path: Path) -> None:
    with recording(tmp_path / "store"):
        ids = []
        for prompt in ("v1", "v2"):
            release = tracekit.Release(model="m", prompt=prompt, tools="t")
            with tracekit.run(tenant="acme", release=release) as run:
                run.model_output("thinking")
                run.call_tool("send", lambda to: "ok", to="a@x" if prompt == "v1" else "b@x")
            ids.append(run.run_id)
        tracekit.flush()
        with tracekit.connect(tmp_path / "store") as con:
            result = diff_runs(con, *ids)
    assert result.context == ["prompt: A v1, B v2"] and result.step == 1
    assert result.differences == ['decision 2 send: args.to (A "a@x", B "b@x")']


def test_the_cli_prints_the_table_and_the_divergence(demo: tuple[Path, list[str]]) -> None:
    store, runs = demo
    out = tk("diff", runs[1], runs[-1], "--store", str(store))
    assert out.returncode == 0, out.stderr
    assert "first divergence at step 1" in out.stdout and "args.order_id" in out.stdout
    assert "A and B differ in tenant" in out.stdout
    data = json.loads(tk("diff", runs[1], runs[-1], "--store", str(store), "--json").stdout)
    assert data["step"] == 1 and data["run_a"] == runs[1]
    bad = tk("diff", runs[1], "run_nope", "--store", str(store))
    assert bad.returncode == 1 and "no run 'run_nope'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
