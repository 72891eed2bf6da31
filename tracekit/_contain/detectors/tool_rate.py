"""Tool-call rate: more than ``max_tool_calls_per_minute`` tool calls in a sliding minute
halts the run. (``write_rate.py`` counts write tools the same way.)"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from .base import Call, Detector, Tunable
from .tuning import by_steps_or_calls

__all__ = ["PerMinute", "ToolRate", "ToolRateSettings"]

MINUTE = 60.0


class PerMinute(Detector[Any]):
    """Calls in a sliding minute, against the bound ``field``; ``counts`` says which calls."""

    field: ClassVar[str]
    state_key: ClassVar[str]
    what: ClassVar[str]
    __slots__ = ("limit", "times")

    def __init__(self, guard: Any, settings: Any) -> None:
        super().__init__(guard, settings)
        self.limit: int = getattr(settings, self.field) or 0  # active: set
        self.times: deque[float] = deque()

    def counts(self, call: Call) -> bool:
        return True

    def before_call(self, call: Call) -> None:
        if not self.counts(call):
            return
        window, now = self.times, call.at
        window.append(now)
        while window[0] <= now - MINUTE:  # the sliding minute (inline: this runs every call)
            window.popleft()
        count, limit = len(window), self.limit
        if count > limit:
            raise self.trip(count, limit, f"{count} {self.what} per minute (bound {limit})")

    def state(self) -> dict[str, Any]:
        return {self.state_key: list(self.times)}

    def resume(self, saved: dict[str, Any]) -> None:
        self.times.extend(saved.get(self.state_key, ()))


class ToolRateSettings(BaseModel):
    max_tool_calls_per_minute: int | None = Field(None, gt=0)


class ToolRate(PerMinute):
    settings = ToolRateSettings
    signal = "tool_calls_per_minute"
    tunables = (Tunable("max_tool_calls_per_minute", by_steps_or_calls),)
    field, state_key, what = "max_tool_calls_per_minute", "calls", "tool calls"
