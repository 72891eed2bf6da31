"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """A store root in tmp_path that this process records into; shut down afterwards."""
    root = tmp_path / "store"
    tracekit.configure(store=root)
    yield root
    tracekit.shutdown()
