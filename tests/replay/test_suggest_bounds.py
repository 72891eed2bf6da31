"""suggest-bounds: candidate thresholds tried by policy replay on the incident and the store."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tracekit
from tracekit._demo import run_demo
from tracekit._replay.suggest import suggest_bounds


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bounds")
    result = run_demo(root / "store", runaway_steps=12, guarded=False)
    tracekit.configure(store=root / "store", guard=False)
    bundle = tracekit.export_incident([result.runaway["run_id"]], "inc", root / "fx",
                                      root / "store")
    tracekit.configure(store=root / "elsewhere", guard=False)
    return bundle, root / "store"


def test_each_suggestion_contains_the_incident_where_it_says(
        incident: tuple[Path, Path]) -> None:
    bundle, store = incident
    result = suggest_bounds(bundle, store)
    assert result.healthy_runs == 8  # 4 healthy runs and their 4 sub-agents
    found = {s.bound: s for s in result.bounds}
    assert {"max_repeats", "max_steps", "max_cost_usd"} <= set(found)
    for item in result.bounds:
        for trial in (item.tightest, item.suggested):
            if trial is None:
                continue
            value = int(trial.value) if isinstance(trial.value, int) else trial.value
            verdict = tracekit.replay(bundle, guard=tracekit.Guard(**{item.bound: value}))
            assert verdict.contained and verdict.step == trial.step, (item.bound, trial)
            assert len(verdict.effects) == trial.effects
        if item.tightest and item.suggested:
            assert item.tightest.step <= item.suggested.step
            assert item.suggested.false_halts <= item.tightest.false_halts


def test_false_halts_count_the_healthy_runs_a_setting_would_stop(
        incident: tuple[Path, Path]) -> None:
    bundle, store = incident
    [steps] = [s for s in suggest_bounds(bundle, store).bounds if s.bound == "max_steps"]
    with tracekit.connect(store) as con:
        healthy = [r[0] for r in con.execute(
            "SELECT steps FROM runs WHERE tenant <> 'acme'").fetchall()]
    assert len(healthy) == 8
    for trial in steps.trials:  # max_steps halts a run when its step count passes the bound
        assert trial.false_halts == sum(1 for n in healthy if n > trial.value), trial
    assert steps.suggested is not None and steps.suggested.false_halts == 0
    floor = max(healthy)  # the tightest setting that stops nothing healthy...
    assert steps.suggested.value >= floor + max(1, -(-floor // 4))  # ...plus the margin
    assert steps.suggested.step is not None and steps.healthy_runs == 8


def test_the_cli_prints_the_table_and_a_guard_table(incident: tuple[Path, Path]) -> None:
    bundle, store = incident
    cmd = [sys.executable, "-m", "tracekit", "suggest-bounds", "--incident", "inc",
           "--fixtures", str(bundle.parent), "--store", str(store)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "max_repeats" in out.stdout and "false halt" in out.stdout
    table = out.stdout[out.stdout.index("[tool.tracekit.guard]"):]
    settings = tomllib.loads(table)["tool"]["tracekit"]["guard"]
    tracekit.Guard(**settings)  # a valid guard, ready to paste
    assert settings["max_steps"] >= 1
    data = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True,
                                     timeout=120).stdout)
    assert data["incident"] == "inc" and data["healthy_runs"] == 8
    missing = subprocess.run([*cmd[:5], "nope", *cmd[6:]], capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 1 and "not an incident bundle" in missing.stderr


def test_too_few_healthy_runs_suggest_nothing_and_say_so(incident: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    bundle, _ = incident
    store = tmp_path / "one-healthy-run"
    tracekit.configure(store=store, guard=False)
    with tracekit.run(tenant="globex") as run:
        run.model_output("done", cost_usd=0.001)
    tracekit.shutdown()
    result = suggest_bounds(bundle, store)
    assert result.healthy_runs == 1
    assert all(item.suggested is None for item in result.bounds)
    assert all("1 healthy run(s)" in (item.note or "") for item in result.bounds
               if item.tightest is not None)
    assert any(item.tightest is not None for item in result.bounds)  # it can contain it...
    settings = tomllib.loads(result.toml())["tool"]["tracekit"]["guard"]
    assert settings == {}  # ...but nothing is offered to paste
    assert "# max_steps: not suggested" in result.toml()
    fewer = suggest_bounds(bundle, store, min_healthy=1)
    assert any(item.suggested is not None for item in fewer.bounds)
