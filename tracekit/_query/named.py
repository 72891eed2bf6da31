"""Named postmortem queries: SQL files in the package, each with a one-line description.

A file's name is the query's name. Its header says what it answers and which parameters it takes::

    -- Tool calls per run per minute, busiest first.
    -- param: min_calls int = 1
    SELECT ... WHERE ... >= $min_calls

A parameter without a default is required; ``= null`` makes it optional (the SQL tests
``$name IS NULL``). Types: ``int``, ``float``, ``text``.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..errors import UnknownQuery

__all__ = ["NamedQuery", "UnknownQuery", "named_queries", "named_query", "run_named"]

_PARAM = re.compile(r"^--\s*param:\s*(\w+)\s+(int|float|text)(?:\s*=\s*(.+?))?\s*$")
_REQUIRED = object()
_CAST = {"int": int, "float": float, "text": str}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def parse(self, text: str) -> Any:
        """A value given as text (``--param k=v``), as the parameter's type."""
        if text.lower() == "null" and not self.required:
            return None
        try:
            return _CAST[self.type](text)
        except ValueError:
            raise ValueError(f"parameter {self.name} takes {self.type}, got {text!r}") from None

    def describe(self) -> str:
        if self.required:
            return f"{self.name} ({self.type}, required)"
        if self.default is None:
            return f"{self.name} ({self.type}, optional)"
        return f"{self.name} ({self.type}, default {self.default})"


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str
    params: tuple[Param, ...] = field(default=())

    def bind(self, given: dict[str, Any]) -> dict[str, Any]:
        """The values for every parameter: given ones (text is parsed), else defaults."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(
                f"query {self.name} has no parameter {unknown[0]}; it takes: "
                f"{self.signature() or 'no parameters'}"
            )
        values = {}
        for param in self.params:
            if param.name in given:
                value = given[param.name]
                values[param.name] = param.parse(value) if isinstance(value, str) else value
            elif param.required:
                raise ValueError(f"query {self.name} needs --param {param.name}=... ({param.type})")
            else:
                values[param.name] = param.default
        return values

    def signature(self) -> str:
        return ", ".join(p.describe() for p in self.params)


@functools.cache
def named_queries() -> dict[str, NamedQuery]:
    """Every named query shipped in the package, by name."""
    folder = resources.files("tracekit._query") / "queries"
    found = (
        _parse(entry.name[:-4], entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return {q.name: q for q in sorted(found, key=lambda q: q.name)}


def _parse(name: str, text: str) -> NamedQuery:
    header = [line for line in text.splitlines() if line.startswith("--")]
    description = header[0].lstrip("- ").strip() if header else name
    params = tuple(_param(line) for line in header if _PARAM.match(line))
    return NamedQuery(name, description, text, params)


def _param(line: str) -> Param:
    match = _PARAM.match(line)
    assert match is not None
    name, kind, default = match.groups()
    if default is None:
        return Param(name, kind)
    return Param(name, kind, None if default == "null" else _CAST[kind](default))


def named_query(name: str) -> NamedQuery:
    """The named query ``name``; an unknown name is an error naming the closest ones."""
    queries = named_queries()
    if name in queries:
        return queries[name]
    close = difflib.get_close_matches(name, list(queries), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownQuery(
        f"no named query {name!r}: {hint}`tracekit query --list` shows all {len(queries)}"
    )


def run_named(con: Any, name: str, **params: Any) -> Any:
    """Run a named query on a ``tracekit.connect()`` connection; returns the executed cursor
    (``.fetchall()``, ``.df()``, ``.arrow()``...). Parameters are keyword arguments."""
    query = named_query(name)
    return con.execute(query.sql, query.bind(params))
