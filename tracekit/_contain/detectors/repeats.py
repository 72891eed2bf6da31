"""Repeats: the same tool with the same arguments more than ``max_repeats`` times within
``repeat_window_s`` is a tight loop: the run is halted."""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import BaseModel, Field

from ..._base.ids import digest
from .base import Call, Detector, Tunable
from .tuning import by_steps_or_calls

__all__ = ["Repeats", "RepeatsSettings"]


class RepeatsSettings(BaseModel):
    max_repeats: int | None = Field(None, gt=0)
    repeat_window_s: float = Field(60.0, gt=0)


class Repeats(Detector[RepeatsSettings]):
    settings = RepeatsSettings
    signal = "repeats"
    tunables = (Tunable("max_repeats", by_steps_or_calls),)
    __slots__ = ("limit", "resumed", "span", "windows")

    def __init__(self, guard: Any, settings: RepeatsSettings) -> None:
        super().__init__(guard, settings)
        self.limit, self.span = settings.max_repeats or 0, settings.repeat_window_s
        self.windows: dict[tuple[str, str], deque[float]] = {}
        # windows of a resumed run, known by digest until the same call shows up again
        self.resumed: dict[tuple[str, str], deque[float]] = {}

    def before_call(self, call: Call) -> None:
        key = (call.name, call.args)
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = self._resumed(key) or deque()
        now = call.at
        window.append(now)
        while window[0] <= now - self.span:
            window.popleft()
        count, limit = len(window), self.limit
        if count > limit:
            raise self.trip(
                count,
                limit,
                f"{call.name} called {count} times with the same "
                f"arguments in {self.g.repeat_window_s:g}s (bound {limit})",
            )

    def _resumed(self, key: tuple[str, str]) -> deque[float] | None:
        if not self.resumed:
            return None
        return self.resumed.pop((key[0], _digest(key[1])), None)

    def state(self) -> dict[str, Any]:  # arguments may hold secrets: digests only
        live = [
            [tool, _digest(args), list(times)]
            for (tool, args), times in list(self.windows.items())
            if times
        ]
        held = [[tool, d, list(times)] for (tool, d), times in list(self.resumed.items()) if times]
        return {"repeats": live + held}

    def resume(self, saved: dict[str, Any]) -> None:
        for tool, key, times in saved.get("repeats", ()):
            self.resumed[(tool, key)] = deque(times)


def _digest(text: str) -> str:
    return digest(text, 24)
