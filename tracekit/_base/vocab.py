"""The words of the data model, as types: event kinds and statuses, ledger statuses, halt levels
and the signals that halt a run.

Each is a ``StrEnum``: a member *is* its string, so it is stored, compared and queried as one
(``kind = 'tool_call'`` in SQL, ``row["kind"] == EventKind.TOOL_CALL`` in Python).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventKind", "EventStatus", "HaltLevel", "LedgerStatus", "Signal"]


class EventKind(StrEnum):
    """What one event row records (the ``kind`` column)."""

    RUN_START = "run_start"
    PROMPT = "prompt"
    MODEL_OUTPUT = "model_output"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    GUARD = "guard"  # a refusal, a halt or an alert, with signal, value and threshold
    PROGRESS = "progress"
    ERROR = "error"
    RUN_END = "run_end"
    ENTRY = "entry"  # the entry point's input, for agent replay
    CLOCK = "clock"  # a tracekit.now() read
    RANDOM = "random"  # a tracekit.random() draw
    HTTP = "http"  # one HTTP exchange (tracekit.http)


class EventStatus(StrEnum):
    """The ``status`` column of an event."""

    RUNNING = "running"  # run_start
    STARTED = "started"  # tool_call
    OK = "ok"
    ERROR = "error"
    HALTED = "halted"
    REFUSED = "refused"  # out of scope: the call is refused, the run goes on
    ALERT = "alert"  # a detector in alert mode: recorded, the call goes on
    DUPLICATE = "duplicate"  # a write suppressed by the ledger: the first outcome returned


#: the statuses of a guard event that stopped a call
REFUSALS = frozenset({EventStatus.HALTED, EventStatus.REFUSED})


class LedgerStatus(StrEnum):
    """One state change of a side effect (the ledger's ``status`` column)."""

    RESERVED = "reserved"  # durable before the effect runs: after a crash, *may have fired*
    FIRED = "fired"
    FAILED = "failed"
    SUPPRESSED_DUPLICATE = "suppressed_duplicate"
    COMPENSATED = "compensated"


class HaltLevel(StrEnum):
    """Where a halt applies, in the order the guard checks them (tool: a frozen tool; store:
    the control store could not vouch for the flags)."""

    GLOBAL = "global"
    TENANT = "tenant"
    RELEASE = "release"
    RUN = "run"
    TOOL = "tool"
    STORE = "store"


class Signal(StrEnum):
    """What stopped a call, outside the detectors (each detector names its own signal)."""

    OPERATOR = "operator"  # a halt set by a person (tracekit halt)
    FROZEN_TOOL = "frozen_tool"
    STORE_ERROR = "store_error"
    STALE_FLAGS = "stale_flags"
    CAPTURE_FAILURE = "capture_failure"  # the trace or the ledger cannot be written
    SCOPE = "scope"  # a call out of the run's scope, refused
