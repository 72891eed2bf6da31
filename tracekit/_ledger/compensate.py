"""Compensation: undo the side effects that stand, once each.

A write tool names its compensator (``@tracekit.tool(writes=True, reversible=True,
compensate=undo_refund)``, or ``"module:function"``); it is called with the original call's
arguments. ``plan`` lists what stands for a run (fired, or may have fired) and what each needs;
``execute`` runs every registered compensator once: the entry's compensation is reserved in the
control store first, so running it twice, or from two shells, undoes each effect once. Each
success is recorded as a ``compensated`` ledger row for the entry.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from .._base.encode import canonical_json
from .._capture import settings as _config
from .._query.views import connect, resolve_run
from ..errors import ControlError

__all__ = ["compensation_plan", "execute_compensation", "register_compensator"]

_COMPENSATORS: dict[str, Callable[..., Any] | str] = {}


def register_compensator(tool: str, fn: Callable[..., Any] | str) -> None:
    """Known compensators, by tool name (the decorator registers them)."""
    _COMPENSATORS[tool] = fn


def _resolve(fn: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(fn):
        return fn
    module, _, name = fn.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


_STANDING = """
SELECT l.entry_id, l.tool, coalesce(l.destination, '') AS destination, l.status, l.amount,
       coalesce(l.currency, '') AS currency, coalesce(l.reversible, false) AS reversible,
       l.call_id, c.args, l.tenant, l.release_id
FROM ledger AS l
LEFT JOIN tool_calls AS c ON c.run_id = l.run_id AND c.call_id = l.call_id
WHERE l.run_id = ? AND l.status IN ('fired', 'reserved')
ORDER BY l.ts
"""


def compensation_plan(run_id: str, store: str | os.PathLike[str] | None = None,
                      imports: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every effect of the run that stands, with what compensation it gets."""
    _import_tools(imports)
    with connect(store or _config.settings().store) as con:
        full = resolve_run(con, run_id)
        cursor = con.execute(_STANDING, [full])
        names = [d[0] for d in cursor.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    for row in rows:
        row["run_id"] = full
        row["action"] = _action_for(row)
    return rows


def _import_tools(imports: tuple[str, ...]) -> None:
    """Import the agent's tool modules (from the current folder too, as ``python -m`` does)."""
    if imports and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"--import {module}: {exc} (run from the project root, or set "
                             "PYTHONPATH)") from None


def _action_for(row: dict[str, Any]) -> str:
    if not row["reversible"]:
        return "irreversible: needs a person"
    if row["tool"] not in _COMPENSATORS:
        return "no compensator registered (pass --import MODULE that defines the tool)"
    return "compensate" + (" (may have fired)" if row["status"] == "reserved" else "")


def execute_compensation(run_id: str, store: str | os.PathLike[str] | None = None,
                         imports: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run each registered compensator once; returns the plan with each entry's outcome."""
    plan = compensation_plan(run_id, store, imports)
    control = _config.control_store()
    for row in plan:
        row["outcome"] = _compensate_one(row, control) if row["action"].startswith(
            "compensate") else "skipped"
    return plan


def _compensate_one(row: dict[str, Any], control: Any) -> str:
    key = f"compensate:{row['entry_id']}"
    try:
        held = control.reserve(key, {"status": "reserved", "entry_id": row["entry_id"]})
    except ControlError as exc:
        return f"not run: control store unavailable ({exc})"
    if held is not None and held.get("status") == "failed":
        control.settle(key, {"status": "reserved", "entry_id": row["entry_id"]})  # a retry
    elif held is not None:
        return "already compensated" if held.get("status") == "done" else \
            "already being compensated elsewhere (or interrupted: check it by hand)"
    args = json.loads(row["args"]) if row.get("args") else {}
    try:
        result = _resolve(_COMPENSATORS[row["tool"]])(**args)
    except Exception as exc:
        control.settle(key, {"status": "failed", "entry_id": row["entry_id"]})
        return f"failed: {type(exc).__name__}: {exc}"
    _config.get_recorder().ledger.append({
        "entry_id": row["entry_id"], "run_id": row["run_id"], "call_id": row["call_id"],
        "tenant": row["tenant"], "release_id": row["release_id"],
        "tool": row["tool"], "destination": row["destination"] or None,
        "action": "compensate", "status": "compensated", "amount": row["amount"],
        "currency": row["currency"] or None, "reversible": True,
        "compensates": row["entry_id"], "result": canonical_json(result),
    })
    control.settle(key, {"status": "done", "entry_id": row["entry_id"]})
    return "compensated"
