"""Tool error rate: when more than ``max_tool_error_rate`` of the run's tool calls in the last
``tool_error_window_s`` failed (and at least ``tool_error_min_calls`` returned), the agent is
hammering a broken tool or an API that refuses it: the next call is refused and the run halted."""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import BaseModel, Field

from .base import Call, Detector, Tunable
from .tuning import fractions

__all__ = ["ToolErrorRate", "ToolErrorRateSettings"]


class ToolErrorRateSettings(BaseModel):
    max_tool_error_rate: float | None = Field(None, gt=0, lt=1)
    tool_error_window_s: float = Field(60.0, gt=0)
    tool_error_min_calls: int = Field(5, gt=0)


class ToolErrorRate(Detector[ToolErrorRateSettings]):
    settings = ToolErrorRateSettings
    signal = "tool_error_rate"
    tunables = (Tunable("max_tool_error_rate", fractions, integer=False),)
    __slots__ = ("results",)

    def __init__(self, guard: Any, settings: ToolErrorRateSettings) -> None:
        super().__init__(guard, settings)
        self.results: deque[tuple[float, bool]] = deque()  # (when, failed)

    def after_result(self, tool: str, ok: bool) -> None:
        self.results.append((self.guard.rt.clock(), not ok))
        self.guard.mark_dirty()

    def before_call(self, call: Call) -> None:
        results, g = self.results, self.g
        since = call.at - g.tool_error_window_s
        while results and results[0][0] <= since:
            results.popleft()
        if len(results) < g.tool_error_min_calls or g.max_tool_error_rate is None:
            return
        failed = sum(1 for _, bad in results if bad)
        rate = failed / len(results)
        if rate > g.max_tool_error_rate:
            raise self.trip(
                rate,
                g.max_tool_error_rate,
                f"{failed} of the last {len(results)} tool calls failed in "
                f"{g.tool_error_window_s:g}s ({rate:.0%}; bound "
                f"{g.max_tool_error_rate:.0%})",
            )

    def state(self) -> dict[str, Any]:
        return {"tool_results": [[when, bad] for when, bad in list(self.results)]}

    def resume(self, saved: dict[str, Any]) -> None:
        self.results.extend((float(when), bool(bad)) for when, bad in saved.get("tool_results", ()))
