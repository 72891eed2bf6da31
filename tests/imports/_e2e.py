"""The path every imported format must walk: import -> export -> make-test -> the generated
test passing in a real pytest run, with the project's guard (max_repeats = 3) in place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import tracekit
from tracekit.cli import cli


def made_test_passes(trace_file: Path, tmp_path: Path, fmt: str = "auto",
                     incident: str = "refund-loop") -> str:  # fmt: skip
    """Import ``trace_file``, export its run as ``incident``, make its test and run it: the
    generated test's source (the caller checks it for secrets)."""
    project, store = tmp_path / "project", tmp_path / "store"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.tracekit.guard]\nmax_repeats = 3\n")
    runner = CliRunner()
    imported = runner.invoke(cli, ["import", str(trace_file), "--store", str(store),
                                   "--format", fmt])  # fmt: skip
    assert imported.exit_code == 0, imported.output
    again = tracekit.import_traces([trace_file], store, fmt=fmt)
    (run_id,) = again.already
    assert again.unit == ("spans" if run_id.startswith("otel-") else "records")
    assert f"{again.unit} in 1 file(s)" in imported.output  # what the summary counts
    cwd = Path.cwd()
    os.chdir(project)
    try:
        exported = runner.invoke(cli, ["export", "--run", run_id, "--incident", incident,
                                       "--store", str(store)])  # fmt: skip
        assert exported.exit_code == 0, exported.output
        made = runner.invoke(cli, ["make-test", incident])
        assert made.exit_code == 0, made.output
    finally:
        os.chdir(cwd)
    generated = (project / f"tests/incidents/test_{incident.replace('-', '_')}.py").read_text()
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL")}
    gate = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                           "incident", "tests/incidents"], capture_output=True, text=True,
                          cwd=project, env=env, timeout=300)  # fmt: skip
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "1 passed" in gate.stdout
    return generated
