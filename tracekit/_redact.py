"""Redaction of secrets from encoded payloads, before anything reaches disk.

Two kinds of rule: sensitive *key names* (the value under an ``Authorization`` or ``api_key`` key is
replaced whatever it looks like) and *value patterns* (a bearer token, an ``sk-...`` key or an AWS
access key is replaced wherever it appears). Redaction runs on the writer thread over JSON text; a
cheap lower-cased substring test skips the regular expressions for the common, clean payload.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._encode import dump_plain

__all__ = ["DEFAULT_KEYS", "DEFAULT_PATTERNS", "MARKER", "Redactor"]

MARKER = "[REDACTED]"

#: key names (matched whole, case-insensitive) whose values are always replaced
DEFAULT_KEYS: tuple[str, ...] = (
    r"authorization",
    r"proxy[-_]?authorization",
    r"(x[-_])?api[-_]?key",
    r"apikey",
    r"[\w-]*password[\w-]*",
    r"passwd",
    r"pwd",
    r"[\w-]*secret[\w-]*",
    r"([\w-]*[-_])?token",
    r"cookie",
    r"set[-_]cookie",
    r"private[-_]?key",
    r"(aws[-_])?access[-_]?key([-_]id)?",
    r"credentials?",
)

#: value patterns replaced wherever they appear in text
DEFAULT_PATTERNS: tuple[str, ...] = (
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
    r"(?i:basic)\s+[A-Za-z0-9+/=]{12,}",
    r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}",
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",
    r"xox[abposr]-[A-Za-z0-9-]{10,}",
    r"gh[pousr]_[A-Za-z0-9]{30,}",
)

# ``password=hunter2``, ``api_key: abc`` and ``?token=abc`` in free text and URLs: the key stays
# (also inside a JSON document held as a string: \"password\": \"...\")
_ASSIGNMENT = (
    r"\b(?i:api[-_]?key|apikey|password|passwd|pwd|[\w-]*secret|(?:access|refresh|auth|id)[-_]?token"
    r"|token)(?:\\\"|')?\s*[=:]\s*(?:\\?[\"'])?(?P<assigned>(?!{marker})[^\s&\"'\\,;}\]]+)"
)

# substrings (lower-cased) that must be present for a default rule to possibly match
_DEFAULT_HINTS: tuple[str, ...] = (
    "auth", "key", "pass", "pwd", "secret", "token", "cookie", "credential",
    "bearer", "basic", "sk-", "akia", "asia", "xox", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
)


@dataclass(frozen=True)
class Redactor:
    """Secret-scrubbing rules: the defaults plus the project's own key names and patterns.

    ``keys`` are regular expressions matched against whole key names, case-insensitively;
    ``patterns`` are regular expressions replaced wherever they occur in a value.
    """

    keys: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    marker: str = MARKER
    _key_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _quoted_key_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _value_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _custom: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(self.keys)
        patterns = tuple(self.patterns)
        keys = tuple(_scoped(rule) for rule in keys)
        patterns = tuple(_scoped(rule) for rule in patterns)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "patterns", patterns)
        key_re = re.compile("|".join(f"(?:{k})" for k in DEFAULT_KEYS + keys), re.IGNORECASE)
        assignment = _ASSIGNMENT.replace("{marker}", re.escape(self.marker))
        value_re = re.compile(
            "|".join(f"(?:{p})" for p in (assignment, *DEFAULT_PATTERNS, *patterns))
        )
        quoted = "|".join(f"(?:{k})" for k in DEFAULT_KEYS + keys)
        object.__setattr__(self, "_key_re", key_re)
        object.__setattr__(self, "_quoted_key_re", re.compile(f'"(?:{quoted})":', re.IGNORECASE))
        object.__setattr__(self, "_value_re", value_re)
        object.__setattr__(self, "_custom", bool(keys or patterns))

    def might_match(self, text: str) -> bool:
        """Cheap pre-check: False means no rule can match ``text``."""
        if self._custom:
            return True
        lowered = text.lower()
        return any(hint in lowered for hint in _DEFAULT_HINTS)

    def redact_json(self, text: str) -> tuple[str, int]:
        """Redact one JSON document; returns the new text and how many values were replaced."""
        if not text or not self.might_match(text):
            return text, 0
        value, count = None, 0
        if self._quoted_key_re.search(text):
            with contextlib.suppress(ValueError):
                value, count = self._redact_value(json.loads(text))
        if count:
            text = dump_plain(value)
        text, found = self._value_re.subn(self._replace, text)
        return text, count + found

    def _replace(self, match: re.Match[str]) -> str:
        if match.group("assigned") is None:
            return self.marker
        return match.group(0)[: match.start("assigned") - match.start()] + self.marker

    def redact_text(self, text: str) -> tuple[str, int]:
        """Redact free text (an error message): value patterns only."""
        if not text or not self.might_match(text):
            return text, 0
        return self._value_re.subn(self._replace, text)

    def _redact_value(self, value: Any) -> tuple[Any, int]:
        if isinstance(value, dict):
            return self._redact_dict(value)
        if isinstance(value, list):
            out, total = [], 0
            for item in value:
                new, n = self._redact_value(item)
                out.append(new)
                total += n
            return out, total
        return value, 0

    def _redact_dict(self, value: dict[str, Any]) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        total = 0
        for key, item in value.items():
            if item is not None and self._key_re.fullmatch(key):
                out[key] = self.marker
                total += 1
            else:
                out[key], n = self._redact_value(item)
                total += n
        return out, total


_GLOBAL_FLAGS = re.compile(r"^\(\?([imsx]+)\)")


def _scoped(rule: str) -> str:
    """A user's rule, checked, with leading global flags like ``(?i)`` scoped to the rule."""
    try:
        re.compile(rule)
        match = _GLOBAL_FLAGS.match(rule)
        if match:
            rule = f"(?{match.group(1)}:{rule[match.end():]})"
        re.compile(f"(?:{rule})|x")
        return rule
    except re.error as exc:
        raise ValueError(
            f"redaction rule {rule!r} is not a valid regular expression: {exc}"
        ) from None


def make_redactor(spec: Redactor | dict[str, Iterable[str]] | None) -> Redactor:
    """Build the redactor from ``configure(redact=...)``: a Redactor, a dict or None."""
    if spec is None:
        return Redactor()
    if isinstance(spec, Redactor):
        return spec
    if isinstance(spec, dict):
        unknown = set(spec) - {"keys", "patterns", "marker"}
        if unknown:
            raise ValueError(
                f"redact= has unknown entries {sorted(unknown)}; use keys, patterns, marker"
            )
        return Redactor(
            keys=tuple(spec.get("keys", ())),
            patterns=tuple(spec.get("patterns", ())),
            marker=str(spec.get("marker", MARKER)),
        )
    raise TypeError("redact= takes a tracekit.Redactor or a dict with keys/patterns")
