"""Tenant spend: what every process spent for a tenant in a short window (``spend_window_s``,
5 minutes by default, not a day), shared through the control store; past
``tenant_spend_usd`` the whole tenant is halted."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import Call, Detector, Tunable
from .tuning import by_spend

__all__ = ["TenantSpend", "TenantSpendSettings"]


class TenantSpendSettings(BaseModel):
    tenant_spend_usd: float | None = Field(None, gt=0)
    spend_window_s: float = Field(300.0, gt=0)


class TenantSpend(Detector[TenantSpendSettings]):
    settings = TenantSpendSettings
    signal = "tenant_spend"
    tunables = (Tunable("tenant_spend_usd", by_spend, integer=False),)

    def on_start(self) -> None:
        self.guard.rt.track_tenant(self.guard.tenant)

    def check(self, call: Call | None = None) -> None:
        """Before a call and after a model output alike."""
        tenant, limit = self.guard.tenant, self.g.tenant_spend_usd
        spend = self.guard.rt.tenant_spend(tenant)
        if limit is not None and spend > limit:
            raise self.trip(
                spend,
                limit,
                f"tenant {tenant} spent ${spend:.4f} in "
                f"{self.g.spend_window_s:g}s (bound ${limit})",
                level="tenant",
                target=tenant,
            )

    before_call = on_model_output = check
