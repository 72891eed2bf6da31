"""What a detector is: one bound of the guard, the hooks it needs and its own resume state.

A detector module holds two classes:

- its settings, a pydantic model whose fields become fields of ``tracekit.Guard`` (the
  settings class is listed among Guard's bases: that line is the detector's registration);
- the detector, a ``Detector[ItsSettings]`` subclass that overrides only the hooks it needs.

One detector object lives per guarded run. The run's guard (``RunGuard``) calls the hooks it
overrides, in registry order, from the live run, policy replay and agent replay alike:

===================  ==============================================================
``on_start``         the run starts (``on_sub_run`` too when it is a sub-agent)
``before_call``      before a tool runs: raise (``self.trip(...)``) to refuse it
``after_result``     a tool returned (``ok``) or raised
``on_model_output``  a model output was recorded: a new step, its cost counted
``on_progress``      the agent marked progress
``on_finish``        the run ends
===================  ==============================================================

``state``/``resume`` carry what the detector must remember when the run is resumed in another
process (saved in the control store; digests, never arguments), and ``adopt_trace`` what the
durable trace shows of the run (it may be ahead of the saved state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel

from ...errors import Halted

if TYPE_CHECKING:
    from ..runguard import RunGuard, RunTrace

__all__ = ["Alert", "Call", "Detector", "ToolRules", "Tunable", "overrides"]

S = TypeVar("S", bound=BaseModel)


class Alert(Halted):
    """Not raised: a detector in ``alert`` mode noticed something (recorded, the call goes on)."""

    verb = "alert"
    status = "alert"


class ToolRules(Protocol):
    """What the tool's declaration says that the guard checks (a live call's ``ToolSpec``)."""

    bounds: dict[str, tuple[float | None, float | None]]

    def destination_of(self, named: dict[str, Any]) -> str | None: ...


class Call:
    """One tool call as the guard sees it: live (with the tool's rules and named arguments), or
    rebuilt from a recorded event (name, canonical arguments and whether it writes). ``at`` is
    the guard's clock when the call was checked."""

    __slots__ = ("args", "at", "name", "named", "rules", "writes")

    def __init__(
        self,
        name: str,
        args: str,
        writes: bool,
        rules: ToolRules | None = None,
        named: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.args, self.writes = name, args, writes
        self.rules, self.named = rules, named
        self.at = 0.0


@dataclass(frozen=True)
class Tunable:
    """A setting suggest-bounds may try: its field, and the candidates worth trying for an
    incident (computed from the incident's recorded decisions)."""

    field: str
    candidates: Callable[[Sequence[dict[str, Any]]], list[float]]
    integer: bool = True


class Detector(Generic[S]):
    """One bound or detector. Subclasses set ``settings``, ``signal`` and ``tunables`` and
    override the hooks they need; ``active`` says whether a guard uses it at all."""

    settings: ClassVar[type[BaseModel]]
    signal: ClassVar[str]
    tunables: ClassVar[tuple[Tunable, ...]] = ()

    __slots__ = ("g", "guard", "run")

    def __init__(self, guard: RunGuard, settings: S) -> None:
        self.guard = guard
        self.g = settings
        self.run = guard.run  # what the hooks read most (its step), one attribute away

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "settings" in cls.__dict__:
            cls.settings.detector = cls  # type: ignore[attr-defined]

    @classmethod
    def active(cls, settings: Any) -> bool:
        """Does this guard use the detector? By default: its first tunable is set."""
        return getattr(settings, cls.tunables[0].field) is not None

    def applies(self, call: Call) -> bool:
        """Does ``before_call`` have anything to check for this tool in this run? Asked once
        per tool and run (a tool is known by its declaration, or its name and whether it
        writes); the guard calls the hook only for the tools it applies to."""
        return True

    # -- hooks: each subclass overrides the ones it needs -----------------------------------
    def on_start(self) -> None: ...
    def on_sub_run(self) -> None: ...
    def before_call(self, call: Call) -> None: ...
    def after_result(self, tool: str, ok: bool) -> None: ...
    def on_model_output(self) -> None: ...
    def on_progress(self) -> None: ...
    def on_finish(self) -> None: ...

    # -- resume -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a resumed run needs of this detector (JSON; no secret: digests only)."""
        return {}

    def resume(self, saved: dict[str, Any]) -> None:
        """Continue from the state a previous process saved for this run."""

    def adopt_trace(self, trace: RunTrace) -> None:
        """What the durable trace shows of the run (it may be ahead of the saved state)."""

    # -- tripping -----------------------------------------------------------------------------
    def trip(
        self,
        value: float,
        threshold: float,
        reason: str,
        level: str = "run",
        target: str | None = None,
    ) -> Halted:
        """Set the halt flag this detector's signal names (the run's, by default) and return
        the ``Halted`` to raise."""
        return self.guard.trip(self.signal, value, threshold, reason, level, target)


HOOKS = (
    "on_start",
    "on_sub_run",
    "before_call",
    "after_result",
    "on_model_output",
    "on_progress",
    "on_finish",
)


def overrides(detector: Detector[Any], hook: str) -> bool:
    """Does the detector override ``hook`` (the guard calls only the hooks a detector has)?"""
    return getattr(type(detector), hook) is not getattr(Detector, hook)
