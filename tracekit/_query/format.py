"""Rendering query results for a terminal: table, csv or json."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["FORMATS", "render"]

FORMATS = ("table", "csv", "json")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, _dt.datetime):
        return value.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _clip(text: str, width: int | None) -> str:
    text = text.replace("\n", " ")
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 1)] + "…"


#: a column is padded to its longest cell up to this; a longer cell (``show --full``) overflows
#: its own row instead of pushing every other row's columns out to its width
_PAD_UP_TO = 60


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None) -> str:
    cells = [[_clip(_cell(v), width) for v in row] for row in rows]
    widths = [
        max([len(c), *(min(len(r[i]), _PAD_UP_TO) for r in cells)]) for i, c in enumerate(columns)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([line.rstrip(), rule, *body])


def _csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue().rstrip("\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    records = [{c: _json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return json.dumps(records, indent=2, ensure_ascii=False)


def render(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str = "table",
    width: int | None = 60,
) -> str:
    """Render rows as an aligned table (cells clipped to ``width``), CSV or a JSON array."""
    if fmt == "csv":
        return _csv(columns, rows)
    if fmt == "json":
        return _json(columns, rows)
    return _table(columns, rows, width)
