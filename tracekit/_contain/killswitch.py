"""The kill switch from the on-call's side: halt, unhalt and status on the control store the
project's agents read (``tracekit.halt`` and the ``tracekit halt`` command are these)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .._base.project import find_project_settings
from .._base.vocab import HaltLevel
from .._control.backends import open_control
from .._control.base import OnCallControl, flag_key, level_of, now_info
from .._control.breakglass import BreakGlass
from .._store.layout import resolve_root
from ..errors import ControlError, NothingToUnhalt, ReleaseStillHalted

__all__ = [
    "Status",
    "Switched",
    "break_glass_for",
    "halt",
    "open_control_for",
    "status",
    "unhalt",
]

_ORDER: dict[str, int] = {level: i for i, level in enumerate(HaltLevel)}


class Switched(NamedTuple):
    """What a halt or unhalt changed: the flag key, in which control store."""

    key: str
    control: str


@dataclass
class Status:
    """Every active halt and frozen tool (when, by whom, why) and the latest detector trips."""

    control: str
    halts: list[dict[str, Any]] = field(default_factory=list)
    trips: list[dict[str, Any]] = field(default_factory=list)


def open_control_for(
    store: str | os.PathLike[str] | None = None, control: str | None = None, init: bool = False
) -> OnCallControl:
    """The control store the project's agents use: ``control``, else the project's setting,
    else the SQLite file in the store root. It must exist unless ``init``: a halt written
    into a store no agent reads would be a false comfort."""
    if control is None:
        found = find_project_settings()
        control = found.control if found is not None else None
    return open_control(control, resolve_root(store), create=init)


@contextlib.contextmanager
def _opened(
    store: str | os.PathLike[str] | None, control: str | None, init: bool = False
) -> Iterator[OnCallControl]:
    con = open_control_for(store, control, init)
    try:
        yield con
    finally:
        con.close()


def break_glass_for(
    store: str | os.PathLike[str] | None = None, control: str | None = None
) -> BreakGlass | None:
    """The break-glass halt file of the embedded control store the project uses (None for a
    server store: there every guard reads the server)."""
    if control is None:
        found = find_project_settings()
        control = found.control if found is not None else None
    if control is None or control == "sqlite" or control.startswith("sqlite:"):
        path = (
            resolve_root(store) / "control.db" if control in (None, "sqlite") else Path(control[7:])
        )
        return BreakGlass(path)
    return None


def halt(
    level: str,
    target: str | None = None,
    reason: str = "",
    by: str | None = None,
    store: str | os.PathLike[str] | None = None,
    control: str | None = None,
    init: bool = False,
) -> Switched:
    """Halt the fleet (``global``), a ``tenant``, a ``release`` or a ``run``, or freeze a
    ``tool``: every guarded call under it is refused, in every process."""
    key = flag_key(level, target)
    if not reason.strip():
        raise ValueError('a halt needs a reason (--reason "..."): the next on-call reads it')
    info = now_info(reason, by=by, level=level, target=target)
    try:
        with _opened(store, control, init) as con:
            con.set_flag(key, info)
            return Switched(key, con.url)
    except ControlError as exc:  # damaged or locked: the break-glass file, if there is one
        glass = break_glass_for(store, control)
        if glass is None or "no control store at" in str(exc):
            raise
        glass.set_flag(key, {**info, "break_glass": True})
        return Switched(
            key,
            f"the break-glass file {glass.path} (every guard reads it; the "
            f"control store could not take it: {exc})",
        )


def unhalt(
    level: str,
    target: str | None = None,
    store: str | os.PathLike[str] | None = None,
    control: str | None = None,
) -> Switched:
    """Lift a halt or a freeze. A tenant's or run's halt stays while its release is halted."""
    key = flag_key(level, target)
    glass = break_glass_for(store, control)
    if glass is not None and glass.clear_flag(key):  # a break-glass halt is lifted first
        return Switched(key, f"the break-glass file {glass.path}")
    with _opened(store, control) as con:
        if level in (HaltLevel.TENANT, HaltLevel.RUN):
            _refuse_under_halted_release(con, level, str(target))
        if not con.clear_flag(key):
            raise NothingToUnhalt(
                f"{level} {target or ''} is not halted".replace("  ", " ")
                + f" in {con.url} (see `tracekit status`)"
            )
        return Switched(key, con.url)


def _refuse_under_halted_release(con: OnCallControl, level: str, target: str) -> None:
    doc = con.get(f"{level}:{target}")
    release_id = doc.get("release_id") if doc else None
    if release_id and flag_key(HaltLevel.RELEASE, release_id) in con.flags():
        raise ReleaseStillHalted(
            f"{level} {target} runs release {release_id}, which is halted: roll the release "
            f"back first, then `tracekit unhalt release {release_id}`"
        )


def status(
    store: str | os.PathLike[str] | None = None,
    control: str | None = None,
    trips: int = 10,
    init: bool = False,
) -> Status:
    """Every active halt and frozen tool and the last ``trips`` detector trips. ``init``
    creates the store (or re-initialises a Redis that came back empty)."""
    glass = break_glass_for(store, control)
    glass_flags = glass.flags() if glass is not None else {}
    try:
        with _opened(store, control, init) as con:
            flags, recent, url = con.flags(), con.trips(trips), con.url
    except ControlError as exc:
        if init or (not glass_flags and "damaged" not in str(exc)):
            raise  # --init never initialises over a damaged store
        flags, recent, url = {}, [], f"UNAVAILABLE: {exc}"
    flags = {**flags, **glass_flags}
    active = sorted(
        ({"key": key, **info} for key, info in flags.items()),
        key=lambda f: (_ORDER.get(level_of(f["key"]), 9), f["key"]),
    )
    return Status(url, active, recent)
