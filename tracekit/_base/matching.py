"""Matching recorded JSON against what an agent does now, where a redacted recorded value
(the redaction marker, or a string with the marker in it) matches whatever the agent sends:
the agent under replay sends its own key, the recording holds ``[REDACTED]``.

Agent replay matches calls with these, the cassette matches HTTP bodies, and run diff and
replay's near-miss reports show the paths that differ.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .encode import canonical_json
from .redact import MARKER

__all__ = ["differences", "masked", "matched_fields", "same", "same_text", "short"]


def same(recorded: Any, actual: Any) -> bool:
    """Equal, where a redacted recorded value matches whatever the agent sent."""
    if isinstance(recorded, str) and MARKER in recorded:
        if recorded == MARKER:
            return True
        pattern = ".*".join(re.escape(p) for p in recorded.split(MARKER))
        return isinstance(actual, str) and re.fullmatch(pattern, actual, re.S) is not None
    if isinstance(recorded, dict) and isinstance(actual, dict):
        return recorded.keys() == actual.keys() and all(
            same(v, actual[k]) for k, v in recorded.items()
        )
    if isinstance(recorded, list) and isinstance(actual, list):
        return len(recorded) == len(actual) and all(
            same(a, b) for a, b in zip(recorded, actual, strict=True)
        )
    return bool(recorded == actual)


def same_text(recorded: str, actual: str) -> bool:
    if recorded == actual:
        return True
    if MARKER not in recorded:
        return False
    return same(json.loads(recorded), json.loads(actual))


def matched_fields(recorded: Any, actual: Any, shown: int = 3) -> tuple[list[str], list[str]]:
    """(matched, differed) fields of two call arguments, for the near-miss report: the
    top-level fields that matched, and the paths (down to the leaves) that differed."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        keys = sorted(recorded.keys() | actual.keys())
        matched = [
            f"args.{k}"
            for k in keys
            if k in recorded and k in actual and same(recorded[k], actual[k])
        ]
    else:
        matched = ["args"] if same(recorded, actual) else []
    return matched, differences(recorded, actual, "args")[:shown]


def differences(
    recorded: Any, actual: Any, path: str, labels: tuple[str, str] = ("recorded", "actual")
) -> list[str]:
    """Where two JSON values differ, as paths with both values."""
    if same(recorded, actual):
        return []
    if isinstance(recorded, dict) and isinstance(actual, dict):
        return [
            d
            for k in sorted(recorded.keys() | actual.keys())
            for d in differences(
                recorded.get(k, "<absent>"), actual.get(k, "<absent>"), f"{path}.{k}", labels
            )
        ]
    if isinstance(recorded, list) and isinstance(actual, list) and len(recorded) == len(actual):
        return [
            d
            for i, (a, b) in enumerate(zip(recorded, actual, strict=True))
            for d in differences(a, b, f"{path}[{i}]", labels)
        ]
    return [f"{path} ({labels[0]} {short(recorded)}, {labels[1]} {short(actual)})"]


def short(value: Any, limit: int = 60) -> str:
    text = canonical_json(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def masked(recorded: Any, actual: Any) -> Any:
    """``actual`` with what matched a redacted recorded value shown redacted, as recorded."""
    if isinstance(recorded, str) and MARKER in recorded and same(recorded, actual):
        return recorded
    if isinstance(recorded, dict) and isinstance(actual, dict):
        return {k: masked(recorded[k], v) if k in recorded else v for k, v in actual.items()}
    if isinstance(recorded, list) and isinstance(actual, list) and len(recorded) == len(actual):
        return [masked(a, b) for a, b in zip(recorded, actual, strict=True)]
    return actual
