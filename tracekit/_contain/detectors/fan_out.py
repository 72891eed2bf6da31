"""Fan-out: a sub-agent deeper than ``max_depth``, or a parent that starts more than
``max_children`` sub-agents (counted across every process), halts the run."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ...errors import ControlError, Halted
from .base import Detector, Tunable
from .tuning import by_runs

__all__ = ["Depth", "DepthSettings", "Width", "WidthSettings"]


class DepthSettings(BaseModel):
    max_depth: int | None = Field(None, ge=0)


class Depth(Detector[DepthSettings]):
    settings = DepthSettings
    signal = "fan_out_depth"
    tunables = (Tunable("max_depth", by_runs),)

    def on_start(self) -> None:
        depth, limit = self.guard.run.depth, self.g.max_depth
        if limit is not None and depth > limit:
            raise self.trip(depth, limit, f"sub-agent depth {depth} (bound {limit})")


class WidthSettings(BaseModel):
    max_children: int | None = Field(None, ge=0)


class Width(Detector[WidthSettings]):
    settings = WidthSettings
    signal = "fan_out_width"
    tunables = (Tunable("max_children", by_runs),)

    def on_sub_run(self) -> None:
        parent, limit, control = (
            self.guard.run.parent_run_id,
            self.g.max_children,
            self.guard.rt.control,
        )
        if parent is None or limit is None:
            return
        try:
            control.add(f"children:{parent}", 0, 1.0)
            count = int(control.total(f"children:{parent}", 0, 0))
        except ControlError as exc:
            raise Halted.store_unavailable(control.url, exc) from None
        if count > limit:
            raise self.trip(
                count,
                limit,
                f"run {parent} started {count} sub-agents (bound {limit})",
                target=parent,
            )
