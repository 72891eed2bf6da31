"""Candidate thresholds for suggest-bounds, from what an incident's recorded decisions show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._base.vocab import EventKind

__all__ = ["by_runs", "by_spend", "by_steps_or_calls", "fractions"]

_MAX_CANDIDATES = 24
_Rows = Sequence[dict[str, Any]]


def _counts(observed: int, start: int = 1) -> list[float]:
    """Every count up to what was observed (at most 24 of them, spaced geometrically)."""
    top = max(2, min(observed, 200))
    if top <= _MAX_CANDIDATES:
        return list(range(start, top + 1))
    ratio = top ** (1 / _MAX_CANDIDATES)
    return sorted({max(1, round(ratio**k)) for k in range(_MAX_CANDIDATES + 1)})


def by_steps_or_calls(rows: _Rows) -> list[float]:
    """Counts up to the incident's steps or tool calls, whichever went further."""
    steps = max((r["step"] or 0 for r in rows), default=0)
    calls = sum(1 for r in rows if r["kind"] == EventKind.TOOL_CALL)
    return _counts(max(steps, calls))


def by_runs(rows: _Rows) -> list[float]:
    """Counts from zero up to the incident's number of runs (fan-out: depth and width)."""
    return _counts(len({r["run_id"] for r in rows}), start=0)


def by_spend(rows: _Rows) -> list[float]:
    """Fractions of what the incident spent."""
    total = float(sum(r["cost_usd"] or 0.0 for r in rows))
    if total <= 0:
        return []
    steps = {round(total * k / _MAX_CANDIDATES, 6) for k in range(1, _MAX_CANDIDATES)}
    return sorted(v for v in steps if v > 0)


def fractions(rows: _Rows) -> list[float]:
    """Rates from 5 % to 95 % (an error rate, say)."""
    return [round(k / 20, 2) for k in range(1, 20)]
