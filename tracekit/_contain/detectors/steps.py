"""Steps: a run that goes past ``max_steps`` model outputs is halted."""

from __future__ import annotations

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

    def before_call(self, call: Call) -> None:
        self._check()

    def on_model_output(self) -> None:
        self._check()

    def _check(self) -> None:
        step, limit = self.guard.run.step, self.g.max_steps
        if limit is not None and step > limit:
            raise self.trip(step, limit, f"{step} steps (bound {limit})")
