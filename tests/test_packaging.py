"""A non-editable install works as well as the editable one, and the code stays ruff clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, timeout=300,
    )
    [built] = out.glob("tracekit-*.whl")
    return built


def test_wheel_ships_templates_and_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tracekit/py.typed" in names
    assert "tracekit/templates/demo_summary.txt.j2" in names
    assert "tracekit/_query/queries/repeated_calls.sql" in names  # the named postmortem queries
    assert "tracekit/_integrations/prices.json" in names  # the price table
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_runs_the_demo_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("TRACEKIT_HOME", None)
    probe = subprocess.run(
        [sys.executable, "-c", "import tracekit; print(tracekit.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=True,
    )
    assert probe.stdout.strip().startswith(str(target))
    demo = subprocess.run([sys.executable, "-m", "tracekit", "demo"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert "Next, try:" in demo.stdout
    assert list((tmp_path / ".tracekit" / "events").glob("date=*/part-*.parquet"))


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: install the test extra, pip install -e '.[test]'")
    return found


def test_ruff_clean() -> None:
    ruff = _tool("ruff")
    paths = [p for p in ("tracekit", "tests", "benchmarks") if (ROOT / p).is_dir()]
    result = subprocess.run([ruff, "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_formatted() -> None:
    result = subprocess.run([_tool("ruff"), "format", "--check", "tracekit", "tests/typecheck"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean() -> None:
    """mypy (strict, with the pydantic plugin) over tracekit/ and the README's API examples."""
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
