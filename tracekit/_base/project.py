"""The project's own settings: ``[tool.tracekit]`` of the nearest pyproject.toml, or a
tracekit.toml, found from a folder up (the current one by default).

The table may hold ``guard`` (the guard's bounds, a table) and ``control`` (the control store's
spec). A file that is not TOML is a one-line ValueError naming it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ProjectSettings", "find_project_settings"]


@dataclass(frozen=True)
class ProjectSettings:
    """The ``[tool.tracekit]`` table and where it was found (for error messages)."""

    table: dict[str, Any]
    source: str

    @property
    def guard(self) -> dict[str, Any] | None:
        """The guard's settings table, if the project has one."""
        guard = self.table.get("guard")
        if guard is not None and not isinstance(guard, dict):
            raise ValueError(f"{self.source}: 'guard' must be a table of settings")
        return guard or None

    @property
    def control(self) -> str | None:
        """The control store the project's agents use (``sqlite`` or ``redis://...``)."""
        control = self.table.get("control")
        return str(control) if control else None


def find_project_settings(start: Path | None = None) -> ProjectSettings | None:
    """``[tool.tracekit]`` of the nearest pyproject.toml, or a tracekit.toml, from ``start`` up."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        own = folder / "tracekit.toml"
        if own.is_file():
            return ProjectSettings(_read_toml(own), str(own))
        project = folder / "pyproject.toml"
        if project.is_file():
            table = _read_toml(project).get("tool", {}).get("tracekit")
            return ProjectSettings(table, f"{project} [tool.tracekit]") if table else None
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not readable TOML ({exc})") from None
