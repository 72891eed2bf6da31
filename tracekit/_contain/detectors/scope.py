"""Scope: a tool the run may not use, or an argument outside the tool's declared bounds, is
refused (``OutOfScope``); after ``max_scope_violations`` refusals the run is halted."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..._base.vocab import Signal
from ...errors import OutOfScope
from .base import Call, Detector

__all__ = ["Scope", "ScopeSettings"]


class ScopeSettings(BaseModel):
    max_scope_violations: int | None = Field(None, gt=0)
    tenant_tools: dict[str, list[str]] = Field(default_factory=dict)


class Scope(Detector[ScopeSettings]):
    """Least privilege: the run's tool set (or the tenant's) and each tool's argument bounds."""

    settings = ScopeSettings
    signal = "scope_violations"
    __slots__ = ("tools", "violations")

    def __init__(self, guard: Any, settings: ScopeSettings) -> None:
        super().__init__(guard, settings)
        tenant_tools = settings.tenant_tools.get(guard.tenant)
        requested = guard.tools
        self.tools = (
            requested if requested is not None else (set(tenant_tools) if tenant_tools else None)
        )
        self.violations = 0

    @classmethod
    def active(cls, settings: Any) -> bool:
        return True  # a run's tool set and a tool's bounds are declared in code

    def applies(self, call: Call) -> bool:
        return self.tools is not None or bool(call.rules is not None and call.rules.bounds)

    def before_call(self, call: Call) -> None:
        tools = self.tools
        if tools is not None and call.name not in tools:
            self._violation(
                f"tool {call.name!r} is not in this run's scope "
                f"({', '.join(sorted(tools)) or 'no tools'})"
            )
        rules = call.rules
        if rules is not None and rules.bounds and call.named is not None:
            self._check_bounds(call.name, rules.bounds, call.named)

    def _check_bounds(
        self, tool: str, bounds: dict[str, tuple[float | None, float | None]], args: dict[str, Any]
    ) -> None:
        for name, (low, high) in bounds.items():
            value = args.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if (low is not None and value < low) or (high is not None and value > high):
                span = f"[{'' if low is None else low}, {'' if high is None else high}]"
                self._violation(f"{tool}({name}={value}) is outside its bounds {span}")

    def _violation(self, reason: str) -> None:
        self.violations += 1
        self.guard.mark_dirty()
        limit = self.g.max_scope_violations
        if limit is not None and self.violations >= limit:
            raise self.trip(self.violations, limit, reason)
        raise OutOfScope(
            "run",
            self.guard.run_id,
            reason,
            signal=Signal.SCOPE,
            value=self.violations,
            threshold=limit,
        )

    def state(self) -> dict[str, Any]:
        return {"scope_violations": self.violations}

    def resume(self, saved: dict[str, Any]) -> None:
        self.violations = int(saved.get("scope_violations", 0))
