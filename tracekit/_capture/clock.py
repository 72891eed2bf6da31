"""The clock and the dice, recorded: ``tracekit.now()`` and ``tracekit.random()`` are recorded
in the run as ``clock`` and ``random`` events, and agent replay serves the recorded values.
Outside a run they are the plain thing: the time is now."""

from __future__ import annotations

import random as _random
import time
from datetime import UTC, datetime, timedelta

from .._base.vocab import EventKind
from .run import _current
from .state import PROCESS

__all__ = ["from_us", "now", "random"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now() -> datetime:
    """The current time (UTC), recorded in the run as a ``clock`` event; replay serves it."""
    current = _current.get()
    replay = PROCESS.replay
    if replay is not None:
        return from_us(replay.draw(current, "clock"))
    us = time.time_ns() // 1000
    if current is not None:
        current._record(EventKind.CLOCK, name="now", output=str(us))
    return from_us(us)


def random() -> float:
    """A random float in [0, 1), recorded as a ``random`` event; replay serves it."""
    current = _current.get()
    replay = PROCESS.replay
    if replay is not None:
        return float(replay.draw(current, "random"))
    value = _random.random()
    if current is not None:
        current._record(EventKind.RANDOM, name="random", output=repr(value))
    return value


def from_us(us: int | float) -> datetime:
    """A UTC datetime from microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=int(us))
