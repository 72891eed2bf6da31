"""Fixtures of the capture tests."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def make_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Writes an agent module (a name of its own) on sys.path and imports it."""
    folder = tmp_path / "agents"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    names: list[str] = []

    def make(source: str) -> Any:
        name = f"tk_http_agent_{uuid.uuid4().hex[:12]}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return importlib.import_module(name)

    yield make
    for name in names:
        sys.modules.pop(name, None)
