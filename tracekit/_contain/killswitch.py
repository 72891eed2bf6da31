"""The kill switch from the on-call's side: halt, unhalt and status on the control store the
project's agents read (``tracekit.halt`` and the ``tracekit halt`` command are these)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._base.project import find_project_settings
from .._base.vocab import HaltLevel
from .._control.backends import open_control
from .._control.base import OnCallControl, flag_key, level_of, now_info
from .._store.layout import resolve_root
from ..errors import NothingToUnhalt, ReleaseStillHalted

__all__ = ["Status", "Switched", "halt", "open_control_for", "status", "unhalt"]

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
    with _opened(store, control, init) as con:
        con.set_flag(key, now_info(reason, by=by, level=level, target=target))
        return Switched(key, con.url)


def unhalt(
    level: str,
    target: str | None = None,
    store: str | os.PathLike[str] | None = None,
    control: str | None = None,
) -> Switched:
    """Lift a halt or a freeze. A tenant's or run's halt stays while its release is halted."""
    key = flag_key(level, target)
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
    with _opened(store, control, init) as con:
        flags, recent, url = con.flags(), con.trips(trips), con.url
    active = sorted(
        ({"key": key, **info} for key, info in flags.items()),
        key=lambda f: (_ORDER.get(level_of(f["key"]), 9), f["key"]),
    )
    return Status(url, active, recent)
