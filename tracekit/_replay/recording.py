"""An incident's recording, as agent replay serves it: each run with its tool calls, prompts
(their texts read only when the replay reaches them), answers and clock/random draws."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .._base.vocab import EventKind

__all__ = ["COLUMNS", "Prompts", "RecordedCall", "RecordedRun", "load_runs"]

COLUMNS = (
    "run_id",
    "parent_run_id",
    "tenant",
    "seq",
    "step",
    "ts",
    "kind",
    "name",
    "call_id",
    "args",
    "output",
    "status",
    "error",
    "cost_usd",
    "latency_ms",
    "attrs",
)


@dataclass
class RecordedCall:
    """One recorded decision that replay can serve: a tool call or a model call.

    A prompt's text (it can be the whole conversation) is read from the bundle only when the
    replay gets to it: ``text`` is then a ``(prompts, row)`` reference."""

    step: int
    name: str | None
    text: str | tuple[Prompts, int]
    ts: float
    call_id: str | None
    result: dict[str, Any] | None = None
    taken: bool = False

    @property
    def args(self) -> str:
        if not isinstance(self.text, str):
            prompts, row = self.text
            self.text = prompts.text(row)
        return self.text

    def label(self) -> str:
        return f"{self.name} at step {self.step}"


class Prompts:
    """The bundle's prompt texts, read a row group at a time as the replay reaches them."""

    def __init__(self, path: Path) -> None:
        self.file = pq.ParquetFile(path)
        self.groups: list[int] = []  # row -> its row group
        self.offsets: list[int] = []  # row -> its index in that group
        self._read: dict[int, pa.ChunkedArray] = {}

    def rows(self) -> list[dict[str, Any]]:
        """Every prompt event but its text, each with ``args`` referring to the text."""
        columns = [c for c in COLUMNS if c != "args" and c in self.file.schema_arrow.names]
        found: list[dict[str, Any]] = []
        for group in range(self.file.num_row_groups):
            if not self._may_hold_prompts(group):
                continue
            table = self.file.read_row_group(group, columns=columns)
            for offset, row in enumerate(table.to_pylist()):
                if row["kind"] == EventKind.PROMPT:
                    row["args"] = (self, len(self.groups))
                    self.groups.append(group)
                    self.offsets.append(offset)
                    found.append(row)
        return found

    def _may_hold_prompts(self, group: int) -> bool:
        stats = (
            self.file.metadata.row_group(group)
            .column(self.file.schema_arrow.get_field_index("kind"))
            .statistics
        )
        if stats is None or not stats.has_min_max:
            return True
        return bool(stats.min <= EventKind.PROMPT <= stats.max)

    def text(self, row: int) -> str:
        group = self.groups[row]
        if group not in self._read:
            self._read[group] = self.file.read_row_group(group, columns=["args"])["args"]
        return self._read[group][self.offsets[row]].as_py() or "null"


@dataclass
class RecordedRun:
    run_id: str
    tenant: str
    parent: str | None
    start: float
    attrs: str | None = None
    entry: dict[str, Any] | None = None
    calls: list[RecordedCall] = field(default_factory=list)
    prompts: list[RecordedCall] = field(default_factory=list)
    draws: dict[str, deque[tuple[int, str]]] = field(
        default_factory=lambda: {"clock": deque(), "random": deque()}
    )

    def exhausted(self) -> bool:
        """Every recorded call and prompt of the run was replayed: it went past the end."""
        return all(c.taken for c in self.calls) and all(p.taken for p in self.prompts)


def load_runs(events: pa.Table, prompts: list[dict[str, Any]]) -> dict[str, RecordedRun]:
    """The incident's runs, each with its calls, prompts and draws in recorded order.
    ``events`` has every event but the prompts; ``prompts`` are those (texts unread)."""
    rows = events.select([c for c in COLUMNS if c in events.column_names]).to_pylist()
    rows = [r for r in rows if r["kind"] != EventKind.PROMPT] + prompts
    rows.sort(key=lambda r: (r["run_id"], r["seq"]))
    runs: dict[str, RecordedRun] = {}
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        run = runs.get(row["run_id"])
        if run is None:
            run = runs[row["run_id"]] = RecordedRun(
                row["run_id"], row["tenant"], row["parent_run_id"], row["ts"].timestamp()
            )
        _add(run, row, answers)
    for run in runs.values():
        for call in (*run.calls, *run.prompts):
            if call.call_id is not None:
                call.result = answers.get((run.run_id, call.call_id), call.result)
    return runs


def _add(run: RecordedRun, row: dict[str, Any], answers: dict[tuple[str, str], Any]) -> None:
    kind = row["kind"]
    if kind in (EventKind.TOOL_CALL, EventKind.PROMPT):
        call = RecordedCall(
            row["step"] or 0,
            row["name"],
            row["args"] or "null",
            row["ts"].timestamp(),
            row["call_id"],
        )
        (run.calls if kind == EventKind.TOOL_CALL else run.prompts).append(call)
    elif kind in (EventKind.TOOL_RESULT, EventKind.MODEL_OUTPUT, EventKind.ERROR):
        if row["call_id"] is not None:  # an error with a call id: a model call that raised
            answers[(run.run_id, row["call_id"])] = row
        elif kind == EventKind.MODEL_OUTPUT and run.prompts and run.prompts[-1].result is None:
            run.prompts[-1].result = row  # a manual model_output answers the prompt before it
    elif kind in (EventKind.CLOCK, EventKind.RANDOM):
        run.draws[kind].append((row["step"] or 0, row["output"]))
    elif kind == EventKind.RUN_START:
        run.attrs = row["attrs"]
    elif kind == EventKind.ENTRY and run.entry is None:
        run.entry = {"target": row["name"], "input": json.loads(row["args"] or "{}")}
