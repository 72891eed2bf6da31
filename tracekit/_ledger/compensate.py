"""Compensation: undo the side effects that stand, once each.

``plan`` says, for each effect of a run that stands (fired, or may have fired), what
compensation it gets; ``execute`` runs every registered compensator once. The entry's
compensation is reserved in the control store first, so running it twice, or from two shells,
undoes each effect once. Each success is recorded as a ``compensated`` ledger row for the entry.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from .._base.encode import canonical_json
from .._base.schema import LedgerRow
from .._base.vocab import LedgerStatus
from .._control.base import LedgerControl
from ..errors import ControlError
from .registry import compensator_for, has_compensator

__all__ = ["LedgerAppender", "execute", "plan"]

COMPENSATE = "compensate"


class LedgerAppender(Protocol):
    """Where ledger rows go (the recorder's ledger writer)."""

    def append(self, row: LedgerRow, durable: bool = True) -> None: ...


def plan(standing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each standing effect with its ``action``: compensate, or why not."""
    return [{**row, "action": _action_for(row)} for row in standing]


def _action_for(row: dict[str, Any]) -> str:
    if not row["reversible"]:
        return "irreversible: needs a person"
    if not has_compensator(row["tool"]):
        return "no compensator registered (pass --import MODULE that defines the tool)"
    maybe = " (may have fired)" if row["status"] == LedgerStatus.RESERVED else ""
    return COMPENSATE + maybe


def execute(
    planned: list[dict[str, Any]], control: LedgerControl, ledger: LedgerAppender
) -> list[dict[str, Any]]:
    """Run each planned compensation once; each row gets its ``outcome``."""
    for row in planned:
        row["outcome"] = (
            _compensate_one(row, control, ledger)
            if row["action"].startswith(COMPENSATE)
            else "skipped"
        )
    return planned


def _compensate_one(row: dict[str, Any], control: LedgerControl, ledger: LedgerAppender) -> str:
    key = f"compensate:{row['entry_id']}"
    taken = _take(key, row, control)
    if taken is not None:
        return taken
    args = json.loads(row["args"]) if row.get("args") else {}
    try:
        result = compensator_for(row["tool"])(**args)
    except Exception as exc:
        control.settle(key, {"status": "failed", "entry_id": row["entry_id"]})
        return f"failed: {type(exc).__name__}: {exc}"
    ledger.append(_compensated_row(row, result))
    control.settle(key, {"status": "done", "entry_id": row["entry_id"]})
    return "compensated"


def _take(key: str, row: dict[str, Any], control: LedgerControl) -> str | None:
    """Reserve the entry's compensation; None when this call may run it, else why not."""
    mine = {"status": "reserved", "entry_id": row["entry_id"]}
    try:
        held = control.reserve(key, mine)
    except ControlError as exc:
        return f"not run: control store unavailable ({exc})"
    if held is not None and held.get("status") == "failed":
        control.settle(key, mine)  # a retry of a compensation that failed
    elif held is not None:
        return (
            "already compensated"
            if held.get("status") == "done"
            else "already being compensated elsewhere (or interrupted: check it by hand)"
        )
    return None


def _compensated_row(row: dict[str, Any], result: Any) -> LedgerRow:
    return {
        "entry_id": row["entry_id"],
        "run_id": row["run_id"],
        "call_id": row["call_id"],
        "tenant": row["tenant"],
        "release_id": row["release_id"],
        "tool": row["tool"],
        "destination": row["destination"] or None,
        "action": COMPENSATE,
        "status": LedgerStatus.COMPENSATED,
        "amount": row["amount"],
        "currency": row["currency"] or None,
        "reversible": True,
        "compensates": row["entry_id"],
        "result": canonical_json(result),
    }
