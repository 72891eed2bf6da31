"""The process's guard: its settings, its control store and a fresh cache of the flags.

The per-call path reads only memory: flags are cached and refreshed by a background thread
(and, on Redis, pushed by pub/sub). A control store that errors refuses every call; so does a
cache older than ``staleness_s`` that the call cannot read again on the spot (the refresh thread
can fall behind: a busy agent thread keeps it off the GIL). What the runs of this process share
through the control store (a tenant's spend window, first-seen destinations, concurrency
leases, run state to resume) is kept here and synced by the same thread.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._base.encode import canonical_json
from .._base.ids import digest
from .._base.vocab import Signal
from .._control.base import GuardControl, flag_key, now_info
from ..errors import ControlError, Halted
from .settings import DETECTORS, Guard

if TYPE_CHECKING:
    from .runguard import RunGuard

__all__ = ["GuardRuntime"]


class GuardRuntime:
    """The guard of this process: one per configured guard, shared by every run in it."""

    def __init__(
        self,
        guard: Guard,
        control: GuardControl,
        clock: Callable[[], float] = time.time,
        scrub: Callable[[str], str] = lambda text: text,
        background: bool = True,
        capture_failure: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.guard = guard
        #: why this process cannot write its trace or ledger right now (None: it can)
        self.capture_failure = capture_failure
        self.control = control
        self.clock = clock
        self.scrub = scrub  # the configured redaction: nothing secret reaches the control store
        self.detectors = tuple(cls for cls in DETECTORS if cls.active(guard))
        #: the settings in force, as recorded on each run's start (an incident's bundle says
        #: which guard was watching when it happened)
        self.settings_json = canonical_json(guard.model_dump(mode="json"))
        self._refresh_lock = threading.Lock()  # one refresh at a time; trips wait for it
        self._local_trips: dict[str, dict[str, Any]] = {}  # tripped while the store was down
        #: monotonic time until which no call can be refused by the kill switch: no flag set,
        #: the store answering and the cache fresh (the one comparison a clear call makes)
        self.clear_until = -math.inf
        self._flags: dict[str, dict[str, Any]] = {}
        self.refreshed = -math.inf  # monotonic time of the last good read of the flags
        self.failure: str | None = "the guard has not read its control store yet"
        self.failure_signal = Signal.STORE_ERROR
        self._bucket_s = max(guard.spend_window_s / 30.0, 1.0)
        self._spend_lock = threading.Lock()
        self._unsynced: dict[str, dict[int, float]] = {}  # tenant -> bucket -> spend not pushed
        self._spent: deque[tuple[str, float, float]] = deque()  # (tenant, at, cost) not folded
        self.note_spend = self._spent.append
        self._inflight: dict[str, float] = {}  # tenant -> spend being pushed right now
        self._tenant_window: dict[str, float] = {}  # tenant -> window total at the last sync
        self._dirty: dict[str, RunGuard] = {}
        self._leases: dict[str, str] = {}  # run_id -> tenant, for the slots this process holds
        self._destinations: set[tuple[str, str]] = set()
        self._leases_renewed = 0.0
        self._stop = threading.Event()
        self.refresh()
        self._threads = self._start_threads() if background else []

    def _start_threads(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._refresh_loop, daemon=True, name="tracekit-guard")]
        if hasattr(self.control, "subscribe"):  # pub/sub: a halt reaches every process at once
            threads.append(
                threading.Thread(target=self._listen, daemon=True, name="tracekit-guard-pubsub")
            )
        for thread in threads:
            thread.start()
        return threads

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
                flags = self._read_flags()
            except ControlError as exc:
                self.fail(str(exc))
                return
            except Exception as exc:  # anything unexpected fails closed too
                self.fail(f"control store error: {exc}")
                return
            self._fresh(flags, started)

    def _read_flags(self) -> dict[str, dict[str, Any]]:
        glass = self._break_glass()  # first: a halt there holds even if the store fails
        self.control.check_alive()
        return {**self.control.flags(), **glass, **self._local_trips}

    def _fresh(self, flags: dict[str, dict[str, Any]], started: float) -> None:
        """The flags as read from ``started`` on: the cache is good again (unless the trace
        cannot be written and the guard halts on that)."""
        self.refreshed = started
        self.flags = flags
        self.fail(None)
        if self.guard.on_capture_failure == "halt" and (cannot := self.capture_failure()):
            self.fail(f"the trace cannot be written ({cannot})", Signal.CAPTURE_FAILURE)

    def _catch_up(self) -> bool:
        """The flags read on the caller's thread when the cache has aged past the bound while
        the store answers: the refresh thread fell behind (a busy agent whose thread keeps
        taking the GIL back starves it for seconds). Waits at most ``refresh_s`` for a refresh
        in flight (one hung on the store stays refused); True when the cache is fresh."""
        if not self._refresh_lock.acquire(timeout=self.guard.refresh_s):
            return False
        try:
            if self.failure is None and not self._stale():
                return True  # the refresh in flight finished
            started = time.monotonic()
            try:
                flags = self._read_flags()
            except ControlError as exc:
                self.fail(str(exc))
                return False
            except Exception as exc:
                self.fail(f"control store error: {exc}")
                return False
            self._fresh(flags, started)
            return self.failure is None
        finally:
            self._refresh_lock.release()

    def _stale(self) -> bool:
        return time.monotonic() - self.refreshed > self.guard.staleness_s

    @property
    def flags(self) -> dict[str, dict[str, Any]]:
        """The halt and freeze flags, as last read (and as tripped here since)."""
        return self._flags

    @flags.setter
    def flags(self, flags: dict[str, dict[str, Any]]) -> None:
        self._flags = flags
        self._settle()

    def fail(self, reason: str | None, signal: Signal = Signal.STORE_ERROR) -> None:
        self.failure, self.failure_signal = reason, signal
        self._settle()

    def _settle(self) -> None:
        """``clear_until`` again, after a change of the flags, the failure or the freshness."""
        clear = not self._flags and self.failure is None
        self.clear_until = self.refreshed + self.guard.staleness_s if clear else -math.inf

    def _break_glass(self) -> dict[str, dict[str, Any]]:
        """The break-glass halts beside an embedded store (``tracekit halt`` writes there when
        the store cannot take a halt); they count even while the store is failing."""
        glass = getattr(self.control, "break_glass", None)
        if glass is None:
            return {}
        found: dict[str, dict[str, Any]] = glass.flags()
        if found:
            self.flags = {**self.flags, **found}
        return found

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.guard.refresh_s):
            self.refresh()

    def _listen(self) -> None:
        subscribe = self.control.subscribe  # type: ignore[attr-defined]
        while not self._stop.is_set():
            try:
                subscribe(self.refresh, self._stop)
            except ControlError as exc:
                self.fail(str(exc))
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
        """Called when the cache failed or looks stale: a refusal, unless a stale cache (the
        store answering) could be read again on the spot."""
        if self.failure is None and self._catch_up():
            return
        if self.failure is not None:
            if self.failure_signal != Signal.STORE_ERROR:
                raise Halted("store", self.control.url, self.failure, signal=self.failure_signal)
            raise Halted.store_unavailable(self.control.url, self.failure)
        age = time.monotonic() - self.refreshed
        if age > self.guard.staleness_s:
            bound = self.guard.staleness_s
            raise Halted(
                "store",
                self.control.url,
                f"halt flags are {age:.2f}s old (staleness bound {bound}s)",
                signal="stale_flags",
                value=age,
                threshold=bound,
            )

    def store_call(self, op: Callable[..., Any], *args: Any) -> Any:
        """One control-store operation on the guard's path: a failure refuses the call."""
        try:
            return op(*args)
        except ControlError as exc:
            raise Halted.store_unavailable(self.control.url, exc) from None

    # -- tripping -------------------------------------------------------------------------
    def trip(
        self,
        level: str,
        target: str,
        reason: str,
        signal: str,
        value: float,
        threshold: float,
        run_id: str | None = None,
    ) -> Halted:
        """Set the halt flag (the alarm is wired to the kill switch) and log the trip."""
        reason = self.scrub(reason)
        info = now_info(
            reason,
            by="tracekit-guard",
            signal=signal,
            value=value,
            threshold=threshold,
            run_id=run_id,
        )
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

    def log_alert(self, alert: dict[str, Any]) -> None:
        alert = {k: self.scrub(v) if isinstance(v, str) else v for k, v in alert.items()}
        with contextlib.suppress(ControlError):
            self.control.log_trip(
                {**now_info(alert["reason"], by="tracekit-guard"), "action": "alert", **alert}
            )

    # -- tenant spend across processes -------------------------------------------------------
    def add_spend(self, tenant: str, amount: float) -> None:
        """A model output's cost, noted (no lock: a deque's append is atomic); whoever reads
        the spend next folds it into its bucket. The per-call path calls ``note_spend((tenant,
        clock(), amount))`` itself, the same without a frame."""
        self.note_spend((tenant, self.clock(), amount))

    def _fold_spent(self) -> None:
        """The costs noted since the last fold, into their buckets (with the spend lock held:
        each one popped once, so counted once)."""
        spent, size = self._spent, self._bucket_s
        while spent:
            tenant, at, amount = spent.popleft()
            per = self._unsynced.setdefault(tenant, {})
            bucket = int(at // size)
            per[bucket] = per.get(bucket, 0.0) + amount

    def _window(self) -> tuple[int, int]:
        now = self.clock()
        since = int((now - self.guard.spend_window_s) // self._bucket_s) + 1
        return since, int(now // self._bucket_s) + 1

    def track_tenant(self, tenant: str) -> None:
        """Start following a tenant's shared spend window (one read, at run start)."""
        if tenant in self._tenant_window:
            return
        self._tenant_window[tenant] = self.store_call(
            self.control.total, f"spend:{tenant}", *self._window()
        )

    def tenant_spend(self, tenant: str) -> float:
        """Spend in the window: every process's, as of the last sync, plus this one's since
        (including what is being pushed right now: never counted zero times)."""
        with self._spend_lock:
            self._fold_spent()
            local = sum(self._unsynced.get(tenant, {}).values())
            local += self._inflight.get(tenant, 0.0)
        return self._tenant_window.get(tenant, 0.0) + local

    def _sync_spend(self) -> None:
        with self._spend_lock:
            self._fold_spent()
            pending, self._unsynced = self._unsynced, {}
            self._inflight = {t: sum(b.values()) for t, b in pending.items()}
        try:
            for tenant, buckets in pending.items():
                for bucket, amount in buckets.items():
                    self.control.add(
                        f"spend:{tenant}", bucket, amount, ttl_s=2 * self.guard.spend_window_s
                    )
            since, until = self._window()
            tenants = set(self._tenant_window) | set(pending)
            window = {t: self.control.total(f"spend:{t}", since, until) for t in tenants}
        except ControlError:
            self._keep_unsynced(pending)
            raise
        with self._spend_lock:
            self._tenant_window = window
            self._inflight = {}

    def _keep_unsynced(self, pending: dict[str, dict[int, float]]) -> None:
        """Spend that could not be pushed is kept for the next try."""
        with self._spend_lock:
            self._inflight = {}
            for tenant, buckets in pending.items():
                per = self._unsynced.setdefault(tenant, {})
                for bucket, amount in buckets.items():
                    per[bucket] = per.get(bucket, 0.0) + amount

    # -- first-seen destinations: a local cache over the control store ---------------------
    def is_new_destination(self, tenant: str, destination: str) -> bool:
        """True the first time any process sees ``destination`` for ``tenant`` (one store
        round trip per destination this process has not seen yet, none after)."""
        key = (tenant, destination)
        if key in self._destinations:
            return False
        counter = f"dest:{tenant}:{digest(destination, 24)}"  # a URL may carry a secret
        seen = self.store_call(self.control.total, counter, 0, 0) > 0
        if not seen:
            self.store_call(self.control.add, counter, 0, 1.0)
        self._destinations.add(key)
        return not seen

    # -- per-tenant concurrency slots, leased so a crashed worker's slot comes back ---------------
    def take_slot(self, tenant: str, run_id: str) -> None:
        limit = self.guard.max_concurrent_runs
        assert limit is not None
        now = self.clock()
        ok = self.store_call(
            self.control.acquire, f"runs:{tenant}", run_id, limit, now + self.guard.lease_s, now
        )
        if not ok:
            raise Halted(
                "run",
                run_id,
                f"tenant {tenant} already has {limit} runs in flight (max_concurrent_runs {limit})",
                signal="concurrent_runs",
                value=limit + 1,
                threshold=limit,
            )
        self._leases[run_id] = tenant

    def give_back_slot(self, tenant: str, run_id: str) -> None:
        if self._leases.pop(run_id, None) is not None:
            with contextlib.suppress(ControlError):
                self.control.release(f"runs:{tenant}", run_id)

    def _renew_leases(self) -> None:
        now = self.clock()
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
