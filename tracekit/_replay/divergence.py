"""Divergence: the first call the recording does not have stops agent replay, with the step,
the call, the nearest recorded calls (the fields that matched and differed) and a diff, secrets
masked as the trace has them."""

from __future__ import annotations

import difflib
import json
from typing import Any

from .._base.encode import canonical_json
from .._base.matching import masked, matched_fields, same_text, short
from .._capture.state import PROCESS
from ..errors import RecordingEnds, ReplayDivergence
from .recording import RecordedCall, RecordedRun

__all__ = ["divergence", "take"]

_SHOWN = 3  # nearest recorded calls named in a divergence
_DIFF_LINES = 40


def _near_miss(call: RecordedCall, step: int, name: str | None, actual: Any) -> tuple[int, str]:
    matched, differed = matched_fields(json.loads(call.args), actual)
    checks = [("step", call.step == step)]
    if name is not None:
        checks.append(("tool", call.name == name))
    for label, equal in checks:
        (matched if equal else differed).insert(0, label)
    score = (name in (None, call.name)) * 1000 + (call.step == step) * 100 + len(matched)
    text = f"{call.label()}: matched {', '.join(matched) or 'nothing'}"
    return score, text + (f"; differed {', '.join(differed)}" if differed else "")


def _pretty(text: str) -> list[str]:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True).splitlines()
    except ValueError:
        return text.splitlines()


def _diff(recorded: RecordedCall, actual: str) -> str:
    lines = list(
        difflib.unified_diff(
            _pretty(recorded.args),
            _pretty(actual),
            f"recorded {recorded.label()}",
            "actual",
            lineterm="",
            n=2,
        )
    )
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... ({len(lines) - _DIFF_LINES} more diff lines)"]
    return "\n".join(f"    {line}" for line in lines)


def _shown(actual: str, pool: list[RecordedCall]) -> str:
    """The actual call as a divergence may show it: never a secret the recording redacted
    (masked like the nearest recorded call, then through the configured redaction rules)."""
    value = json.loads(actual)
    for call in pool:
        value = masked(json.loads(call.args), value)
    return PROCESS.settings().redactor.redact_json(canonical_json(value))[0]


def divergence(
    run: RecordedRun, kind: str, step: int, name: str | None, actual: str, pool: list[RecordedCall]
) -> ReplayDivergence:
    actual = _shown(actual, [c for c in pool if c.step == step and name in (None, c.name)][:8])
    what = f"{kind} {name}" if name else kind
    head = (
        f"agent replay diverged in run {run.run_id} at step {step}: {what} with "
        f"{short(json.loads(actual), 200)} is not in the recording"
    )
    left = [c for c in pool if not c.taken]
    if run.exhausted():
        return RecordingEnds(
            f"the agent went on past the end of the recording of run "
            f"{run.run_id}: {what} at step {step}",
            run_id=run.run_id,
            step=step,
            kind=kind,
            actual=actual,
        )
    if not left:
        rest = sum(not c.taken for c in (*run.calls, *run.prompts))
        return ReplayDivergence(
            f"{head}\n  every recorded {kind} of the run was replayed, but "
            f"{rest} other recorded call(s) were not: the agent took "
            "another path",
            run_id=run.run_id,
            step=step,
            kind=kind,
            actual=actual,
        )
    value = json.loads(actual)
    near = [c for c in left if abs(c.step - step) <= 2] or left[:50]  # texts read: a few
    ranked = sorted(
        ((_near_miss(c, step, name, value), i, c) for i, c in enumerate(near)),
        key=lambda t: (-t[0][0], t[1]),
    )[:_SHOWN]
    shown = "\n".join(f"    {t[0][1]}" for t in ranked)
    best = ranked[0][2]
    message = (
        f"{head}\n  found {len(left)} recorded {kind} event(s) not yet replayed; the "
        f"nearest:\n{shown}\n  diff (recorded -> actual):\n{_diff(best, actual)}"
    )
    return ReplayDivergence(
        message, run_id=run.run_id, step=step, kind=kind, actual=actual, recorded=best.args
    )


def take(
    run: RecordedRun,
    pool: list[RecordedCall],
    kind: str,
    step: int,
    name: str | None,
    actual: str,
    upto: bool = False,
) -> RecordedCall:
    """The first recorded call not yet served with this logical key (step, name, arguments);
    ``upto``: recorded at this step or before (model calls made in parallel each start a step,
    in whatever order they answer)."""
    for call in pool:
        if call.taken or name not in (None, call.name):
            continue
        if (call.step <= step if upto else call.step == step) and same_text(call.args, actual):
            call.taken = True
            return call
    raise divergence(run, kind, step, name, actual, pool)
