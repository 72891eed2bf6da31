"""One resolution order for the guard and the entry point: `tracekit replay`, make-test and
the generated pytest give the same verdict on the same bundle, from wherever they run, and the
guard in force when the incident was recorded is in the manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

AGENT = textwrap.dedent('''
    import tracekit

    @tracekit.tool
    def check_status(order: str) -> dict:
        return {"order": order, "status": "pending"}

    @tracekit.entrypoint
    def handle(tenant: str) -> None:
        with tracekit.run(tenant=tenant):
            for _ in range(10):
                check_status("A-1")  # the same call, again and again

    if __name__ == "__main__":
        tracekit.configure(store="store", guard=tracekit.Guard(max_repeats=2))  # in code
        try:
            handle("acme")
        except tracekit.Halted as halt:
            print("halted", halt.signal)
        tracekit.shutdown()
''')


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_cli_and_pytest_agree_wherever_they_run(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "0"\n')
    (tmp_path / "loop_agent.py").write_text(AGENT)
    recorded = _run(tmp_path, "loop_agent.py")
    assert "halted repeats" in recorded.stdout, recorded.stdout + recorded.stderr
    run_id = json.loads(_run(tmp_path, "-m", "tracekit", "query", "SELECT run_id FROM runs",
                             "--format", "json", "--store", "store").stdout)[0]["run_id"]
    exported = _run(tmp_path, "-m", "tracekit", "export", "--run", run_id, "--incident",
                    "loop", "--store", "store")  # this process configured no guard
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((tmp_path / "fixtures/incidents/loop/manifest.json").read_text())
    assert manifest["guard"]["max_repeats"] == 2  # the guard in force when it was recorded

    made = _run(tmp_path, "-m", "tracekit", "make-test", "loop", "--entrypoint",
                "loop_agent:handle")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "guard: the bundle (the guard in force when the incident was recorded)" in made.stdout

    tests = tmp_path / "tests"  # from a folder below the project's root
    cli = _run(tests, "-m", "tracekit", "replay", "loop", "--fixtures", "../fixtures/incidents",
               "--tests", "incidents", "--entrypoint", "loop_agent:handle", "--json")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    verdict = json.loads(cli.stdout)
    assert verdict["outcome"] == "contained" and verdict["signal"] == "repeats"
    assert verdict["guard_source"].startswith("the bundle")
    for where in (tmp_path, tests, tests / "incidents"):
        gate = _run(where, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "incident",
                    str(tests / "incidents"))
        assert gate.returncode == 0, (where, gate.stdout)
        assert "incidents: 1 contained, 0 not contained" in gate.stdout

    (tests / "incidents/tracekit.toml").write_text("[guard]\nmax_steps = 100\n")
    cli = _run(tests, "-m", "tracekit", "replay", "loop", "--fixtures", "../fixtures/incidents",
               "--tests", "incidents", "--entrypoint", "loop_agent:handle")
    gate = _run(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "incident",
                "tests/incidents")
    assert cli.returncode == gate.returncode == 1, cli.stdout + gate.stdout  # both: not contained
    assert f"guard: {tests / 'incidents' / 'tracekit.toml'}" in cli.stdout
