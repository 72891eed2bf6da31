"""Two runs side by side: yesterday's good run and today's bad one, or a run before and after a
release, aligned step by step, with the first point where their decisions diverge.

A run's decisions at a step are its model output, its tool calls (tool and canonical arguments)
and the guard's refusals, in recorded order. Prompts are left out of the alignment (they differ
whenever anything before them did); the release triples are compared on their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .._base.matching import differences as paths
from .._base.vocab import REFUSALS, EventKind
from .views import resolve_run

__all__ = ["RunDiff", "diff_runs"]

_DECISIONS = """
SELECT step, kind, name, args, output, status, tenant, release_id, model_version,
       prompt_version, tools_version
FROM events
WHERE run_id = ? AND kind IN ('model_output', 'tool_call', 'guard', 'error')
ORDER BY seq
"""
_SHOWN = 60


@dataclass
class RunDiff:
    """Where two runs part ways: ``step`` is None when their decisions are the same."""

    run_a: str
    run_b: str
    rows: list[tuple[int, str, str, bool]] = field(default_factory=list)  # step, A, B, same
    step: int | None = None
    differences: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)  # release triple, tenant

    def summary(self) -> str:
        head = f"{self.run_a} vs {self.run_b}: "
        if self.step is None:
            return head + f"the same decisions over {len(self.rows)} step(s)"
        return head + f"first divergence at step {self.step}"


def diff_runs(con: Any, run_a: str, run_b: str) -> RunDiff:
    """Align two runs (ids or unique prefixes) step by step and find where they diverge."""
    a, b = resolve_run(con, run_a), resolve_run(con, run_b)
    steps_a, first_a = _steps(con, a)
    steps_b, first_b = _steps(con, b)
    result = RunDiff(a, b, context=_context(first_a, first_b))
    for step in sorted(steps_a.keys() | steps_b.keys()):
        left, right = steps_a.get(step, []), steps_b.get(step, [])
        same = [d[:3] for d in left] == [d[:3] for d in right]
        result.rows.append((step, _show(left), _show(right), same))
        if not same and result.step is None:
            result.step = step
            result.differences = _differences(left, right)
    return result


def _steps(con: Any, run_id: str) -> tuple[dict[int, list[tuple[Any, ...]]], dict[str, Any]]:
    """A run's decisions by step: (kind, name, canonical args, output)."""
    cursor = con.execute(_DECISIONS, [run_id])
    columns = [d[0] for d in cursor.description]
    rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    steps: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        if row["kind"] == EventKind.GUARD and row["status"] not in REFUSALS:
            continue
        decision = (
            row["kind"],
            row["name"],
            row["args"]
            if row["kind"] == EventKind.TOOL_CALL
            else row["status"]
            if row["kind"] == EventKind.GUARD
            else None,
            row["output"],
        )
        steps.setdefault(int(row["step"] or 0), []).append(decision)
    return steps, rows[0] if rows else {}


def _show(decisions: list[tuple[Any, ...]]) -> str:
    return "; ".join(_one(d) for d in decisions) or "-"


def _one(decision: tuple[Any, ...]) -> str:
    kind, name, args, _ = decision
    if kind == EventKind.TOOL_CALL:
        return f"{name}({_clip(_args(args))})"
    if kind == EventKind.GUARD:
        return f"guard {args}: {name}"
    if kind == EventKind.ERROR:
        return "error"
    return "model"


def _args(text: str | None) -> str:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return str(text)
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in value.items())
    return json.dumps(value)


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _differences(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> list[str]:
    """A structural diff of the step where the runs part: per decision, what changed."""
    out = []
    for index in range(max(len(left), len(right))):
        a = left[index] if index < len(left) else None
        b = right[index] if index < len(right) else None
        if a is not None and b is not None and a[:3] == b[:3]:
            continue
        if a is None or b is None:
            present = a or b
            assert present is not None
            side = "A" if b is None else "B"
            out.append(f"decision {index + 1}: only {side} has {_one(present)}")
        elif a[:2] != b[:2]:
            out.append(f"decision {index + 1}: A {_one(a)}, B {_one(b)}")
        else:
            found = paths(
                json.loads(a[2] or "null"), json.loads(b[2] or "null"), "args", ("A", "B")
            )
            out += [f"decision {index + 1} {a[1]}: {p}" for p in found]
    return out


def _context(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """How the two runs' release triples differ (nothing when they share one)."""
    return [
        f"{label}: A {a.get(key)}, B {b.get(key)}"
        for label, key in (
            ("model", "model_version"),
            ("prompt", "prompt_version"),
            ("tools", "tools_version"),
            ("tenant", "tenant"),
        )
        if a.get(key) != b.get(key)
    ]
