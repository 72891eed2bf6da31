"""Every exception tracekit raises, under one base: ``except tracekit.errors.TracekitError``.

Each class also keeps the built-in base its callers already catch (``ReplayDivergence`` is an
``AssertionError``, so pytest shows it as a failed expectation; ``UnknownRun`` is a
``LookupError``...). This module imports nothing of tracekit: every layer may raise from it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AmbiguousRun",
    "BundleExists",
    "ControlError",
    "DuplicateInFlight",
    "ForeignFile",
    "Halted",
    "HandEdited",
    "IdempotencyConflict",
    "ImportFormatError",
    "LedgerWriteFailed",
    "NothingToUnhalt",
    "OutOfScope",
    "RecordingEnds",
    "ReleaseStillHalted",
    "ReplayDivergence",
    "ReplayedFailure",
    "ReplayedToolError",
    "TracekitError",
    "TracekitWarning",
    "UnknownQuery",
    "UnknownRun",
]


class TracekitError(Exception):
    """The base of every exception tracekit raises."""


class TracekitWarning(UserWarning):
    """A file in the store was skipped (truncated, foreign) and left in place for inspection."""


# -- the guard ------------------------------------------------------------------------------
class Halted(TracekitError):
    """A guarded call was refused: the run, tenant, release or fleet is halted, or a bound tripped.

    ``level`` is global, tenant, release, run, tool or store (the control store could not vouch
    for the flags: fail closed); ``signal``, ``value`` and ``threshold`` name what tripped.
    """

    tracekit_halt = True
    verb = "halted"
    status = "halted"  # the guard event's status

    def __init__(
        self,
        level: str,
        target: str | None,
        reason: str,
        signal: str | None = None,
        value: float | None = None,
        threshold: float | None = None,
    ) -> None:
        self.level, self.target, self.reason = level, target, reason
        self.signal, self.value, self.threshold = signal, value, threshold
        where = level if target is None else f"{level} {target}"
        super().__init__(f"{self.verb} ({where}): {reason}")

    @classmethod
    def store_unavailable(
        cls, url: str | None, detail: object, doing: str = "control store unavailable"
    ) -> Halted:
        """Fail closed: the control store could not answer, so nothing is let through."""
        return cls("store", url, f"{doing}: {detail}", signal="store_error")

    def as_attrs(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "target": self.target,
            "reason": self.reason,
            "signal": self.signal,
            "value": self.value,
            "threshold": self.threshold,
        }


class OutOfScope(Halted):
    """A call outside the run's scope (a tool it may not use, an argument out of bounds).

    The call is refused; the run goes on until ``max_scope_violations`` is reached.
    """

    verb = "refused"
    status = "refused"


class ControlError(TracekitError, RuntimeError):
    """The control store could not answer (down, locked, timed out, wrong version)."""


class ReleaseStillHalted(TracekitError, RuntimeError):
    """Unhalting a tenant or run whose release is halted: roll the release back first."""


class NothingToUnhalt(TracekitError, LookupError):
    """There is no such halt (or freeze) to lift."""


# -- the ledger -----------------------------------------------------------------------------
class IdempotencyConflict(TracekitError, RuntimeError):
    """The same idempotency key with different arguments: the effect does not run."""


class ReplayedFailure(TracekitError, RuntimeError):
    """A retry of a write whose first attempt failed (not declared retryable): the failure is
    replayed, the effect does not run again."""


class DuplicateInFlight(TracekitError, RuntimeError):
    """The first call with this key has not settled yet (it may have fired): not run again."""


class LedgerWriteFailed(TracekitError, OSError):
    """The ledger could not make a write's reservation durable (a full disk, say): the effect
    did not run, and a retry may run it once the ledger can be written again."""


# -- the store and its queries ---------------------------------------------------------------
class ForeignFile(TracekitError, ValueError):
    """A file in the store that tracekit did not write (or whose header is damaged)."""


class ImportFormatError(TracekitError, ValueError):
    """A file given to ``tracekit import`` is not the format named (or found): the message
    names the file and what was expected."""


class UnknownRun(TracekitError, LookupError):
    """No run with that id in the store; carries the closest run ids."""

    def __init__(self, run_id: str, suggestions: list[str]) -> None:
        self.run_id = run_id
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"no run {run_id!r} in the store{hint}")


class AmbiguousRun(UnknownRun):
    """More than one run starts with that prefix; carries (up to five of) them."""

    def __init__(self, run_id: str, matches: list[str], more: bool = False) -> None:
        super().__init__(run_id, matches)
        listed = ", ".join(matches) + (", ..." if more else "")
        self.args = (
            f"{run_id!r} is the start of {'more than ' if more else ''}"
            f"{len(matches)} runs ({listed}): give more of the id",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownQuery(TracekitError, ValueError):
    """No named query by that name (the message lists the closest ones)."""


# -- incidents ------------------------------------------------------------------------------
class BundleExists(TracekitError, FileExistsError):
    """An incident bundle of that name is already there (pass force=True / --force)."""


class HandEdited(TracekitError, FileExistsError):
    """The test was edited since it was generated: not overwritten without --force."""


class ReplayDivergence(TracekitError, AssertionError):
    """The agent did something the recording does not have: the replay stops there.

    ``run_id``, ``step``, ``kind`` (tool_call, prompt, clock, random, run, http, network),
    ``actual`` and ``recorded`` (the nearest recorded call, if any) say where and what.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        step: int | None = None,
        kind: str | None = None,
        actual: Any = None,
        recorded: Any = None,
    ) -> None:
        super().__init__(message)
        self.run_id, self.step, self.kind = run_id, step, kind
        self.actual, self.recorded = actual, recorded


class RecordingEnds(ReplayDivergence):
    """The agent went on past the end of the recording: today's guard let it through."""


class ReplayedToolError(TracekitError, RuntimeError):
    """A tool call that failed in the recording fails again in replay, with the recorded error."""
