"""Cost: a run that spends more than ``max_cost_usd`` is halted."""

from __future__ import annotations

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

    def before_call(self, call: Call) -> None:
        self._check()

    def on_model_output(self) -> None:
        self._check()

    def _check(self) -> None:
        cost, limit = self.guard.cost, self.g.max_cost_usd
        if limit is not None and cost > limit:
            raise self.trip(cost, limit, f"run cost ${cost:.4f} (bound ${limit})")
