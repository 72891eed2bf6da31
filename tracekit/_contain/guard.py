"""The guard: a layered kill switch, pre-installed bounds and runaway detectors. It fails closed.

Checked before every tool call (and when a model output is recorded), in DESIGN.md's order:
global, tenant, release, run, frozen tool, then bounds and detectors. The per-call path reads only
memory: flags are cached and refreshed by a background thread (and, on Redis, pushed by pub/sub).
A cache older than ``staleness_s``, or a control store that errors, refuses every call.

A detector that fires sets the matching halt flag in the control store itself (run, or tenant
for tenant spend), so other processes and resumed runs are stopped too.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._control.base import ControlStore, flag_key, now_info
from .._control.redis import RedisControl
from ..errors import ControlError, Halted, OutOfScope

if TYPE_CHECKING:
    from .._capture.run import Run

__all__ = ["Alert", "Guard", "GuardRuntime", "Halted", "OutOfScope", "RunGuard"]

_MINUTE = 60.0
_monotonic = time.monotonic


class Alert(Halted):
    """Not raised: a detector in ``alert`` mode noticed something (recorded, the call goes on)."""

    verb = "alert"
    status = "alert"


class Guard(BaseModel):
    """Bounds and detectors, each optional (None = not checked). Validated once, at configure."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max_steps: int | None = Field(None, gt=0)
    max_cost_usd: float | None = Field(None, gt=0)
    max_tool_calls_per_minute: int | None = Field(None, gt=0)
    max_repeats: int | None = Field(None, gt=0)
    repeat_window_s: float = Field(60.0, gt=0)
    max_steps_without_progress: int | None = Field(None, gt=0)
    max_depth: int | None = Field(None, ge=0)
    max_children: int | None = Field(None, ge=0)
    tenant_spend_usd: float | None = Field(None, gt=0)
    spend_window_s: float = Field(300.0, gt=0)
    max_writes_per_minute: int | None = Field(None, gt=0)
    new_destination: Literal["allow", "alert", "halt"] = "allow"
    min_progress_per_usd: float | None = Field(None, gt=0)
    progress_grace_usd: float = Field(0.10, ge=0)
    max_concurrent_runs: int | None = Field(None, gt=0)
    lease_s: float = Field(30.0, gt=0)
    max_scope_violations: int | None = Field(None, gt=0)
    tenant_tools: dict[str, list[str]] = Field(default_factory=dict)
    staleness_s: float = Field(1.0, gt=0)
    refresh_s: float = Field(0.1, gt=0)
    timeout_s: float = Field(0.25, gt=0)


def _spend_bucket_s(guard: Guard) -> float:
    return max(guard.spend_window_s / 30.0, 1.0)


