"""The control store's interface: the roles the guard, the ledger and on-call use, and the
flag vocabulary they share.

Three backends pass one contract suite (``tests/control/``): ``SQLiteControl`` (the embedded
default, ``control.db`` under the store root), ``RedisControl`` (a fleet; every flag change
is published) and ``MemoryControl`` (one process, nothing shared: replays and tests).

Flags are keyed ``halt:global``, ``halt:tenant:<t>``, ``halt:release:<id>``, ``halt:run:<id>``
and ``freeze:tool:<name>``; each carries who set it, when and why. Counters are summed per time
bucket (tenant spend per window, across every process). Every operation may raise
``ControlError``: the guard turns that into a refusal (fail closed), never into a pass.
"""

from __future__ import annotations

import getpass
import os
import time
from typing import Any, Protocol

from .._base.vocab import HaltLevel
from ..errors import ControlError

__all__ = [
    "CONTROL_VERSION",
    "ControlError",
    "ControlStore",
    "Counters",
    "Documents",
    "Flags",
    "GuardControl",
    "Idempotency",
    "Leases",
    "LedgerControl",
    "OnCallControl",
    "flag_key",
    "level_of",
    "now_info",
]

#: version of the control store's layout; a store of another version is refused loudly
CONTROL_VERSION = 1
_FLAG_LEVELS = (
    HaltLevel.GLOBAL,
    HaltLevel.TENANT,
    HaltLevel.RELEASE,
    HaltLevel.RUN,
    HaltLevel.TOOL,
)


def flag_key(level: str, target: str | None = None) -> str:
    """The flag key of a halt (or, for level ``tool``, a freeze)."""
    if level not in _FLAG_LEVELS:
        raise ValueError(f"unknown halt level {level!r}; use one of {', '.join(_FLAG_LEVELS)}")
    if level == HaltLevel.GLOBAL:
        return "halt:global"
    if not target:
        raise ValueError(f"halting a {level} needs its name")
    return f"freeze:tool:{target}" if level == HaltLevel.TOOL else f"halt:{level}:{target}"


def level_of(key: str) -> str:
    """The halt level of a flag key (``halt:tenant:acme`` -> ``tenant``)."""
    if key.startswith("freeze:"):
        return HaltLevel.TOOL
    return key.split(":")[1] if ":" in key else key


def now_info(reason: str, by: str | None = None, **extra: Any) -> dict[str, Any]:
    """The record kept with a flag: when, by whom, why."""
    who = by or os.environ.get("TRACEKIT_OPERATOR") or _login()
    return {"reason": reason, "by": who, "at": time.time(), **extra}


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


# -- the roles --------------------------------------------------------------------------------
class Flags(Protocol):
    """The kill switch: on-call sets and clears flags, every guard reads them; trips are logged."""

    url: str

    def check_alive(self) -> None: ...
    def set_flag(self, key: str, info: dict[str, Any]) -> None: ...
    def clear_flag(self, key: str) -> bool: ...
    def flags(self) -> dict[str, dict[str, Any]]: ...
    def log_trip(self, trip: dict[str, Any]) -> None: ...
    def trips(self, limit: int = 20) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class Counters(Protocol):
    """Shared counters summed per bucket: a window's total is the sum of its buckets."""

    def add(self, counter: str, bucket: int, amount: float, ttl_s: float | None = None) -> None: ...
    def total(self, counter: str, since_bucket: int, until_bucket: int | None = None) -> float: ...


class Documents(Protocol):
    """Small JSON documents by key: a run's saved guard state, a tenant's last release."""

    def put(self, key: str, value: dict[str, Any]) -> None: ...
    def get(self, key: str) -> dict[str, Any] | None: ...


class Leases(Protocol):
    """Slots held until they expire: a crashed worker's slot comes back by itself."""

    def acquire(self, name: str, holder: str, limit: int, expires: float, now: float) -> bool: ...
    def release(self, name: str, holder: str) -> None: ...


class Idempotency(Protocol):
    """Idempotency keys taken atomically: one caller fires an effect, the others see it."""

    url: str

    def reserve(self, key: str, doc: dict[str, Any]) -> dict[str, Any] | None: ...
    def settle(self, key: str, doc: dict[str, Any]) -> None: ...
    def peek(self, key: str) -> dict[str, Any] | None: ...
    def replace_failed(self, key: str, entry_id: str, doc: dict[str, Any]) -> bool: ...
    def close(self) -> None: ...


class GuardControl(Flags, Counters, Documents, Leases, Protocol):
    """What the guard uses: flags, counters, run state and concurrency leases."""


class LedgerControl(Idempotency, Protocol):
    """What the side-effect ledger (and compensation) uses: idempotency keys."""


class OnCallControl(Flags, Documents, Protocol):
    """What on-call uses: flags and trips (and a tenant's last release, for unhalt)."""


class ControlStore(GuardControl, LedgerControl, Protocol):
    """Every role: what a backend implements."""
