"""A foreign run as its units make it: one summary per run (its time span, name, outcome,
model, tenant), its ``run_start`` and ``run_end`` drafts, each model output's cost, and a
draft as an event row. Shared by the importer (``load``) and the live span processor
(``tracekit.otel``), so a run recorded live and the same run imported are the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._base.encode import canonical_json
from .._base.vocab import EventKind, EventStatus
from .._capture.rows import EventRow, RunStatic, event_row
from .._capture.settings import Release
from .._integrations.prices import Prices
from .drafts import Draft, Unit

__all__ = ["LAST", "RunSummary", "costed", "draft_row"]

LAST = 2**62  # the run_end row sorts after every unit of its run


@dataclass
class RunSummary:
    """What a run keeps while its units are read: enough to open, name, end and stamp it."""

    tenant: str
    first_ns: int
    last_ns: int
    source: str
    meta: dict[str, Any]
    parent: str | None = None
    name: str | None = None
    name_at: int = LAST
    error: str | None = None
    model: str | None = None
    model_at: int = LAST

    @classmethod
    def of(cls, unit: Unit, tenant: str | None = None) -> RunSummary:
        """The summary a run's first unit starts (``tenant`` overrides the unit's)."""
        run = cls(tenant or unit.tenant or "imported", unit.start_ns, unit.end_ns, unit.source,
                  dict(unit.meta or {}), unit.parent_run_id)  # fmt: skip
        run.add(unit)
        return run

    def add(self, unit: Unit) -> None:
        """One more unit of the run: its time span, its name, its failure, its model."""
        self.first_ns = min(self.first_ns, unit.start_ns)
        self.last_ns = max(self.last_ns, unit.end_ns)
        if unit.root and unit.error is not None:
            self.error = unit.error or "error"
        if unit.name is not None and unit.start_ns < self.name_at:
            self.name, self.name_at = unit.name, unit.start_ns
        for draft in unit.drafts:
            if draft.model is not None and draft.ts_ns < self.model_at:
                self.model, self.model_at = draft.model, draft.ts_ns

    def bounds(self) -> tuple[Draft, Draft]:
        """The run's ``run_start`` (at its first unit) and ``run_end`` (at its last)."""
        attrs = canonical_json({"imported": self.source, **self.meta})
        start = Draft(self.first_ns, -1, EventKind.RUN_START, self.name, None, None, None,
                      EventStatus.RUNNING, None, None, None, None, None, attrs)  # fmt: skip
        status = EventStatus.ERROR if self.error is not None else EventStatus.OK
        end = Draft(self.last_ns, 2, EventKind.RUN_END, self.name, None, None, None, status,
                    self.error)  # fmt: skip
        return start, end

    @property
    def release(self) -> Release:
        """The run's release: the model that answered first, nothing else known."""
        return Release(model=self.model or "unknown")


def costed(draft: Draft, prices: Prices, unknown: set[str]) -> Draft:
    """A model output's cost from the price table when the trace carries none (a model the
    table does not know is added to ``unknown``)."""
    if draft.kind != EventKind.MODEL_OUTPUT or draft.cost_usd is not None or not draft.model:
        return draft
    if prices.rates(draft.model) is None:
        unknown.add(draft.model)
        return draft
    cost = prices.cost(draft.model, draft.tokens_in, draft.tokens_out, None)
    return draft._replace(cost_usd=cost)


def draft_row(static: RunStatic, seq: int, step: int, d: Draft) -> EventRow:
    """A draft as an event row (``event_row``, at the draft's recorded time in µs)."""
    return event_row(static, seq, step, d.ts_ns // 1000, d.kind, d.name, d.call_id, d.args,
                     d.output, d.status, d.error, d.tokens_in, d.tokens_out, d.cost_usd,
                     d.latency_ms, d.attrs)  # fmt: skip
