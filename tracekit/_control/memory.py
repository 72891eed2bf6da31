"""A control store in memory: one process, nothing shared. Policy and agent replay run the
guard on it (no socket, no file), and tests use it; it keeps every promise of the contract
the other backends keep (leases expire and cap, idempotency keys are taken once, documents
are kept as JSON: a caller that changes a dict after handing it over changes nothing here, and
what comes back is what SQLite and Redis give back: lists for tuples, string keys)."""

from __future__ import annotations

import json
import threading
from typing import Any

from .._base.vocab import LedgerStatus

__all__ = ["MemoryControl"]

_KEEP_TRIPS = 1000  # the newest trips kept, as the other backends keep


class MemoryControl:
    """Flags, counters, documents, leases and idempotency keys in dicts, behind one lock."""

    url = "memory:"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: dict[str, str] = {}  # every document is kept as its JSON text
        self._counters: dict[str, dict[int, float]] = {}
        self._docs: dict[str, str] = {}
        self._trips: list[str] = []  # newest first
        self._idem: dict[str, str] = {}
        self._leases: dict[str, dict[str, float]] = {}  # name -> holder -> expires

    def check_alive(self) -> None:
        return None

    # -- flags and trips ------------------------------------------------------------------
    def set_flag(self, key: str, info: dict[str, Any]) -> None:
        text = json.dumps(info)
        with self._lock:
            self._flags[key] = text

    def clear_flag(self, key: str) -> bool:
        with self._lock:
            return self._flags.pop(key, None) is not None

    def flags(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            held = dict(self._flags)
        return {k: json.loads(v) for k, v in held.items()}

    def log_trip(self, trip: dict[str, Any]) -> None:
        text = json.dumps(trip)
        with self._lock:
            self._trips.insert(0, text)
            del self._trips[_KEEP_TRIPS:]

    def trips(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            recent = self._trips[: max(limit, 0)]
        return [json.loads(t) for t in recent]

    # -- counters and documents ---------------------------------------------------------------
    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None = None) -> None:
        with self._lock:
            buckets = self._counters.setdefault(counter, {})
            buckets[bucket] = buckets.get(bucket, 0.0) + amount

    def total(self, counter: str, since_bucket: int, until_bucket: int | None = None) -> float:
        """The sum of the buckets in [since, until] (no upper bound when ``until`` is None)."""
        with self._lock:
            buckets = self._counters.get(counter, {})
            return float(
                sum(
                    v
                    for b, v in buckets.items()
                    if since_bucket <= b and (until_bucket is None or b <= until_bucket)
                )
            )

    def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value)
        with self._lock:
            self._docs[key] = text

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._docs.get(key)
        return None if text is None else json.loads(text)

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
        text = json.dumps(doc)
        with self._lock:  # (not ``setdefault(...) is text``: equal JSON texts may be one object)
            held = self._idem.get(key)
            if held is None:
                self._idem[key] = text
                return None
        return json.loads(held)  # type: ignore[no-any-return]

    def settle(self, key: str, doc: dict[str, Any]) -> None:
        text = json.dumps(doc)
        with self._lock:
            self._idem[key] = text

    def peek(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._idem.get(key)
        return None if text is None else json.loads(text)

    def replace_failed(self, key: str, entry_id: str, doc: dict[str, Any]) -> bool:
        """Hand a key whose attempt ``entry_id`` failed to a retry; False if another got it."""
        text = json.dumps(doc)
        with self._lock:
            raw = self._idem.get(key)
            held = None if raw is None else json.loads(raw)
            if (
                isinstance(held, dict)
                and held.get("entry_id") == entry_id
                and held.get("status") == LedgerStatus.FAILED
            ):
                self._idem[key] = text
                return True
            return False

    def close(self) -> None:
        return None
