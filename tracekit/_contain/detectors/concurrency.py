"""Concurrency: at most ``max_concurrent_runs`` runs per tenant at a time, each holding a
slot leased for ``lease_s`` (renewed while it runs), so a crashed worker's slot comes back."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import Detector

__all__ = ["Concurrency", "ConcurrencySettings"]


class ConcurrencySettings(BaseModel):
    max_concurrent_runs: int | None = Field(None, gt=0)
    lease_s: float = Field(30.0, gt=0)


class Concurrency(Detector[ConcurrencySettings]):
    settings = ConcurrencySettings
    signal = "concurrent_runs"

    @classmethod
    def active(cls, settings: ConcurrencySettings) -> bool:
        return settings.max_concurrent_runs is not None

    def on_start(self) -> None:
        self.guard.rt.take_slot(self.guard.tenant, self.guard.run_id)

    def on_finish(self) -> None:
        self.guard.rt.give_back_slot(self.guard.tenant, self.guard.run_id)
