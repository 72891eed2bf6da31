"""Progress per dollar: once a run has spent ``progress_grace_usd``, fewer than
``min_progress_per_usd`` progress marks per dollar halts it (spend with nothing to show)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import Call, Detector

__all__ = ["ProgressPerUsd", "ProgressPerUsdSettings"]


class ProgressPerUsdSettings(BaseModel):
    min_progress_per_usd: float | None = Field(None, gt=0)
    progress_grace_usd: float = Field(0.10, ge=0)


class ProgressPerUsd(Detector[ProgressPerUsdSettings]):
    settings = ProgressPerUsdSettings
    signal = "progress_per_usd"

    @classmethod
    def active(cls, settings: ProgressPerUsdSettings) -> bool:
        return settings.min_progress_per_usd is not None

    def check(self, call: Call | None = None) -> None:
        """After a model output, and when the run starts."""
        cost, progress, minimum = self.guard.cost, self.guard.progress, self.g.min_progress_per_usd
        if minimum is None or cost < max(self.g.progress_grace_usd, 1e-12):
            return
        rate = progress / cost
        if rate < minimum:
            raise self.trip(rate, minimum, f"{progress} progress marks for ${cost:.4f}")

    # the rate changes only with a model output (a progress mark can only raise it): checked
    # there, and at the start (a resumed run); a run it tripped is halted, so the kill switch
    # refuses its next call
    on_start = on_model_output = check
