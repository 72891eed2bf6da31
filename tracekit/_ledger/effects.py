"""Idempotent writes: reserve in the control store, write ahead, fire once, settle.

A write tool's call, in order:

1. its idempotency key (declared, or the run + tool + canonical arguments) is reserved
   atomically in the control store — concurrent duplicates, from any process, fire once;
2. the ``reserved`` ledger row is made durable;
3. the effect runs;
4. ``fired`` (with the result) or ``failed`` is made durable and the key is settled.

A repeated key returns the first outcome without running the tool again (``suppressed_duplicate``);
the same key with different arguments raises ``IdempotencyConflict``. A failure is replayed to a
retry, as payment APIs replay errors, unless the tool declared it retryable (``retry_on``).

The ledger sees a run through the guard's ``RunView`` and a tool through ``WriteSpec``; the
caller hands it the control store, the ledger writer and the redaction rules.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from .._base.encode import canonical_json
from .._base.ids import digest, new_id
from .._base.protocols import RunView
from .._base.redact import Redactor
from .._base.vocab import LedgerStatus
from .._control.base import LedgerControl
from ..errors import (
    ControlError,
    DuplicateInFlight,
    Halted,
    IdempotencyConflict,
    LedgerWriteFailed,
    ReplayedFailure,
)
from .compensate import LedgerAppender

__all__ = ["Effect", "WriteSpec"]

_PENDING_WAIT_S = 5.0


class WriteSpec(Protocol):
    """What the ledger reads of a write tool's declaration (``@tracekit.tool(writes=True)``)."""

    name: str
    idempotency_key: Any
    amount: Any
    currency: Any
    action: str | None
    reversible: bool | None
    retry_on: tuple[type[BaseException], ...]

    def destination_of(self, named: dict[str, Any]) -> str | None: ...


def _value_of(spec_value: Any, named: dict[str, Any]) -> Any:
    if callable(spec_value):
        try:
            return spec_value(**named)
        except Exception:
            return None
    return spec_value


