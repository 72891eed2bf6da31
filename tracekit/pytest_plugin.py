"""The pytest plugin (entry point ``pytest11``): the eval gate for incident tests.

- the ``incident`` marker: ``pytest -m incident`` runs every incident test;
- the ``tracekit_guard`` fixture: the project's guard, as configured next to the tests
  (``tracekit.toml`` or ``[tool.tracekit.guard]`` of the nearest pyproject.toml, searched from the
  test's folder up), or None: ``tracekit.replay`` then takes the guard recorded in the bundle,
  the same order ``tracekit replay`` follows (``tracekit/_replay/resolve.py``);
- a summary line at the end: ``incidents: N contained, M not contained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._contain.settings import Guard, project_guard

_RESULTS_KEY = pytest.StashKey[dict[str, int]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "incident: a regression test generated from an incident (tracekit make-test)"
    )
    config.stash[_RESULTS_KEY] = {"contained": 0, "not contained": 0}


@pytest.fixture
def tracekit_guard(request: pytest.FixtureRequest) -> Guard | None:
    """The project's configured guard, found from the test's folder up; None when it has none
    (``tracekit.replay`` then uses the guard recorded in the bundle, as ``tracekit replay``
    does: one order for both, ``tracekit/_replay/resolve.py``)."""
    return project_guard(Path(str(request.node.fspath)).parent)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and item.get_closest_marker("incident") is not None:
        results = item.config.stash[_RESULTS_KEY]
        results["contained" if report.passed else "not contained"] += 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS_KEY, None)
    if results and sum(results.values()):
        terminalreporter.write_line(
            f"incidents: {results['contained']} contained, {results['not contained']} not contained"
        )
