"""The architecture as a rule: the rooms' layers and the absence of cycles (import-linter's
contracts in pyproject.toml), and the registry every detector is found in."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tracekit._contain.detectors.base import HOOKS, Detector, overrides
from tracekit._contain.settings import DETECTORS, Guard

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold() -> None:
    linter = shutil.which("lint-imports")
    if linter is None:
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    result = subprocess.run([linter, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_no_room_imports_the_package_root() -> None:
    """``tracekit/__init__.py`` is the public face: nothing inside leans on it."""
    graph = grimp.build_graph("tracekit", exclude_type_checking_imports=True)
    importers = graph.find_modules_that_directly_import("tracekit")
    assert importers == set(), importers


def test_import_tracekit_loads_no_duckdb_and_no_replay() -> None:
    code = ("import sys, tracekit, tracekit.http; bad = [m for m in ('duckdb', "
            "'tracekit._replay.agent', 'tracekit._query.views', 'vcr', 'httpx', 'httpx2', "
            "'openai', 'anthropic', 'requests', 'langchain', 'langgraph', 'mcp', 'litellm', "
            "'agents', 'pydantic_ai', 'opentelemetry') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_every_guard_base_is_a_registered_detector_in_order() -> None:
    settings_bases = [b for b in Guard.__bases__ if hasattr(b, "detector")]
    assert [b.detector for b in settings_bases] == list(DETECTORS)
    assert len(DETECTORS) == len(set(DETECTORS))
    for detector in DETECTORS:
        assert issubclass(detector, Detector)
        assert detector.signal, detector
        assert any(overrides(detector.__new__(detector), hook) for hook in HOOKS), detector
        for tunable in detector.tunables:  # suggest-bounds can set every tunable it names
            assert tunable.field in Guard.model_fields, tunable


def test_every_detector_setting_is_a_guard_field() -> None:
    own = {name for d in DETECTORS for name in d.settings.model_fields}
    assert own <= set(Guard.model_fields)
    core = {"staleness_s", "refresh_s", "timeout_s", "on_capture_failure"}
    assert set(Guard.model_fields) - own == core
