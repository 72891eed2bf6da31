"""What ``tracekit.configure`` sets: the store, the release triple, the redaction rules, the
guard, the control store and the guard's clock, validated once (never on the hot path).

Unset, each comes from the environment (``TRACEKIT_HOME``, ``TRACEKIT_CONTROL``) or the
project's ``[tool.tracekit]`` (a tracekit.toml, or the nearest pyproject.toml).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._base.project import find_project_settings
from .._base.redact import Redactor, make_redactor
from .._contain.settings import Guard, guard_from_mapping
from .._store.layout import resolve_root

__all__ = ["Release", "Settings", "default_settings", "make_settings"]


class Release(BaseModel):
    """The release triple stamped on every event: model, prompt and tool-contract versions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(default="unknown", min_length=1)
    prompt: str = Field(default="unknown", min_length=1)
    tools: str = Field(default="unknown", min_length=1)

    @property
    def release_id(self) -> str:
        """A short stable hash of the triple: the same versions give the same id everywhere."""
        text = json.dumps([self.model, self.prompt, self.tools])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class Settings(BaseModel):
    """What ``tracekit.configure`` set; validated once, never on the hot path."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    store: Path
    release: Release = Release()
    redactor: Redactor = Redactor()
    guard: Guard | None = None
    control: str | None = None
    clock: Callable[[], float] | None = None

    @field_validator("store")
    @classmethod
    def _store_not_a_file(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"store {value} is a file; pass a directory (or set TRACEKIT_HOME)")
        return value


def make_settings(
    store: str | os.PathLike[str] | None = None,
    release: Release | dict[str, str] | None = None,
    redact: Redactor | dict[str, Any] | None = None,
    guard: Guard | dict[str, Any] | bool | None = None,
    control: str | None = None,
    clock: Callable[[], float] | None = None,
) -> Settings:
    """Settings from ``configure``'s arguments (see ``tracekit.configure``)."""
    project_guard, project_control = _project_guard() if guard is None else (None, None)
    return Settings(
        store=resolve_root(store),
        release=release if isinstance(release, Release) else Release(**(release or {})),
        redactor=make_redactor(redact),
        guard=_guard_setting(guard) if guard is not None else project_guard,
        control=control or os.environ.get("TRACEKIT_CONTROL") or project_control,
        clock=clock,
    )


def default_settings() -> Settings:
    """The settings of a process that never called ``configure``."""
    guard, control = _project_guard()
    return Settings(store=resolve_root(None), guard=guard, control=control)


def _guard_setting(guard: Guard | dict[str, Any] | bool) -> Guard | None:
    if guard is False:
        return None
    if guard is True:
        return Guard()
    if isinstance(guard, dict):
        return guard_from_mapping(guard, "configure(guard=...)")
    if isinstance(guard, Guard):
        return guard
    raise TypeError("configure(guard=...) takes a tracekit.Guard, a dict of its settings or False")


def _project_guard() -> tuple[Guard | None, str | None]:
    found = find_project_settings()
    if found is None:
        return None, None
    table = found.guard
    return (guard_from_mapping(table, found.source) if table is not None else None, found.control)
