"""Where a replay's guard and its entry point come from: one order for both, used by
``tracekit replay``, ``make-test``, ``suggest-bounds`` and the pytest plugin alike, and said in
their output (a verdict that depends on where the command runs is no verdict).

The guard, first found wins:

1. the one given (``tracekit.replay(bundle, guard=...)``);
2. the project's: ``tracekit.toml`` or ``[tool.tracekit.guard]`` of the nearest pyproject.toml,
   searched from the project folder given (the incident tests' folder) up;
3. the guard in force when the incident was recorded (the bundle's manifest);
4. none: an empty guard (only the kill switch, which a replay never trips).

The entry point is imported with the project's root (the nearest folder with a pyproject.toml,
from the project folder up) and the current folder on the path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .._base.project import find_project_settings
from .._contain.settings import Guard, guard_from_mapping

__all__ = ["project_root", "resolve_guard", "with_project_on_path"]


def resolve_guard(
    manifest: dict[str, Any],
    guard: Guard | None = None,
    project: str | os.PathLike[str] | None = None,
) -> tuple[Guard, str]:
    """(the guard, where it came from) for a replay of the bundle with ``manifest``."""
    if guard is not None:
        return guard, "given"
    found = find_project_settings(_folder(project))
    table = found.guard if found is not None else None
    if found is not None and table is not None:
        return guard_from_mapping(table, found.source), found.source
    if manifest.get("guard"):
        return (
            guard_from_mapping(manifest["guard"], "the bundle"),
            "the bundle (the guard in force when the incident was recorded)",
        )
    return Guard(), "none configured or recorded (an empty guard)"


def project_root(project: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder with a pyproject.toml, from ``project`` (default: here) up; else the
    current folder."""
    here = _folder(project).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return Path.cwd()


def with_project_on_path(project: str | os.PathLike[str] | None = None) -> None:
    """The project's root and the current folder importable, as ``python -m pytest`` from the
    project's root would have them (an entry point is a module of the project)."""
    for folder in (str(Path.cwd()), str(project_root(project))):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _folder(project: str | os.PathLike[str] | None) -> Path:
    if project is None:
        return Path.cwd()
    path = Path(project)
    return path.parent if path.is_file() else path
