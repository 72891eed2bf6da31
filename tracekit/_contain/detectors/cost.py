"""Cost: a run that spends more than ``max_cost_usd`` is halted."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .base import Call, Detector, Tunable
from .tuning import by_spend

__all__ = ["Cost", "CostSettings"]


class CostSettings(BaseModel):
    max_cost_usd: float | None = Field(None, gt=0)


class Cost(Detector[CostSettings]):
    settings = CostSettings
    signal = "cost"
    tunables = (Tunable("max_cost_usd", by_spend, integer=False),)

    __slots__ = ("limit",)

    def __init__(self, guard: Any, settings: CostSettings) -> None:
        super().__init__(guard, settings)
        self.limit = settings.max_cost_usd or 0.0  # active: set

    def check(self, call: Call | None = None) -> None:
        """After a model output, and when the run starts."""
        cost, limit = self.guard.cost, self.limit
        if cost > limit:
            raise self.trip(cost, limit, f"run cost ${cost:.4f} (bound ${limit})")

    # steps and cost change only with a model output: checked there, and at the start (a run
    # resumed past a bound); a run they tripped is halted, so the kill switch refuses its next call
    on_start = on_model_output = check
