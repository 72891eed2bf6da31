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
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pyrepr"] = _pyrepr  # a value from a trace enters Python source only as a literal
    return env


def _pyrepr(value: object) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, int | float | str):
        return repr(value)
    raise TypeError(f"pyrepr takes str, int, float, bool or None, not {type(value).__name__}")


def render_template(template: str, /, **context: object) -> str:
    return _environment().get_template(template).render(**context)
