"""Write rate: more than ``max_writes_per_minute`` calls of write tools in a sliding minute
halts the run."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import Call, Tunable
from .tool_rate import PerMinute
from .tuning import by_steps_or_calls

__all__ = ["WriteRate", "WriteRateSettings"]


class WriteRateSettings(BaseModel):
    max_writes_per_minute: int | None = Field(None, gt=0)


class WriteRate(PerMinute):
    settings = WriteRateSettings
    signal = "writes_per_minute"
    tunables = (Tunable("max_writes_per_minute", by_steps_or_calls),)
    field, state_key, what = "max_writes_per_minute", "writes", "writes"

    def counts(self, call: Call) -> bool:
        return call.writes

    def applies(self, call: Call) -> bool:
        return call.writes
