"""Steps: a run that goes past ``max_steps`` model outputs is halted."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .base import Call, Detector, Tunable
from .tuning import by_steps_or_calls

__all__ = ["Steps", "StepsSettings"]


class StepsSettings(BaseModel):
    max_steps: int | None = Field(None, gt=0)


class Steps(Detector[StepsSettings]):
    settings = StepsSettings
    signal = "steps"
    tunables = (Tunable("max_steps", by_steps_or_calls),)
    __slots__ = ("limit",)

    def __init__(self, guard: Any, settings: StepsSettings) -> None:
        super().__init__(guard, settings)
        self.limit = settings.max_steps or 0  # active: set

    def check(self, call: Call | None = None) -> None:
        """After a model output, and when the run starts."""
        step = self.run.step
        if step > self.limit:
            raise self.trip(step, self.limit, f"{step} steps (bound {self.limit})")

    # steps and cost change only with a model output: checked there, and at the start (a run
    # resumed past a bound); a run they tripped is halted, so the kill switch refuses its next call
    on_start = on_model_output = check
