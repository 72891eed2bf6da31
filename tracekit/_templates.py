"""Jinja2 templates shipped with tracekit (``templates/`` in the source tree, inside the wheel)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

__all__ = ["render_template", "templates_dir"]


def templates_dir() -> Path:
    """Where the templates are: inside the installed package, or beside it in a source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tracekit's templates are missing (looked in {here}); reinstall it")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(name: str, **context: object) -> str:
    return _environment().get_template(name).render(**context)
