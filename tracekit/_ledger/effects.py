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
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._base.encode import canonical_json
from .._base.ids import new_id
from .._capture import settings as _config
from .._contain.guard import Halted
from ..errors import ControlError, DuplicateInFlight, IdempotencyConflict, ReplayedFailure

if TYPE_CHECKING:
    from .._capture.run import Run, ToolSpec

__all__ = ["DuplicateInFlight", "Effect", "IdempotencyConflict", "ReplayedFailure"]

_PENDING_WAIT_S = 5.0


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _value_of(spec_value: Any, named: dict[str, Any]) -> Any:
    if callable(spec_value):
        try:
            return spec_value(**named)
        except Exception:
            return None
    return spec_value


@dataclass
class Effect:
    """One write-tool call going through the ledger."""

    run: Run
    spec: ToolSpec
    call_id: str
    named: dict[str, Any]
    encoded: str
    key: str = ""
    request_hash: str = ""
    entry_id: str = ""

    def __post_init__(self) -> None:
        declared = _value_of(self.spec.idempotency_key, self.named)
        self.key = str(declared) if declared is not None else _digest(
            f"{self.run.run_id}\x00{self.spec.name}\x00{self.encoded}")
        self.request_hash = _digest(self.encoded)
        self.entry_id = new_id("fx_")

    # -- the protocol ------------------------------------------------------------------------
    def reserve(self) -> tuple[bool, Any]:
        """(True, None) when this call owns the effect; (False, result) for a duplicate."""
        control = _control()
        mine = {"entry_id": self.entry_id, "request_hash": self.request_hash,
                "run_id": self.run.run_id, "call_id": self.call_id, "status": "reserved",
                "at": time.time()}
        held = self._store(control.reserve, self.key, mine)
        if held is not None and self._retry_allowed(held):
            if self._store(control.replace_failed, self.key, str(held.get("entry_id")), mine):
                held = None  # this retry took the key over, atomically: one retry fires
            else:  # another retry did: wait for its outcome like any duplicate
                held = self._store(control.peek, self.key) or held
        if held is None:
            self._row("reserved")
            return True, None
        return False, self._duplicate(held)

    def fired(self, result: Any) -> None:
        encoded = _redactor().redact_json(canonical_json(result))[0]  # kept for duplicates
        self._row("fired", result=encoded, durable=False)
        self._settle({"status": "fired", "result": encoded})

    def failed(self, exc: BaseException) -> None:
        retryable = bool(self.spec.retry_on) and isinstance(exc, self.spec.retry_on)
        error = _redactor().redact_text(f"{type(exc).__name__}: {exc}")[0]
        self._row("failed", result=canonical_json({"error": error, "retryable": retryable}),
                  durable=False)
        self._settle({"status": "failed", "error": error, "retryable": retryable})

    # -- pieces ----------------------------------------------------------------------------
    def _retry_allowed(self, held: dict[str, Any]) -> bool:
        return (held.get("status") == "failed" and bool(held.get("retryable"))
                and held.get("request_hash") == self.request_hash)

    def _duplicate(self, held: dict[str, Any]) -> Any:
        if held.get("request_hash") != self.request_hash:
            self._row("suppressed_duplicate", result=canonical_json({"conflict": True}))
            raise IdempotencyConflict(
                f"{self.spec.name}: idempotency key {self.key!r} was used by call "
                f"{held.get('call_id')} of run {held.get('run_id')} with different arguments; "
                "the effect did not run (use a new key for a different request)"
            )
        held = self._settled(held)
        self._row("suppressed_duplicate", result=held.get("result"))
        status = held.get("status")
        if status == "fired":
            return json.loads(held["result"]) if held.get("result") else None
        if status == "failed":
            raise ReplayedFailure(f"{self.spec.name}: the first attempt with key {self.key!r} "
                                  f"failed ({held.get('error')}); replayed, not run again")
        raise DuplicateInFlight(f"{self.spec.name}: the call holding key {self.key!r} has not "
                                "settled (it may have fired); not run again")

    def _settled(self, held: dict[str, Any]) -> dict[str, Any]:
        """A duplicate of an in-flight call waits a moment for its outcome."""
        deadline = time.monotonic() + _PENDING_WAIT_S
        control = _control()
        while held.get("status") == "reserved" and time.monotonic() < deadline:
            if time.time() - float(held.get("at", 0)) > _PENDING_WAIT_S * 4:
                break  # its owner is long gone: may have fired
            time.sleep(0.01)
            held = self._store(control.peek, self.key) or held
        return held

    def _settle(self, outcome: dict[str, Any]) -> None:
        doc = {"entry_id": self.entry_id, "request_hash": self.request_hash,
               "run_id": self.run.run_id, "call_id": self.call_id, "at": time.time(), **outcome}
        self._store(_control().settle, self.key, doc)

    def _row(self, status: str, result: str | None = None, durable: bool = True) -> None:
        spec, named = self.spec, self.named
        amount = _value_of(spec.amount, named)
        _config.get_recorder().ledger.append({
            "entry_id": self.entry_id, "run_id": self.run.run_id, "tenant": self.run.tenant,
            "call_id": self.call_id, "tool": spec.name,
            "destination": spec.destination_of(named), "action": spec.action or spec.name,
            "idempotency_key": _digest(self.key)[:32], "request_hash": self.request_hash,
            "status": status, "amount": float(amount) if isinstance(amount, int | float) else None,
            "currency": _value_of(spec.currency, named), "reversible": spec.reversible,
            "compensates": None, "result": result, "release_id": self.run.release.release_id,
        }, durable=durable)

    @staticmethod
    def _store(op: Callable[..., Any], *args: Any) -> Any:
        try:
            return op(*args)
        except ControlError as exc:  # no reservation, no effect: fail closed
            raise Halted("store", None, f"control store unavailable for an idempotent write: "
                         f"{exc}", signal="store_error") from None


def _control() -> Any:
    try:
        return _config.control_store()
    except ControlError as exc:  # no reservation, no effect: fail closed
        raise Halted("store", None, f"control store unavailable for an idempotent write: "
                     f"{exc}", signal="store_error") from None


def _redactor() -> Any:
    """Nothing secret reaches the control store either."""
    return _config.settings().redactor
