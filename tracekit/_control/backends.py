"""The control store for a spec: ``sqlite`` (default), ``sqlite:PATH``, ``redis://...`` or
``memory:``."""

from __future__ import annotations

from pathlib import Path

from .base import ControlError, ControlStore
from .memory import MemoryControl
from .redis import RedisControl
from .sqlite import SQLiteControl

__all__ = ["is_shared_server", "open_control"]


def open_control(
    spec: str | None, store_root: Path, timeout_s: float = 0.25, create: bool = True
) -> ControlStore:
    """``sqlite`` (default: control.db under the store root), ``sqlite:PATH``, ``redis://...``
    or ``memory:`` (this process only).

    ``create=False`` (the guard's way) refuses a Redis store that holds no tracekit state.
    """
    if spec == MemoryControl.url:
        return MemoryControl()
    if spec is None or spec == "sqlite" or spec.startswith("sqlite:"):
        path = store_root / "control.db" if spec in (None, "sqlite") else Path(spec[7:])
        if not create and not path.exists():
            raise ControlError(
                f"no control store at {path}: check --store / TRACEKIT_HOME "
                "(or pass --init to create one here)"
            )
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # a removed store's journal must not be replayed into a new one
                for orphan in (Path(f"{path}-wal"), Path(f"{path}-shm")):
                    orphan.unlink(missing_ok=True)
        return SQLiteControl(path, timeout_s)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisControl(spec, timeout_s, create=create)
    raise ValueError(
        f"control={spec!r} is not a control store; use 'sqlite' or 'redis://host:port/db'"
    )


def is_shared_server(spec: str | None) -> bool:
    """A control store on a server (Redis): tracekit never creates its state there."""
    return bool(spec) and str(spec).startswith(("redis://", "rediss://", "unix://"))
