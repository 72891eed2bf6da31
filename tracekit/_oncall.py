"""The on-call API: what the on-call engineer runs during an incident, as library calls.

``tracekit.halt`` / ``unhalt`` / ``status`` work the kill switch; ``tracekit.scope`` says which
side effects landed; ``tracekit.compensate`` plans (and with ``execute=True`` runs) the undoing
of a run's standing effects. Each ``tracekit`` command of the same name is one call of these.
"""

from __future__ import annotations

import importlib
import os
import sys
from datetime import datetime
from typing import Any

from ._capture.state import PROCESS
from ._contain.killswitch import Status, Switched, halt, status, unhalt
from ._ledger import compensate as _compensation
from ._store.layout import Store, resolve_root

__all__ = ["Status", "Switched", "compensate", "halt", "scope", "status", "unhalt"]


def scope(
    run: str | None = None,
    tenant: str | None = None,
    release: str | None = None,
    since: datetime | None = None,
    store: str | os.PathLike[str] | None = None,
) -> Any:
    """The side effects that landed for a run, a tenant (``since`` a time) or a release: by
    destination and action, and every entry that still stands. Returns a ``Scope``."""
    from ._query.scope import scope as landed
    from ._query.views import connect

    with connect(_existing(store)) as con:
        return landed(con, run, tenant, release, since)


def compensate(
    run: str,
    store: str | os.PathLike[str] | None = None,
    execute: bool = False,
    imports: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Every effect of ``run`` that stands, with what compensation it gets; with ``execute``,
    each registered compensator runs once (a ``compensated`` ledger row is written to the
    configured store). ``imports`` are the modules that define the tools (and register their
    compensators)."""
    from ._query.scope import standing_effects
    from ._query.views import connect

    _import_tools(imports)
    with connect(_existing(store)) as con:
        planned = _compensation.plan(standing_effects(con, run))
    if not execute:
        return planned
    return _compensation.execute(planned, PROCESS.ledger_control(), PROCESS.recorder().ledger)  # type: ignore[attr-defined]


def _existing(store: str | os.PathLike[str] | None) -> Any:
    root = resolve_root(store) if store is not None else PROCESS.settings().store
    if not Store(root).exists():
        raise ValueError(
            f"no tracekit store at {root}: record a run first (try `tracekit "
            "demo`), or pass --store / set TRACEKIT_HOME"
        )
    return root


def _import_tools(imports: tuple[str, ...]) -> None:
    """Import the agent's tool modules (from the current folder too, as ``python -m`` does)."""
    if imports and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(
                f"--import {module}: {exc} (run from the project root, or set PYTHONPATH)"
            ) from None
