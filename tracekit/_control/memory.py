"""A control store in memory: one process, nothing shared. Policy and agent replay run the
guard on it (no socket, no file), and tests use it; it keeps every promise of the contract
the other backends keep (leases expire and cap, idempotency keys are taken once)."""

from __future__ import annotations

import threading
from typing import Any

from .._base.vocab import LedgerStatus

__all__ = ["MemoryControl"]


class MemoryControl:
    """Flags, counters, documents, leases and idempotency keys in dicts, behind one lock."""

    url = "memory:"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: dict[str, dict[str, Any]] = {}
        self._counters: dict[str, dict[int, float]] = {}
        self._docs: dict[str, dict[str, Any]] = {}
        self._trips: list[dict[str, Any]] = []
        self._idem: dict[str, dict[str, Any]] = {}
        self._leases: dict[str, dict[str, float]] = {}  # name -> holder -> expires

    def check_alive(self) -> None:
        return None

    # -- flags and trips ------------------------------------------------------------------
    def set_flag(self, key: str, info: dict[str, Any]) -> None:
        with self._lock:
            self._flags[key] = dict(info)

    def clear_flag(self, key: str) -> bool:
        with self._lock:
            return self._flags.pop(key, None) is not None

    def flags(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._flags.items()}

    def log_trip(self, trip: dict[str, Any]) -> None:
        with self._lock:
            self._trips.insert(0, dict(trip))
            del self._trips[1000:]

    def trips(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(t) for t in self._trips[:limit]]

    # -- counters and documents ---------------------------------------------------------------
    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None = None) -> None:
        with self._lock:
            buckets = self._counters.setdefault(counter, {})
            buckets[bucket] = buckets.get(bucket, 0.0) + amount

    def total(self, counter: str, since_bucket: int, until_bucket: int | None = None) -> float:
        top = 2**62 if until_bucket is None else until_bucket
        with self._lock:
            buckets = self._counters.get(counter, {})
            return float(sum(v for b, v in buckets.items() if since_bucket <= b <= top))

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._docs[key] = dict(value)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._docs.get(key)
            return None if doc is None else dict(doc)

    # -- leases -------------------------------------------------------------------------------
    def acquire(self, name: str, holder: str, limit: int, expires: float, now: float) -> bool:
        """Take (or renew) one of ``limit`` slots of ``name`` until ``expires``; False if full."""
        with self._lock:
            held = self._leases.setdefault(name, {})
            for other in [h for h, until in held.items() if until < now]:
                del held[other]
            if holder not in held and len(held) >= limit:
                return False
            held[holder] = expires
            return True

    def release(self, name: str, holder: str) -> None:
        with self._lock:
            self._leases.get(name, {}).pop(holder, None)

    # -- idempotency --------------------------------------------------------------------------
    def reserve(self, key: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Take ``key`` atomically: None if this call took it, else the holder's document."""
        with self._lock:
            held = self._idem.get(key)
            if held is not None:
                return dict(held)
            self._idem[key] = dict(doc)
            return None

    def settle(self, key: str, doc: dict[str, Any]) -> None:
        with self._lock:
            self._idem[key] = dict(doc)

    def peek(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            held = self._idem.get(key)
            return None if held is None else dict(held)

    def replace_failed(self, key: str, entry_id: str, doc: dict[str, Any]) -> bool:
        """Hand a key whose attempt ``entry_id`` failed to a retry; False if another got it."""
        with self._lock:
            held = self._idem.get(key)
            if (
                held
                and held.get("entry_id") == entry_id
                and held.get("status") == LedgerStatus.FAILED
            ):
                self._idem[key] = dict(doc)
                return True
            return False

    def close(self) -> None:
        return None
