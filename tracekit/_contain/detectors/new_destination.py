"""First-seen destinations: a write to a destination this tenant never wrote to before is
allowed, alerted (recorded, the call goes on) or halted, as ``new_destination`` says."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from .base import Alert, Call, Detector

__all__ = ["NewDestination", "NewDestinationSettings"]


class NewDestinationSettings(BaseModel):
    new_destination: Literal["allow", "alert", "halt"] = "allow"


class NewDestination(Detector[NewDestinationSettings]):
    settings = NewDestinationSettings
    signal = "new_destination"

    @classmethod
    def active(cls, settings: Any) -> bool:
        return bool(settings.new_destination != "allow")

    def applies(self, call: Call) -> bool:
        return call.writes and call.rules is not None

    def before_call(self, call: Call) -> None:
        rules = call.rules
        if not call.writes or rules is None or call.named is None:
            return
        destination = rules.destination_of(call.named)
        guard = self.guard
        if destination is None or not guard.rt.is_new_destination(guard.tenant, destination):
            return
        reason = (
            f"{call.name} writes to {destination!r}, never seen before for tenant {guard.tenant}"
        )
        if self.g.new_destination == "halt":
            raise self.trip(1, 0, reason)
        guard.rt.log_alert(
            {
                "signal": self.signal,
                "reason": reason,
                "run_id": guard.run_id,
                "tenant": guard.tenant,
                "destination": destination,
            }
        )
        guard.alerts.append(Alert("run", guard.run_id, reason, signal=self.signal))