class GuardRuntime:
    """The process's guard: the config, the control store and a fresh cache of its flags."""

    def __init__(self, guard: Guard, control: ControlStore,
                 clock: Callable[[], float] = time.time,
                 scrub: Callable[[str], str] = lambda text: text) -> None:
        self.guard = guard
        self.control = control
        self.clock = clock
        self.scrub = scrub  # the configured redaction: nothing secret reaches the control store
        self._refresh_lock = threading.Lock()  # one refresh at a time; trips wait for it
        self._local_trips: dict[str, dict[str, Any]] = {}  # tripped while the store was down
        self.flags: dict[str, dict[str, Any]] = {}
        self.refreshed = -math.inf  # monotonic time of the last good read of the flags
        self.failure: str | None = "the guard has not read its control store yet"
        self._bucket_s = _spend_bucket_s(guard)
        self._spend_lock = threading.Lock()
        self._unsynced: dict[str, dict[int, float]] = {}  # tenant -> bucket -> spend not pushed
        self._inflight: dict[str, float] = {}  # tenant -> spend being pushed right now
        self._tenant_window: dict[str, float] = {}  # tenant -> window total at the last sync
        self._dirty: dict[str, RunGuard] = {}
        self._leases: dict[str, str] = {}  # run_id -> tenant, for the slots this process holds
        self._destinations: set[tuple[str, str]] = set()
        self._leases_renewed = 0.0
        self._stop = threading.Event()
        self.refresh()
        self._threads = [threading.Thread(target=self._refresh_loop, daemon=True,
                                          name="tracekit-guard")]
        if isinstance(control, RedisControl):
            self._threads.append(threading.Thread(target=self._listen, daemon=True,
                                                  name="tracekit-guard-pubsub"))
        for thread in self._threads:
            thread.start()

    # -- background: keep the cache fresh ----------------------------------------------------
    def refresh(self) -> None:
        """Push local spend and run state, read the flags; mark the cache fresh or failed.

        The freshness stamp is taken before the read, so flags are never younger than they
        look; a trip made here since the last read is kept until a read shows it.
        """
        with self._refresh_lock:
            started = time.monotonic()
            try:
                self._share_local_trips()
                self._sync_spend()
                self._save_dirty_runs()
                if self._leases:
                    self._renew_leases()
                self.control.check_alive()
                flags = self.control.flags()
            except ControlError as exc:
                self.failure = str(exc)
                return
            except Exception as exc:  # anything unexpected fails closed too
                self.failure = f"control store error: {exc}"
                return
            self.flags = flags
            self.failure = None
            self.refreshed = started

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.guard.refresh_s):
            self.refresh()

    def _listen(self) -> None:
        control = self.control
        assert isinstance(control, RedisControl)
        while not self._stop.is_set():
            try:
                control.subscribe(self.refresh, self._stop)
            except ControlError as exc:
                self.failure = str(exc)
                self._stop.wait(self.guard.refresh_s)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2.0)
        with contextlib.suppress(ControlError):  # what this process spent and did, pushed
            self._sync_spend()
            self._save_dirty_runs()
        with contextlib.suppress(Exception):
            self.control.close()

    # -- the per-call check of the store's health -----------------------------------------
    def assert_fresh(self) -> None:
        if self.failure is not None:
            raise Halted("store", self.control.url, f"control store unavailable: {self.failure}",
                         signal="store_error")
        age = time.monotonic() - self.refreshed
        if age > self.guard.staleness_s:
            bound = self.guard.staleness_s
            raise Halted("store", self.control.url,
                         f"halt flags are {age:.2f}s old (staleness bound {bound}s)",
                         signal="stale_flags", value=age, threshold=bound)

    # -- tripping -------------------------------------------------------------------------
    def trip(self, level: str, target: str, reason: str, signal: str, value: float,
             threshold: float, run_id: str | None = None) -> Halted:
        """Set the halt flag (the alarm is wired to the kill switch) and log the trip."""
        reason = self.scrub(reason)
        info = now_info(reason, by="tracekit-guard", signal=signal, value=value,
                        threshold=threshold, run_id=run_id)
        key = flag_key(level, target)
        with self._refresh_lock:  # no refresh in flight can read around it
            self.flags = {**self.flags, key: info}
            try:
                self.control.set_flag(key, info)
                self.control.log_trip({"key": key, **info})
            except ControlError:  # held here all the same; shared once the store answers
                self._local_trips[key] = info
        return Halted(level, target, reason, signal, value, threshold)

    def _share_local_trips(self) -> None:
        """Trips made while the store was down: set their flags now that it answers."""
        for key, info in list(self._local_trips.items()):
            self.control.set_flag(key, info)
            self.control.log_trip({"key": key, **info})
            del self._local_trips[key]

    # -- tenant spend across processes -------------------------------------------------------
    def add_spend(self, tenant: str, amount: float) -> None:
        bucket = int(self.clock() // self._bucket_s)
        with self._spend_lock:
            per = self._unsynced.setdefault(tenant, {})
            per[bucket] = per.get(bucket, 0.0) + amount

    def track_tenant(self, tenant: str) -> None:
        """Start following a tenant's shared spend window (one read, at run start)."""
        if tenant in self._tenant_window:
            return
        since = int((self.clock() - self.guard.spend_window_s) // self._bucket_s) + 1
        until = int(self.clock() // self._bucket_s) + 1
        try:
            self._tenant_window[tenant] = self.control.total(f"spend:{tenant}", since, until)
        except ControlError as exc:
            raise Halted("store", self.control.url, f"control store unavailable: {exc}",
                         signal="store_error") from None

    def tenant_spend(self, tenant: str) -> float:
        """Spend in the window: every process's, as of the last sync, plus this one's since
        (including what is being pushed right now: never counted zero times)."""
        with self._spend_lock:
            local = sum(self._unsynced.get(tenant, {}).values())
            local += self._inflight.get(tenant, 0.0)
        return self._tenant_window.get(tenant, 0.0) + local

    def _sync_spend(self) -> None:
        with self._spend_lock:
            pending, self._unsynced = self._unsynced, {}
            self._inflight = {t: sum(b.values()) for t, b in pending.items()}
        try:
            for tenant, buckets in pending.items():
                for bucket, amount in buckets.items():
                    self.control.add(f"spend:{tenant}", bucket, amount,
                                     ttl_s=2 * self.guard.spend_window_s)
            since = int((self.clock() - self.guard.spend_window_s) // self._bucket_s) + 1
            until = int(self.clock() // self._bucket_s) + 1
            tenants = set(self._tenant_window) | set(pending)
            window = {t: self.control.total(f"spend:{t}", since, until) for t in tenants}
        except ControlError:
            with self._spend_lock:  # keep them for the next try
                self._inflight = {}
                for tenant, buckets in pending.items():
                    per = self._unsynced.setdefault(tenant, {})
                    for bucket, amount in buckets.items():
                        per[bucket] = per.get(bucket, 0.0) + amount
            raise
        with self._spend_lock:
            self._tenant_window = window
            self._inflight = {}

    # -- first-seen destinations: a local cache over the control store ---------------------
    def is_new_destination(self, tenant: str, destination: str) -> bool:
        """True the first time any process sees ``destination`` for ``tenant`` (one store
        round trip per destination this process has not seen yet, none after)."""
        key = (tenant, destination)
        if key in self._destinations:
            return False
        counter = f"dest:{tenant}:{_digest(destination)}"  # a URL may carry a secret
        try:
            seen = self.control.total(counter, 0, 0) > 0
            if not seen:
                self.control.add(counter, 0, 1.0)
        except ControlError as exc:
            raise Halted("store", self.control.url, f"control store unavailable: {exc}",
                         signal="store_error") from None
        self._destinations.add(key)
        return not seen

    def log_alert(self, alert: dict[str, Any]) -> None:
        alert = {k: self.scrub(v) if isinstance(v, str) else v for k, v in alert.items()}
        with contextlib.suppress(ControlError):
            self.control.log_trip({**now_info(alert["reason"], by="tracekit-guard"),
                                   "action": "alert", **alert})

    # -- per-tenant concurrency slots, leased so a crashed worker's slot comes back ---------------
    def take_slot(self, tenant: str, run_id: str) -> None:
        limit = self.guard.max_concurrent_runs
        assert limit is not None
        now = time.time()
        expires = now + self.guard.lease_s
        try:
            ok = self.control.acquire(f"runs:{tenant}", run_id, limit, expires, now)
        except ControlError as exc:
            raise Halted("store", self.control.url, f"control store unavailable: {exc}",
                         signal="store_error") from None
        if not ok:
            raise Halted("run", run_id, f"tenant {tenant} already has {limit} runs in flight "
                         f"(max_concurrent_runs {limit})", signal="concurrent_runs",
                         value=limit + 1, threshold=limit)
        self._leases[run_id] = tenant

    def give_back_slot(self, tenant: str, run_id: str) -> None:
        if self._leases.pop(run_id, None) is not None:
            with contextlib.suppress(ControlError):
                self.control.release(f"runs:{tenant}", run_id)

    def _renew_leases(self) -> None:
        now = time.time()
        if now - self._leases_renewed < self.guard.lease_s / 3:
            return
        limit = self.guard.max_concurrent_runs or 1
        for run_id, tenant in list(self._leases.items()):
            self.control.acquire(f"runs:{tenant}", run_id, limit, now + self.guard.lease_s, now)
        self._leases_renewed = now

    # -- run state that survives the process ---------------------------------------------------
    def mark_dirty(self, run_guard: RunGuard) -> None:
        self._dirty[run_guard.run_id] = run_guard

    def _save_dirty_runs(self) -> None:
        dirty, self._dirty = self._dirty, {}
        try:
            for run_id, run_guard in list(dirty.items()):
                state = run_guard.state()
                self.control.put(f"run:{run_id}", state)
                self.control.put(f"tenant:{state['tenant']}", {"release_id": state["release_id"]})
                del dirty[run_id]
        finally:  # what could not be saved is tried again: the store stays failed till it can
            for run_id, run_guard in dirty.items():
                self._dirty.setdefault(run_id, run_guard)


class RunGuard:
    """One run's bounds and detectors; everything it checks per call is in memory."""

    def __init__(self, runtime: GuardRuntime, run: Run, tools: set[str] | None) -> None:
        self.rt = runtime
        self.g = runtime.guard
        self.run = run
        self.run_id = run.run_id
        self.tenant = run.tenant
        self.keys = (
            ("global", None, "halt:global"),
            ("tenant", run.tenant, f"halt:tenant:{run.tenant}"),
            ("release", run.release.release_id, f"halt:release:{run.release.release_id}"),
            ("run", run.run_id, f"halt:run:{run.run_id}"),
        )
        tenant_tools = self.g.tenant_tools.get(run.tenant)
        self.tools = tools if tools is not None else (set(tenant_tools) if tenant_tools else None)
        self.cost = 0.0
        self.progress = 0
        self.last_change_step = 0
        self.scope_violations = 0
        self.signatures: set[tuple[str, str]] = set()
        # windows of a resumed run, known by digest until the same call shows up again
        self.resumed_repeats: dict[tuple[str, str], deque[float]] = {}
        self.resumed_signatures: set[str] = set()
        self.calls: deque[float] = deque()
        self.writes: deque[float] = deque()
        self.repeats: dict[tuple[str, str], deque[float]] = {}

    # -- resume -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"steps": self.run.step, "cost": self.cost, "progress": self.progress,
                "last_change_step": self.last_change_step, "depth": self.run.depth,
                "root_run_id": self.run.root_run_id,
                "scope_violations": self.scope_violations, "calls": list(self.calls),
                "writes": list(self.writes), "seq": self.run.next_seq(),
                # arguments may hold secrets: the control store keeps only their digests
                "repeats": [[tool, _digest(sig), list(times)] for (tool, sig), times in
                            list(self.repeats.items()) if times]
                + [[tool, digest, list(times)] for (tool, digest), times in
                   list(self.resumed_repeats.items()) if times],
                "signatures": sorted({_digest(t + "\x00" + sig) for t, sig in
                                      list(self.signatures)} | self.resumed_signatures),
                "tenant": self.tenant, "release_id": self.run.release.release_id}

    def resume(self) -> dict[str, Any] | None:
        """Continue from the state a previous process left for this run_id (if any)."""
        saved = self.rt.control.get(f"run:{self.run_id}")
        if not saved:
            return None
        self.cost = float(saved.get("cost", 0.0))
        self.progress = int(saved.get("progress", 0))
        self.last_change_step = int(saved.get("last_change_step", 0))
        self.scope_violations = int(saved.get("scope_violations", 0))
        self.calls.extend(saved.get("calls", ()))
        self.writes.extend(saved.get("writes", ()))
        for tool, digest, times in saved.get("repeats", ()):
            self.resumed_repeats[(tool, digest)] = deque(times)
        self.resumed_signatures.update(saved.get("signatures", ()))
        return saved

    def adopt_trace(self, trace: dict[str, Any]) -> None:
        """What the durable trace shows (it may be ahead of the last saved state)."""
        self.cost = max(self.cost, trace["cost"])
        self.progress = max(self.progress, trace["progress"])
        self.last_change_step = max(self.last_change_step, trace["last_change_step"])
        self.resumed_signatures.update(
            _digest(f"{name}\x00{args}") for name, args in trace["calls"] if args is not None)

    # -- checks ---------------------------------------------------------------------------
    def check_flags(self, tool: str | None = None) -> None:
        """The kill switch, in order: global, tenant, release, run, frozen tool."""
        rt = self.rt
        if rt.failure is not None or _monotonic() - rt.refreshed > self.g.staleness_s:
            rt.assert_fresh()
        flags = rt.flags
        if not flags:
            return
        for level, target, key in self.keys:
            info = flags.get(key)
            if info is not None:
                raise Halted(level, target, info.get("reason", "halted"),
                             signal=info.get("signal", "operator"))
        if tool is not None:
            info = flags.get(f"freeze:tool:{tool}")
            if info is not None:
                raise Halted("tool", tool, info.get("reason", "tool frozen"), signal="frozen_tool")

    def check_call(self, tool: str, signature: str, writes: bool) -> None:
        """Before a tool runs: the kill switch, the scope, then the bounds and detectors."""
        self.check_flags(tool)
        if self.tools is not None:
            self._check_scope(tool)
        g = self.g
        now = self.rt.clock()
        self._check_steps_and_cost()
        if g.max_tool_calls_per_minute is not None:
            self._check_rate(self.calls, now, g.max_tool_calls_per_minute, "tool_calls_per_minute")
        if writes and g.max_writes_per_minute is not None:
            self._check_rate(self.writes, now, g.max_writes_per_minute, "writes_per_minute")
        if g.max_repeats is not None:
            self._check_repeats((tool, signature), now, g.max_repeats)
        self.rt._dirty[self.run_id] = self

    def passed(self, tool: str, signature: str) -> None:
        """The call got through every check: a new signature is a change of state."""
        call = (tool, signature)
        if call in self.signatures:
            return
        self.signatures.add(call)
        if self.resumed_signatures and _digest(tool + "\x00" + signature) in \
                self.resumed_signatures:
            return  # seen before the resume: not new
        self.last_change_step = self.run.step

    def check_destination(self, tool: str, destination: str | None) -> Alert | None:
        """A write to a destination this tenant never wrote to before: allow, alert or halt."""
        mode = self.g.new_destination
        if destination is None or mode == "allow":
            return None
        if self.rt.is_new_destination(self.tenant, destination) is False:
            return None
        reason = f"{tool} writes to {destination!r}, never seen before for tenant {self.tenant}"
        if mode == "halt":
            raise self._trip("new_destination", 1, 0, reason)
        self.rt.log_alert({"signal": "new_destination", "reason": reason, "run_id": self.run_id,
                           "tenant": self.tenant, "destination": destination})
        return Alert("run", self.run_id, reason, signal="new_destination")

    def after_model_output(self, cost_usd: float | None) -> None:
        """After a model output: the run thinks; steps, cost and no-progress still bound it."""
        if cost_usd:
            self.cost += cost_usd
            self.rt.add_spend(self.tenant, cost_usd)
        self.rt.mark_dirty(self)
        self.check_flags()
        self._check_steps_and_cost()
        limit = self.g.max_steps_without_progress
        if limit is not None and self.run.step - self.last_change_step > limit:
            raise self._trip("no_progress", self.run.step - self.last_change_step, limit,
                             f"{self.run.step - self.last_change_step} steps with no progress "
                             "and no new tool call")

    def after_progress(self) -> None:
        self.progress += 1
        self.last_change_step = self.run.step
        self.rt.mark_dirty(self)

    def parent_lineage(self, parent_id: str) -> tuple[int, str] | None:
        """(depth, root_run_id) of a parent known only by its id, from its saved state."""
        try:
            saved = self.rt.control.get(f"run:{parent_id}")
        except ControlError as exc:
            raise Halted("store", self.rt.control.url, f"control store unavailable: {exc}",
                         signal="store_error") from None
        if not saved or "depth" not in saved:
            return None
        return int(saved["depth"]) + 1, str(saved.get("root_run_id") or parent_id)

    def _check_width(self, parent_id: str, limit: int) -> None:
        """Fan-out width: every sub-agent of the parent, from any process, counts."""
        try:
            self.rt.control.add(f"children:{parent_id}", 0, 1.0)
            count = int(self.rt.control.total(f"children:{parent_id}", 0, 0))
        except ControlError as exc:
            raise Halted("store", self.rt.control.url, f"control store unavailable: {exc}",
                         signal="store_error") from None
        if count > limit:
            raise self._trip("fan_out_width", count, limit,
                             f"run {parent_id} started {count} sub-agents (bound {limit})",
                             target=parent_id)

    def check_start(self) -> None:
        """At run start: halts, depth, the tenant's concurrency cap."""
        self.check_flags()
        limit = self.g.max_depth
        if limit is not None and self.run.depth > limit:
            raise self._trip("fan_out_depth", self.run.depth, limit,
                             f"sub-agent depth {self.run.depth} (bound {limit})")
        if self.run.parent_run_id is not None and self.g.max_children is not None:
            self._check_width(self.run.parent_run_id, self.g.max_children)
        try:  # saved now, so a sub-agent in another process finds this run's lineage at once
            self.rt.control.put(f"run:{self.run_id}", self.state())
        except ControlError as exc:
            raise Halted("store", self.rt.control.url, f"control store unavailable: {exc}",
                         signal="store_error") from None
        if self.g.tenant_spend_usd is not None:
            self.rt.track_tenant(self.tenant)
        if self.g.max_concurrent_runs is not None:
            self.rt.take_slot(self.tenant, self.run_id)

    def finish(self) -> None:
        """At run end: give back the concurrency slot, save the state now."""
        self.rt.mark_dirty(self)
        self.rt.give_back_slot(self.tenant, self.run_id)

    def _check_scope(self, tool: str) -> None:
        if self.tools is not None and tool not in self.tools:
            self._violation(tool, f"tool {tool!r} is not in this run's scope "
                                  f"({', '.join(sorted(self.tools)) or 'no tools'})")

    def check_bounds(self, tool: str, bounds: dict[str, tuple[float | None, float | None]],
                     args: dict[str, Any]) -> None:
        for name, (low, high) in bounds.items():
            value = args.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if (low is not None and value < low) or (high is not None and value > high):
                span = f"[{'' if low is None else low}, {'' if high is None else high}]"
                self._violation(tool, f"{tool}({name}={value}) is outside its bounds {span}")

    def _violation(self, tool: str, reason: str) -> None:
        self.scope_violations += 1
        self.rt.mark_dirty(self)
        limit = self.g.max_scope_violations
        if limit is not None and self.scope_violations >= limit:
            raise self._trip("scope_violations", self.scope_violations, limit, reason)
        raise OutOfScope("run", self.run_id, reason, signal="scope", value=self.scope_violations,
                         threshold=limit)

    def _check_steps_and_cost(self) -> None:
        g = self.g
        if g.max_steps is not None and self.run.step > g.max_steps:
            raise self._trip("steps", self.run.step, g.max_steps,
                             f"{self.run.step} steps (bound {g.max_steps})")
        if g.max_cost_usd is not None and self.cost > g.max_cost_usd:
            raise self._trip("cost", self.cost, g.max_cost_usd,
                             f"run cost ${self.cost:.4f} (bound ${g.max_cost_usd})")
        if g.tenant_spend_usd is not None:
            spend = self.rt.tenant_spend(self.tenant)
            if spend > g.tenant_spend_usd:
                raise self._trip("tenant_spend", spend, g.tenant_spend_usd,
                                 f"tenant {self.tenant} spent ${spend:.4f} in "
                                 f"{g.spend_window_s:g}s (bound ${g.tenant_spend_usd})",
                                 level="tenant", target=self.tenant)
        if g.min_progress_per_usd is not None and self.cost >= max(g.progress_grace_usd, 1e-12):
            rate = self.progress / self.cost
            if rate < g.min_progress_per_usd:
                raise self._trip("progress_per_usd", rate, g.min_progress_per_usd,
                                 f"{self.progress} progress marks for ${self.cost:.4f}")

    def _check_rate(self, window: deque[float], now: float, limit: int, signal: str) -> None:
        window.append(now)
        while window[0] <= now - _MINUTE:
            window.popleft()
        if len(window) > limit:
            raise self._trip(signal, len(window), limit,
                             f"{len(window)} {signal.replace('_', ' ')} (bound {limit})")

    def _check_repeats(self, key: tuple[str, str], now: float, limit: int) -> None:
        window = self.repeats.get(key)
        if window is None:
            resumed = self.resumed_repeats.pop((key[0], _digest(key[1]))) if \
                self.resumed_repeats else None
            window = self.repeats[key] = resumed if resumed is not None else deque()
        window.append(now)
        while window[0] <= now - self.g.repeat_window_s:
            window.popleft()
        if len(window) > limit:
            tool = key[0]
            raise self._trip("repeats", len(window), limit,
                             f"{tool} called {len(window)} times with the same arguments "
                             f"in {self.g.repeat_window_s:g}s (bound {limit})")

    def _trip(self, signal: str, value: float, threshold: float, reason: str,
              level: str = "run", target: str | None = None) -> Halted:
        return self.rt.trip(level, target or self.run_id, reason, signal, value, threshold,
                            run_id=self.run_id)


def guard_from_mapping(data: dict[str, Any], source: str) -> Guard:
    """A Guard from settings read from a file; a bad key or value is a one-line ValueError."""
    try:
        return Guard(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        got = first.get("input")
        raise ValueError(f"{source}: guard setting {key!r}: {first['msg']} (got {got!r})") from None


def load_project_settings(start: Path | None = None) -> tuple[dict[str, Any], str] | None:
    """``[tool.tracekit]`` of the nearest pyproject.toml, or a tracekit.toml, from ``start`` up."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        own = folder / "tracekit.toml"
        if own.is_file():
            return _read_toml(own), str(own)
        project = folder / "pyproject.toml"
        if project.is_file():
            table = _read_toml(project).get("tool", {}).get("tracekit")
            return (table, f"{project} [tool.tracekit]") if table else None
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not readable TOML ({exc})") from None


def _digest(text: str) -> str:
    """A short stable hash: what the control store keeps instead of arguments or URLs."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]
