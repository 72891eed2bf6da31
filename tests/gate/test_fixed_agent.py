"""An agent fixed in code turns its incident test green: the eval gate judges the outcome
(contained by the guard, or resolved by the agent itself, within the incident's damage), and
`tracekit replay` says the same."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tracekit
from tracekit._gate.maketest import make_test
from tracekit.testing import Recording

AGENT = textwrap.dedent('''
    import tracekit

    @tracekit.tool(writes=True, destination="payments", idempotency_key=lambda order, amount:
                   f"refund:{order}")
    def refund(order: str, amount: float) -> dict:
        return {"order": order, "status": "pending"}

    @tracekit.entrypoint
    def handle(tenant: str) -> None:
        with tracekit.run(tenant=tenant) as run:
            for step in range(STEPS):
                run.model_output(f"refund attempt {step}", cost_usd=0.01)
                if refund("A-1", 10.0)["status"] == "pending" and FIXED:
                    run.progress("refund handed to a person")
                    return

    STEPS = 8
    FIXED = FIXED_VALUE
''')


def _agent(folder: Path, fixed: bool) -> None:
    (folder / "fixable_agent.py").write_text(AGENT.replace("FIXED_VALUE", repr(fixed)))
    for stale in (folder / "__pycache__").glob("fixable_agent*"):
        stale.unlink()


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL")}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=folder, env=env, timeout=300)


def test_a_fixed_agent_is_resolved_and_its_incident_test_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the project root: the agent is importable from here
    _agent(tmp_path, fixed=False)
    sys.path.insert(0, str(tmp_path))
    try:
        agent = importlib.import_module("fixable_agent")
        tracekit.configure(store=tmp_path / "store", guard=False)
        agent.handle("acme")  # the incident: the same refund, again and again
        tracekit.flush()
        [run] = Recording(tmp_path / "store").runs()
        tracekit.export_incident([run["run_id"]], "refund-loop", tmp_path / "fixtures/incidents",
                                 tmp_path / "store")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fixable_agent", None)
        tracekit.configure(store=tmp_path / "elsewhere", guard=False)
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_steps = 100\n")
    made = make_test("refund-loop", tmp_path / "fixtures/incidents", tmp_path / "tests/incidents",
                     entrypoint="fixable_agent:handle")
    assert not made.verdict.contained and made.expectations["max_effects"] == 1

    gate = ("pytest", "-q", "-p", "no:cacheprovider", "-m", "incident", "tests/incidents")
    red = _cli(tmp_path, *gate)  # the agent as it was: nothing stops it
    assert red.returncode == 1 and "not contained" in red.stdout, red.stdout
    replayed = _cli(tmp_path, "tracekit", "replay", "refund-loop", "--entrypoint",
                    "fixable_agent:handle")
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr

    _agent(tmp_path, fixed=True)  # the fix: a pending refund goes to a person, not again
    green = _cli(tmp_path, *gate)
    assert green.returncode == 0, green.stdout
    replayed = _cli(tmp_path, "tracekit", "replay", "refund-loop", "--entrypoint",
                    "fixable_agent:handle")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "resolved: today's agent ended by itself at step 1" in replayed.stdout


def test_the_judgement_names_the_expectation_that_broke() -> None:
    from tracekit._replay.policy import Verdict
    from tracekit.testing import judge

    ended = Verdict(False, 1, 9, step=6, spend_usd=0.5, effects=[{}, {}], mode="agent",
                    ended_by_itself=True)
    assert judge(ended, 6, 2, 0.5) == "resolved"
    with pytest.raises(AssertionError, match=r"it went to step 6 \(HALT_BY_STEP = 3\)"):
        judge(ended, 3, 2, 0.5)
    with pytest.raises(AssertionError, match=r"2 effect\(s\) fired \(MAX_EFFECTS = 1\)"):
        judge(ended, 6, 1, 0.5)
    halted = Verdict(True, 1, 4, step=2, spend_usd=0.1, signal="repeats", mode="policy")
    assert judge(halted, 2, 0, 0.1) == "contained"
    with pytest.raises(AssertionError, match=r"\$0.1000 spent \(MAX_COST_USD = 0.05\)"):
        judge(halted, 2, 0, 0.05)
    unhalted = Verdict(False, 1, 9, step=9, spend_usd=1.0)
    with pytest.raises(AssertionError, match="not contained: NOT contained"):
        judge(unhalted, 100, 100, 100.0)
