"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tracekit


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``guarded(**bounds)``: a store in tmp_path with a guard of those bounds (none: no
    guard), configured for this process; shut down and reset afterwards."""

    def configure(**bounds: Any) -> Path:
        store = tmp_path / "store"
        tracekit.configure(store=store, guard=tracekit.Guard(**bounds) if bounds else False)
        return store

    try:
        yield configure
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)
