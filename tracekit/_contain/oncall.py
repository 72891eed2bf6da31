"""The on-call API: halt, unhalt and status. The CLI commands are thin wrappers of these."""

from __future__ import annotations

import os
from typing import Any

from .._control.backends import open_control
from .._control.base import ControlStore, flag_key, now_info
from .._store.layout import resolve_root
from ..errors import NothingToUnhalt, ReleaseStillHalted
from .guard import load_project_settings

__all__ = ["NothingToUnhalt", "ReleaseStillHalted", "halt", "open_control_for", "status", "unhalt"]


def open_control_for(
    store: str | os.PathLike[str] | None = None, control: str | None = None,
    init: bool = False,
) -> ControlStore:
    """The control store the project's agents use: ``control``, else the project's setting,
    else the SQLite file in the store root. It must exist unless ``init``: a halt written
    into a store no agent reads would be a false comfort."""
    if control is None:
        found = load_project_settings()
        control = str(found[0]["control"]) if found and found[0].get("control") else None
    return open_control(control, resolve_root(store), create=init)


def halt(level: str, target: str | None = None, reason: str = "", by: str | None = None,
         store: str | os.PathLike[str] | None = None, control: str | None = None,
         init: bool = False) -> tuple[str, str]:
    """Halt the fleet, a tenant, a release or a run, or freeze a tool.

    Returns the flag key and the control store's address."""
    key = flag_key(level, target)
    if not reason.strip():
        raise ValueError("a halt needs a reason (--reason \"...\"): the next on-call reads it")
    con = open_control_for(store, control, init)
    try:
        con.set_flag(key, now_info(reason, by=by, level=level, target=target))
        return key, con.url
    finally:
        con.close()


def unhalt(level: str, target: str | None = None,
           store: str | os.PathLike[str] | None = None,
           control: str | None = None) -> tuple[str, str]:
    """Lift a halt or a freeze. A tenant's or run's halt stays while its release is halted.

    Returns the flag key and the control store's address."""
    key = flag_key(level, target)
    con = open_control_for(store, control)
    try:
        if level in ("tenant", "run"):
            _refuse_under_halted_release(con, level, str(target))
        if not con.clear_flag(key):
            raise NothingToUnhalt(f"{level} {target or ''} is not halted".replace("  ", " ")
                                  + f" in {con.url} (see `tracekit status`)")
        return key, con.url
    finally:
        con.close()


def _refuse_under_halted_release(con: ControlStore, level: str, target: str) -> None:
    doc = con.get(f"{level}:{target}")
    release_id = doc.get("release_id") if doc else None
    if release_id and flag_key("release", release_id) in con.flags():
        raise ReleaseStillHalted(
            f"{level} {target} runs release {release_id}, which is halted: roll the release "
            f"back first, then `tracekit unhalt release {release_id}`"
        )


def status(store: str | os.PathLike[str] | None = None, control: str | None = None,
           trips: int = 10, init: bool = False) -> dict[str, Any]:
    """Every active halt and frozen tool (when, by whom, why) and the last detector trips.

    ``init`` creates (or, for a Redis that came back empty, re-initialises) the store."""
    con = open_control_for(store, control, init)
    try:
        flags = con.flags()
        recent = con.trips(trips)
        url = con.url
    finally:
        con.close()
    order = {"global": 0, "tenant": 1, "release": 2, "run": 3, "tool": 4}
    active = sorted(
        ({"key": key, **info} for key, info in flags.items()),
        key=lambda f: (order.get(_level_of(f["key"]), 9), f["key"]),
    )
    return {"control": url, "halts": active, "trips": recent}


def _level_of(key: str) -> str:
    return "tool" if key.startswith("freeze:") else key.split(":")[1]
