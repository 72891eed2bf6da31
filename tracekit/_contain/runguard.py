"""One run's guard: the kill switch, then the detectors' hooks, with the run's meters.

Checked before every tool call and after every model output, in this order: global, tenant,
release, run, frozen tool (the kill switch), then each active detector in registry order (see
``settings.py``). Everything checked per call is in memory. The live run (``tracekit.run``),
policy replay and agent replay drive the same methods: ``start``, ``check_call``,
``after_result``, ``after_model_output``, ``after_progress`` and ``finish``.

A detector that fires sets the matching halt flag in the control store itself (the run's, or
the tenant's for tenant spend), so other processes and resumed runs are stopped too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._base.protocols import RunView
from .._base.vocab import HaltLevel, Signal
from ..errors import Halted
from .detectors.base import HOOKS, Alert, Call, Detector, overrides
from .runtime import GuardRuntime

__all__ = ["Alert", "Call", "RunGuard", "RunTrace", "RunView"]

_monotonic = time.monotonic


@dataclass
class RunTrace:
    """What the durable trace shows of a run being resumed (it may be ahead of the state the
    guard saved: a process killed between two saves)."""

    steps: int
    seq: int
    cost: float
    progress: int
    last_change_step: int
    calls: list[tuple[str, str]] = field(default_factory=list)  # (tool, canonical args)


class RunGuard:
    """One run's kill-switch keys, meters (cost, progress) and detectors."""

    def __init__(self, runtime: GuardRuntime, run: RunView, tools: set[str] | None) -> None:
        self.rt = runtime
        self.g = runtime.guard
        self.staleness_s = self.g.staleness_s  # read before every call: a plain float
        self.run = run
        self.run_id = run.run_id
        self.tenant = run.tenant
        self.tools = tools  # the run's own scope, if it declared one
        self.keys = self._keys(run.run_id)
        self.cost = 0.0
        self.progress = 0
        self.progress_step = 0  # the step of the last progress mark
        self.alerts: list[Alert] = []
        self.detectors: list[Detector[Any]] = [cls(self, self.g) for cls in runtime.detectors]
        hooks = {h: tuple(getattr(d, h) for d in self.detectors if overrides(d, h)) for h in HOOKS}
        self._on_start, self._on_sub_run = hooks["on_start"], hooks["on_sub_run"]
        self._before_call, self._after_result = hooks["before_call"], hooks["after_result"]
        self._on_model_output, self._on_progress = hooks["on_model_output"], hooks["on_progress"]
        self._on_finish = hooks["on_finish"]
        self._plans: dict[Any, tuple[Callable[[Call], None], ...]] = {}  # per tool: its hooks
        self.wants_results = bool(self._after_result)  # the run skips the hook otherwise

    def _keys(self, run_id: str) -> tuple[tuple[str, str | None, str], ...]:
        run = self.run
        return (
            (HaltLevel.GLOBAL, None, "halt:global"),
            (HaltLevel.TENANT, run.tenant, f"halt:tenant:{run.tenant}"),
            (HaltLevel.RELEASE, run.release_id, f"halt:release:{run.release_id}"),
            (HaltLevel.RUN, run_id, f"halt:run:{run_id}"),
        )

    def rebind(self, run_id: str) -> None:
        """The run turned out to be another recorded run (agent replay matched it again)."""
        self.run_id = run_id
        self.keys = self._keys(run_id)

    # -- the hooks, in the run's order ----------------------------------------------------------
    def start(self) -> None:
        """At run start: the kill switch, the run's state saved (so a sub-agent in another
        process finds its lineage at once), then each detector's start (and sub-run) hook."""
        self.check_flags()
        self.rt.store_call(self.rt.control.put, f"run:{self.run_id}", self.state())
        for hook in self._on_start:
            hook()
        if self.run.parent_run_id is not None:
            for hook in self._on_sub_run:
                hook()

    def check_call(self, call: Call) -> list[Alert] | None:
        """Before a tool runs: the kill switch (and the frozen tool), then every detector. A
        refusal raises; alerts (recorded, the call goes on) are returned."""
        rt = self.rt
        if _monotonic() > rt.clear_until:  # the kill switch, when it could refuse
            self.check_flags(call.name)
        call.at = rt.clock()
        key = call.rules if call.rules is not None else (call.name, call.writes)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(call)
        for hook in plan:
            hook(call)
        rt._dirty[self.run_id] = self
        if not self.alerts:
            return None
        alerts, self.alerts = self.alerts, []
        return alerts

    def _plan(self, call: Call) -> tuple[Callable[[Call], None], ...]:
        """The before-call hooks of the detectors that apply to this tool (a read-only tool has
        no write rate, a tool without bounds in an unscoped run no scope check), computed once
        per tool and run."""
        return tuple(h for h in self._before_call if h.__self__.applies(call))

    def after_result(self, tool: str, ok: bool) -> None:
        """A tool returned (``ok``) or raised."""
        for hook in self._after_result:
            hook(tool, ok)

    def after_model_output(self, cost_usd: float | None) -> None:
        """After a model output: the run thinks; its cost counts, and the kill switch, the
        bounds and the detectors still apply."""
        rt = self.rt
        if cost_usd:
            self.cost += cost_usd
            rt.note_spend((self.tenant, rt.clock(), cost_usd))  # add_spend, inline
        rt._dirty[self.run_id] = self  # mark_dirty, inline: this runs after every output
        if _monotonic() > rt.clear_until:  # the kill switch, when it could refuse
            self.check_flags()
        for hook in self._on_model_output:
            hook()

    def after_progress(self) -> None:
        self.progress += 1
        self.progress_step = self.run.step
        for hook in self._on_progress:
            hook()
        self.rt.mark_dirty(self)

    def finish(self) -> None:
        """At run end: each detector's finish hook (a concurrency slot given back); the state
        saved with the next sync."""
        self.rt.mark_dirty(self)
        for hook in self._on_finish:
            hook()

    # -- the kill switch --------------------------------------------------------------------
    def check_flags(self, tool: str | None = None) -> None:
        """The kill switch, in order: global, tenant, release, run, frozen tool."""
        rt = self.rt
        if rt.failure is not None or _monotonic() - rt.refreshed > self.staleness_s:
            rt.assert_fresh()
        flags = rt.flags
        if not flags:
            return
        for level, target, key in self.keys:
            info = flags.get(key)
            if info is not None:
                raise Halted(
                    level,
                    target,
                    info.get("reason", "halted"),
                    signal=info.get("signal", Signal.OPERATOR),
                )
        if tool is not None:
            info = flags.get(f"freeze:tool:{tool}")
            if info is not None:
                raise Halted(
                    HaltLevel.TOOL,
                    tool,
                    info.get("reason", "tool frozen"),
                    signal=Signal.FROZEN_TOOL,
                )

    def trip(
        self,
        signal: str,
        value: float,
        threshold: float,
        reason: str,
        level: str = HaltLevel.RUN,
        target: str | None = None,
    ) -> Halted:
        """A detector fired: set its halt flag (the run's, unless it names another)."""
        return self.rt.trip(
            level, target or self.run_id, reason, signal, value, threshold, run_id=self.run_id
        )

    def mark_dirty(self) -> None:
        """The run's state changed: saved with the next sync of the control store."""
        self.rt.mark_dirty(self)

    # -- run state that survives the process ---------------------------------------------------
    def state(self) -> dict[str, Any]:
        run = self.run
        saved = {
            "steps": run.step,
            "cost": self.cost,
            "progress": self.progress,
            "depth": run.depth,
            "root_run_id": run.root_run_id,
            "seq": run.next_seq(),
            "tenant": self.tenant,
            "release_id": run.release_id,
        }
        for detector in self.detectors:
            saved.update(detector.state())
        return saved

    def resume(self) -> dict[str, Any] | None:
        """Continue from the state a previous process left for this run_id (if any)."""
        saved = self.rt.control.get(f"run:{self.run_id}")
        if not saved:
            return None
        self.cost = float(saved.get("cost", 0.0))
        self.progress = int(saved.get("progress", 0))
        for detector in self.detectors:
            detector.resume(saved)
        return saved

    def adopt_trace(self, trace: RunTrace) -> None:
        """What the durable trace shows (it may be ahead of the last saved state)."""
        self.cost = max(self.cost, trace.cost)
        self.progress = max(self.progress, trace.progress)
        for detector in self.detectors:
            detector.adopt_trace(trace)

    def parent_lineage(self, parent_id: str) -> tuple[int, str] | None:
        """(depth, root_run_id) of a parent known only by its id, from its saved state."""
        saved = self.rt.store_call(self.rt.control.get, f"run:{parent_id}")
        if not saved or "depth" not in saved:
            return None
        return int(saved["depth"]) + 1, str(saved.get("root_run_id") or parent_id)
