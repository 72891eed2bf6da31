"""The guard's settings: ``tracekit.Guard``, the sum of its detectors' settings.

Each base of ``Guard`` is one detector's settings class (its detector is found from it); the
order of the bases is the order in which the guard consults the detectors before a call and
after a model output. Adding a detector is one module in ``detectors/`` and one line here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._base.project import find_project_settings
from .detectors.base import Detector
from .detectors.concurrency import ConcurrencySettings
from .detectors.cost import CostSettings
from .detectors.fan_out import DepthSettings, WidthSettings
from .detectors.new_destination import NewDestinationSettings
from .detectors.no_progress import NoProgressSettings
from .detectors.progress_rate import ProgressPerUsdSettings
from .detectors.repeats import RepeatsSettings
from .detectors.scope import ScopeSettings
from .detectors.steps import StepsSettings
from .detectors.tenant_spend import TenantSpendSettings
from .detectors.tool_error_rate import ToolErrorRateSettings
from .detectors.tool_rate import ToolRateSettings
from .detectors.write_rate import WriteRateSettings

__all__ = ["DETECTORS", "Guard", "guard_from_mapping", "project_guard"]


class GuardCore(BaseModel):
    """How the guard keeps its view of the control store fresh (and fails closed)."""

    staleness_s: float = Field(1.0, gt=0)  # flags older than this refuse every call
    refresh_s: float = Field(0.1, gt=0)
    timeout_s: float = Field(0.25, gt=0)  # a control store slower than this counts as down
    #: when the trace or the ledger cannot be written (a full disk): "halt" refuses every
    #: guarded call until recording resumes; "warn" lets them go on, the events kept in memory
    on_capture_failure: Literal["halt", "warn"] = "halt"


class Guard(
    # the registry: each detector's settings, in the order the guard consults the detectors
    ScopeSettings,
    StepsSettings,
    CostSettings,
    TenantSpendSettings,
    ProgressPerUsdSettings,
    ToolRateSettings,
    RepeatsSettings,
    WriteRateSettings,
    ToolErrorRateSettings,
    NewDestinationSettings,
    NoProgressSettings,
    DepthSettings,
    WidthSettings,
    ConcurrencySettings,
    GuardCore,
):
    """Bounds and detectors, each optional (None = not checked). Validated once, at configure."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _detector_of(settings: type) -> type[Detector[Any]] | None:
    found = getattr(settings, "detector", None)
    return found if isinstance(found, type) else None


#: every detector, in the order the guard consults them
DETECTORS: tuple[type[Detector[Any]], ...] = tuple(
    d for d in map(_detector_of, Guard.__bases__) if d is not None
)


def guard_from_mapping(data: dict[str, Any], source: str) -> Guard:
    """A Guard from settings read from a file; a bad key or value is a one-line ValueError."""
    try:
        return Guard(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "?"
        got = first.get("input")
        raise ValueError(f"{source}: guard setting {key!r}: {first['msg']} (got {got!r})") from None


def project_guard(start: str | os.PathLike[str] | None = None) -> Guard | None:
    """The guard in the project's pyproject.toml / tracekit.toml (searched from ``start`` up),
    if it has one."""
    found = find_project_settings(None if start is None else Path(start))
    guard = found.guard if found is not None else None
    return guard_from_mapping(guard, found.source) if found and guard else None