class Effect:
    """One write-tool call going through the ledger."""

    def __init__(
        self,
        run: RunView,
        spec: WriteSpec,
        call_id: str,
        named: dict[str, Any],
        encoded: str,
        *,
        control: LedgerControl,
        ledger: LedgerAppender,
        redactor: Redactor,
    ) -> None:
        self.run, self.spec, self.call_id = run, spec, call_id
        self.named, self.encoded = named, encoded
        self.control, self.ledger, self.redactor = control, ledger, redactor
        declared = _value_of(spec.idempotency_key, named)
        self.key = (
            str(declared)
            if declared is not None
            else digest(f"{run.run_id}\x00{spec.name}\x00{encoded}")
        )
        self.request_hash = digest(encoded)
        self.entry_id = new_id("fx_")

    # -- the protocol ------------------------------------------------------------------------
    def reserve(self) -> tuple[bool, Any]:
        """(True, None) when this call owns the effect; (False, result) for a duplicate."""
        control = self.control
        mine = {
            "entry_id": self.entry_id,
            "request_hash": self.request_hash,
            "run_id": self.run.run_id,
            "call_id": self.call_id,
            "status": LedgerStatus.RESERVED,
            "at": time.time(),
        }
        held = self._store(control.reserve, self.key, mine)
        if held is not None and self._retry_allowed(held):
            if self._store(control.replace_failed, self.key, str(held.get("entry_id")), mine):
                held = None  # this retry took the key over, atomically: one retry fires
            else:  # another retry did: wait for its outcome like any duplicate
                held = self._store(control.peek, self.key) or held
        if held is None:
            self._reserved_row()
            return True, None
        return False, self._duplicate(held)

    def fired(self, result: Any) -> None:
        encoded = self.redactor.redact_json(canonical_json(result))[0]  # kept for duplicates
        self._row(LedgerStatus.FIRED, result=encoded, durable=False)
        self._settle({"status": LedgerStatus.FIRED, "result": encoded})

    def failed(self, exc: BaseException) -> None:
        retryable = bool(self.spec.retry_on) and isinstance(exc, self.spec.retry_on)
        error = self.redactor.redact_text(f"{type(exc).__name__}: {exc}")[0]
        self._row(
            LedgerStatus.FAILED,
            result=canonical_json({"error": error, "retryable": retryable}),
            durable=False,
        )
        self._settle({"status": LedgerStatus.FAILED, "error": error, "retryable": retryable})

    # -- pieces ----------------------------------------------------------------------------
    def _reserved_row(self) -> None:
        """The reservation made durable; if the ledger cannot take it the key is given back
        (settled as a retryable failure), so a retry can run the effect that never ran."""
        try:
            self._row(LedgerStatus.RESERVED)
        except LedgerWriteFailed as exc:
            self._settle({"status": LedgerStatus.FAILED, "error": str(exc), "retryable": True})
            raise

    def _retry_allowed(self, held: dict[str, Any]) -> bool:
        return (
            held.get("status") == LedgerStatus.FAILED
            and bool(held.get("retryable"))
            and held.get("request_hash") == self.request_hash
        )

    def _duplicate(self, held: dict[str, Any]) -> Any:
        if held.get("request_hash") != self.request_hash:
            self._row(LedgerStatus.SUPPRESSED_DUPLICATE, result=canonical_json({"conflict": True}))
            raise IdempotencyConflict(
                f"{self.spec.name}: idempotency key {self.key!r} was used by call "
                f"{held.get('call_id')} of run {held.get('run_id')} with different arguments; "
                "the effect did not run (use a new key for a different request)"
            )
        held = self._settled(held)
        self._row(LedgerStatus.SUPPRESSED_DUPLICATE, result=held.get("result"))
        status = held.get("status")
        if status == LedgerStatus.FIRED:
            return json.loads(held["result"]) if held.get("result") else None
        if status == LedgerStatus.FAILED:
            raise ReplayedFailure(
                f"{self.spec.name}: the first attempt with key {self.key!r} "
                f"failed ({held.get('error')}); replayed, not run again"
            )
        raise DuplicateInFlight(
            f"{self.spec.name}: the call holding key {self.key!r} has not "
            "settled (it may have fired); not run again"
        )

    def _settled(self, held: dict[str, Any]) -> dict[str, Any]:
        """A duplicate of an in-flight call waits a moment for its outcome."""
        deadline = time.monotonic() + _PENDING_WAIT_S
        while held.get("status") == LedgerStatus.RESERVED and time.monotonic() < deadline:
            if time.time() - float(held.get("at", 0)) > _PENDING_WAIT_S * 4:
                break  # its owner is long gone: may have fired
            time.sleep(0.01)
            held = self._store(self.control.peek, self.key) or held
        return held

    def _settle(self, outcome: dict[str, Any]) -> None:
        doc = {
            "entry_id": self.entry_id,
            "request_hash": self.request_hash,
            "run_id": self.run.run_id,
            "call_id": self.call_id,
            "at": time.time(),
            **outcome,
        }
        self._store(self.control.settle, self.key, doc)

    def _row(self, status: LedgerStatus, result: str | None = None, durable: bool = True) -> None:
        spec, named = self.spec, self.named
        amount = _value_of(spec.amount, named)
        self.ledger.append(
            {
                "entry_id": self.entry_id,
                "run_id": self.run.run_id,
                "tenant": self.run.tenant,
                "call_id": self.call_id,
                "tool": spec.name,
                "destination": spec.destination_of(named),
                "action": spec.action or spec.name,
                "idempotency_key": digest(self.key)[:32],
                "request_hash": self.request_hash,
                "status": status,
                "amount": float(amount) if isinstance(amount, int | float) else None,
                "currency": _value_of(spec.currency, named),
                "reversible": spec.reversible,
                "compensates": None,
                "result": result,
                "release_id": self.run.release_id,
            },
            durable=durable,
        )

    def _store(self, op: Callable[..., Any], *args: Any) -> Any:
        try:
            return op(*args)
        except ControlError as exc:  # no reservation, no effect: fail closed
            raise Halted.store_unavailable(
                None, exc, "control store unavailable for an idempotent write"
            ) from None
