"""No progress: more than ``max_steps_without_progress`` steps with neither a progress mark nor
a new tool call (a call with arguments the run has not made before) is a reflection spiral."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..._base.ids import digest
from .base import Call, Detector, Tunable
from .tuning import by_steps_or_calls

if TYPE_CHECKING:
    from ..runguard import RunTrace

__all__ = ["NoProgress", "NoProgressSettings"]


class NoProgressSettings(BaseModel):
    max_steps_without_progress: int | None = Field(None, gt=0)


class NoProgress(Detector[NoProgressSettings]):
    settings = NoProgressSettings
    signal = "no_progress"
    tunables = (Tunable("max_steps_without_progress", by_steps_or_calls),)
    __slots__ = ("last_change_step", "resumed", "seen")

    def __init__(self, guard: Any, settings: NoProgressSettings) -> None:
        super().__init__(guard, settings)
        self.last_change_step = 0
        self.seen: set[tuple[str, str]] = set()
        self.resumed: set[str] = set()  # digests of the calls made before a resume

    def before_call(self, call: Call) -> None:
        """Last of the call's checks: a call never made before is a change of state."""
        key = (call.name, call.args)
        if key in self.seen:
            return
        self.seen.add(key)
        if self.resumed and _digest(call.name, call.args) in self.resumed:
            return  # made before the resume: not new
        self.last_change_step = self.run.step

    def on_model_output(self) -> None:
        guard = self.guard  # a progress mark is a change of state too (the guard keeps its step)
        changed = max(self.last_change_step, guard.progress_step)
        idle, limit = guard.run.step - changed, self.g.max_steps_without_progress
        if limit is not None and idle > limit:
            raise self.trip(idle, limit, f"{idle} steps with no progress and no new tool call")

    def state(self) -> dict[str, Any]:
        seen = {_digest(name, args) for name, args in list(self.seen)}
        return {
            "last_change_step": max(self.last_change_step, self.guard.progress_step),
            "signatures": sorted(seen | self.resumed),
        }

    def resume(self, saved: dict[str, Any]) -> None:
        self.last_change_step = int(saved.get("last_change_step", 0))
        self.resumed.update(saved.get("signatures", ()))

    def adopt_trace(self, trace: RunTrace) -> None:
        self.last_change_step = max(self.last_change_step, trace.last_change_step)
        self.resumed.update(_digest(name, args) for name, args in trace.calls)


def _digest(name: str, args: str) -> str:
    return digest(f"{name}\x00{args}", 24)
