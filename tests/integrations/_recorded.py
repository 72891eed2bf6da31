"""What an integration recorded, read back through SQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import tracekit
from tracekit.testing import Recording


def recorded_events(store: Path, kinds: tuple[str, ...], order: str) -> list[dict[str, Any]]:
    """The store's events of ``kinds`` (all when none), flushed first, in ``order``."""
    assert tracekit.flush(30)
    where = f"WHERE kind IN ({', '.join(repr(k) for k in kinds)})" if kinds else ""
    return Recording(store).rows(f"SELECT * FROM events {where} ORDER BY {order}")


def run_gate(folder: Path) -> subprocess.CompletedProcess[str]:
    """The eval gate of the project in ``folder``, as CI runs it: ``pytest -m incident`` in a
    subprocess of its own (litellm kept offline: the environment says so, see conftest)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                           "incident", "tests/incidents"], capture_output=True, text=True,
                          cwd=folder, env=env, timeout=300)
