"""The compensators, by tool name: ``@tracekit.tool(compensate=undo_refund)`` registers one
(a function, or ``"module:function"`` imported when it is needed)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["compensator_for", "has_compensator", "register_compensator"]

_COMPENSATORS: dict[str, Callable[..., Any] | str] = {}


def register_compensator(tool: str, fn: Callable[..., Any] | str) -> None:
    """``fn`` undoes an effect of ``tool``; it is called with the original call's arguments."""
    _COMPENSATORS[tool] = fn


def has_compensator(tool: str) -> bool:
    return tool in _COMPENSATORS


def compensator_for(tool: str) -> Callable[..., Any]:
    """The registered compensator of ``tool``, imported if it was named as a string."""
    fn = _COMPENSATORS[tool]
    if callable(fn):
        return fn
    module, _, name = fn.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
