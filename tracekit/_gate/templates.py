"""Jinja2 templates shipped with tracekit (``tracekit/templates/``, package data)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

__all__ = ["render_template", "templates_dir"]


def templates_dir() -> Path:
    """Where the templates are: ``tracekit/templates`` inside the installed package."""
    folder = Path(__file__).resolve().parent.parent / "templates"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"tracekit's templates are missing (looked in {folder}); reinstall it"
        )
    return folder


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
