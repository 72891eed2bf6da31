"""Redaction of secrets from encoded payloads, before anything reaches disk.

Two kinds of rule: sensitive *key names* (the value under an ``Authorization`` or ``api_key`` key is
replaced whatever it looks like) and *value patterns* (a bearer token, an ``sk-...`` key or an AWS
access key is replaced wherever it appears). Redaction runs on the writer thread over JSON text; a
cheap lower-cased substring test skips the regular expressions for the common, clean payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .encode import dump_plain

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
    r"(openai|anthropic)[-_](organization|project)([-_]id)?",  # who is billed: an org id
)

#: value patterns replaced wherever they appear in text
DEFAULT_PATTERNS: tuple[str, ...] = (
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
    r"(?i:basic)\s+[A-Za-z0-9+/=]{12,}",
    r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}",
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",
    r"xox[abposr]-[A-Za-z0-9-]{10,}",
    r"gh[pousr]_[A-Za-z0-9]{30,}",
    r"(?<![A-Za-z0-9_-])org-[A-Za-z0-9]{16,}",  # an OpenAI organisation id
    r"(?<![A-Za-z0-9_-])proj_[A-Za-z0-9]{16,}",  # an OpenAI project id
)

# ``password=hunter2``, ``api_key: abc`` and ``?token=abc`` in free text and URLs: the key stays
# (also inside a JSON document held as a string: \"password\": \"...\")
_ASSIGNMENT = (
    r"\b(?i:api[-_]?key|apikey|password|passwd|pwd|[\w-]*secret|(?:access|refresh|auth|id)[-_]?token"
    r"|token)(?:\\?\"|')?\s*[=:]\s*(?:\\?[\"'])?(?P<assigned>(?!{marker})[^\s&\"'\\,;}\]]+)"
)

# substrings (lower-cased) that must be present for a default rule to possibly match
_DEFAULT_HINTS: tuple[str, ...] = (
    "auth",
    "key",
    "pass",
    "pwd",
    "secret",
    "token",
    "cookie",
    "credential",
    "bearer",
    "basic",
    "sk-",
    "akia",
    "asia",
    "xox",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "org-",
    "proj_",
    "organization",
    "openai-project",
    "openai_project",
)


@dataclass(frozen=True)
class Redactor:
    """Secret-scrubbing rules: the defaults plus the project's own key names and patterns.

    ``keys`` are regular expressions matched against whole key names, case-insensitively;
    ``patterns`` are regular expressions replaced wherever they occur in a value.

    A JSON document is parsed and walked: a value under a sensitive key is replaced whatever it
    is, and every string value goes through the value rules. Each default rule runs only when a
    literal it needs is in the string, so clean text costs a few substring tests.
    """

    keys: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    marker: str = MARKER
    _key_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _rules: tuple[tuple[Callable[[str, str], bool], re.Pattern[str]], ...] = field(
        init=False, repr=False, compare=False
    )
    _key_cache: dict[str, bool] = field(init=False, repr=False, compare=False)
    _custom: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(_scoped(rule) for rule in self.keys)
        patterns = tuple(_scoped(rule) for rule in self.patterns)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "patterns", patterns)
        key_re = re.compile("|".join(f"(?:{k})" for k in DEFAULT_KEYS + keys), re.IGNORECASE)
        assignment = re.compile(_ASSIGNMENT.replace("{marker}", re.escape(self.marker)))
        rules: list[tuple[Callable[[str, str], bool], re.Pattern[str]]]
        rules = [(_assignment_hint, assignment)]
        rules += [
            (hint, re.compile(p)) for hint, p in zip(_PATTERN_HINTS, DEFAULT_PATTERNS, strict=True)
        ]
        rules += [(_always, re.compile(p)) for p in patterns]
        object.__setattr__(self, "_key_re", key_re)
        object.__setattr__(self, "_rules", tuple(rules))
        object.__setattr__(self, "_key_cache", {})
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
        try:
            value = json.loads(text)
        except ValueError:  # not JSON after all: scrub it as text
            return self.redact_text(text)
        value, count = self._redact_value(value)
        return (dump_plain(value), count) if count else (text, 0)

    def redact_text(self, text: str) -> tuple[str, int]:
        """Redact free text (an error message, a label): the value rules."""
        if not text or not self.might_match(text):
            return text, 0
        return self._redact_string(text)

    def redact_columns(
        self,
        columns: dict[str, Sequence[Any]],
        json_columns: Iterable[str],
        text_columns: Iterable[str] = (),
    ) -> dict[int, int]:
        """Redact whole columns of a table in place (JSON documents in ``json_columns``, free
        text in ``text_columns``); returns {row: values replaced} for the rows that changed.

        Each distinct value is checked once (a looping agent repeats its payloads), and a
        column whose values cannot match any rule is passed over in one scan. The recorder,
        the ledger writer and export all redact through here.
        """
        counts: dict[int, int] = {}
        for name, scrub in ((n, self.redact_json) for n in json_columns):
            self._redact_column(columns, name, scrub, counts)
        for name, scrub in ((n, self.redact_text) for n in text_columns):
            self._redact_column(columns, name, scrub, counts)
        return counts

    def _redact_column(
        self,
        columns: dict[str, Sequence[Any]],
        name: str,
        scrub: Callable[[str], tuple[str, int]],
        counts: dict[int, int],
    ) -> None:
        column = columns.get(name)
        if column is None:
            return
        distinct = [v for v in set(column) if type(v) is str]
        if not self.might_match("\x00".join(distinct)):
            return
        done = {v: scrub(v) for v in distinct if self.might_match(v)}
        if not any(n for _, n in done.values()):
            return
        values = list(column)
        for i, value in enumerate(values):
            hit = done.get(value) if type(value) is str else None
            if hit is not None and hit[1]:
                values[i] = hit[0]
                counts[i] = counts.get(i, 0) + hit[1]
        columns[name] = values

    def _redact_string(self, text: str) -> tuple[str, int]:
        lowered = text.lower()
        total = 0
        for hint, rule in self._rules:
            if hint(text, lowered):
                text, n = rule.subn(self._replace, text)
                if n:
                    total += n
                    lowered = text.lower()
        return text, total

    def _replace(self, match: re.Match[str]) -> str:
        assigned = match.groupdict().get("assigned")
        if assigned is None:
            return self.marker
        return match.group(0)[: match.start("assigned") - match.start()] + self.marker

    def _sensitive(self, key: str) -> bool:
        cache = self._key_cache
        found = cache.get(key)
        if found is None:
            if len(cache) > 10_000:
                cache.clear()
            found = cache[key] = self._key_re.fullmatch(key) is not None
        return found

    def _redact_value(self, value: Any) -> tuple[Any, int]:
        if isinstance(value, str):
            return self._redact_string(value)
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
            if item is not None and self._sensitive(key):
                out[key] = self.marker
                total += 1
            else:
                out[key], n = self._redact_value(item)
                total += n
        return out, total


def _always(text: str, lowered: str) -> bool:
    return True


def _assignment_hint(text: str, lowered: str) -> bool:
    return ("=" in text or ":" in text) and any(w in lowered for w in _ASSIGNMENT_WORDS)


_ASSIGNMENT_WORDS = ("key", "pass", "pwd", "secret", "token")

#: the literal each default pattern needs, tested before the pattern runs (same order)
_PATTERN_HINTS: tuple[Callable[[str, str], bool], ...] = (
    lambda text, low: "bearer" in low,
    lambda text, low: "basic" in low,
    lambda text, low: "sk-" in text,
    lambda text, low: "AKIA" in text or "ASIA" in text,
    lambda text, low: "xox" in text,
    lambda text, low: "gh" in text and "_" in text,
    lambda text, low: "org-" in text,
    lambda text, low: "proj_" in text,
)


_GLOBAL_FLAGS = re.compile(r"^\(\?([imsx]+)\)")


def _scoped(rule: str) -> str:
    """A user's rule, checked, with leading global flags like ``(?i)`` scoped to the rule."""
    try:
        re.compile(rule)
        match = _GLOBAL_FLAGS.match(rule)
        if match:
            rule = f"(?{match.group(1)}:{rule[match.end() :]})"
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
