"""Serving: the recording as the replayed agent's world. During agent replay every run, tool
call, model call and clock or random draw asks ``Served`` (through the process state), which
answers from the recording or raises ``ReplayDivergence``."""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from .._base.encode import canonical_json
from .._base.matching import same_text
from .._base.vocab import REFUSALS, EventKind, EventStatus, LedgerStatus
from .._capture.decorators import record_output
from .._capture.rows import MemorySink
from .._capture.run import Run
from .._capture.specs import named_args
from ..errors import RecordingEnds, ReplayDivergence, ReplayedToolError
from .divergence import take
from .recording import RecordedCall, RecordedRun

__all__ = ["Served", "StopReplay", "past_the_end", "recorded_error"]


class StopReplay(BaseException):
    """The guard has halted the replay and the agent went on anyway: the verdict is in, and
    what the agent does next is not evidence (a BaseException: agent code does not catch it)."""


def serving(method: Callable[..., Any]) -> Callable[..., Any]:
    """One served call at a time (threads), and a divergence the agent swallowed is raised
    again at its next call: a replay never goes on from a point the recording does not have."""

    def wrapper(self: Served, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            if self.failure is not None:
                raise self.failure
            try:
                return method(self, *args, **kwargs)
            except ReplayDivergence as exc:
                if self.halted():
                    raise StopReplay() from None
                self.failure = exc
                raise

    return wrapper


class Served:
    """The recording, as the replayed agent's world: what `_run` asks during agent replay."""

    def __init__(
        self, runs: dict[str, RecordedRun], ledger: pa.Table, clock: list[float], sink: MemorySink
    ) -> None:
        self.runs = runs
        self.clock = clock
        self.sink = sink  # the replay's own events, so far
        self.fired = {
            (r["run_id"], r["call_id"]): r
            for r in ledger.to_pylist()
            if r["status"] == LedgerStatus.FIRED
        }
        self.effects: list[tuple[int, dict[str, Any]]] = []  # (event index, ledger row)
        self.failure: ReplayDivergence | None = None
        self.lock = threading.RLock()
        self._unassigned = sorted(runs.values(), key=lambda r: (r.start, r.run_id))

    def halted(self) -> bool:
        """Has today's guard refused a call in this replay already?"""
        return any(e.status in REFUSALS for e in self.sink.events(EventKind.GUARD))

    @serving
    def run_id_for(
        self, tenant: str, run_id: str | None, parent: Any, attrs: dict[str, Any] | None = None
    ) -> str:
        """The recorded run a new run replays: the one named, else the first not yet replayed
        with the same parent and tenant, preferring one with the same attributes (sub-agents
        started in parallel match whatever order they start in)."""
        parent_id = getattr(parent, "run_id", parent)
        named = [r for r in self._unassigned if r.run_id == run_id]
        same = [r for r in self._unassigned if r.parent == parent_id and r.tenant == tenant]
        encoded = canonical_json(attrs) if attrs else None
        alike = [
            r
            for r in same
            if (r.attrs is None) == (encoded is None)
            and (encoded is None or same_text(str(r.attrs), encoded))
        ]
        for run in (*named, *alike, *same):
            self._unassigned.remove(run)
            return run.run_id
        raise ReplayDivergence(
            f"agent replay diverged: the agent started a run (tenant={tenant!r}, parent="
            f"{parent_id!r}{f', run_id={run_id!r}' if run_id else ''}) that the recording does "
            f"not have; runs not yet replayed: {[r.run_id for r in self._unassigned]}",
            kind="run",
        )

    @serving
    def tool(
        self, run: Run, spec: Any, params: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        named = named_args(params, args, kwargs)
        encoded = canonical_json(named)
        try:
            call = self._match(run, "calls", "tool_call", spec.name, encoded)
        except ReplayDivergence:
            if run._guard is not None:  # today's guard may refuse it: then it never happens
                run.check(spec, named, encoded)
            raise
        self.clock[0] = call.ts
        if run._guard is not None:
            run.check(spec, named, encoded)
        run._record(
            EventKind.TOOL_CALL,
            name=spec.name,
            call_id=call.call_id,
            args=encoded,
            status=EventStatus.STARTED,
            attrs=spec.attrs,
        )
        return self._result(run, spec, call)

    def _match(
        self, run: Run, pool: str, kind: str, name: str | None, actual: str, upto: bool = False
    ) -> RecordedCall:
        """The recorded call this one replays. A run that has replayed nothing yet may turn
        out to be a sibling of the one it was matched to at its start (sub-agents started in
        parallel, in another order, with the same attributes): it is matched again, to the
        sibling whose recording has this call."""
        recorded = self.runs[run.run_id]
        try:
            return take(recorded, getattr(recorded, pool), kind, run.step, name, actual, upto)
        except ReplayDivergence:
            if any(c.taken for c in (*recorded.calls, *recorded.prompts)):
                raise
            for other in self._siblings(recorded):
                try:
                    call = take(other, getattr(other, pool), kind, run.step, name, actual, upto)
                except ReplayDivergence:
                    continue
                self._swap(run, recorded, other)
                return call
            raise

    def _siblings(self, recorded: RecordedRun) -> list[RecordedRun]:
        return [
            r
            for r in self._unassigned
            if r.parent == recorded.parent
            and r.tenant == recorded.tenant
            and not any(c.taken for c in (*r.calls, *r.prompts))
        ]

    def _swap(self, run: Run, was: RecordedRun, now: RecordedRun) -> None:
        """``run`` replays ``now`` instead of ``was`` (which goes back to the unassigned)."""
        self._unassigned.remove(now)
        self._unassigned.append(was)
        self._unassigned.sort(key=lambda r: (r.start, r.run_id))
        run.rebind(now.run_id)

    def _result(self, run: Run, spec: Any, call: RecordedCall) -> Any:
        row = call.result
        if row is None:
            raise RecordingEnds(
                f"the recording of run {run.run_id} stops at {call.label()}: "
                "the tool call has no recorded result",
                run_id=run.run_id,
                step=call.step,
                kind=EventKind.TOOL_CALL,
            )
        run.result(
            spec.name,
            call.call_id or "",
            None,
            row["output"],
            status=row["status"],
            error=row["error"],
            latency_ms=row["latency_ms"],
        )
        if row["status"] in (EventStatus.OK, EventStatus.DUPLICATE):
            if spec.writes and (run.run_id, call.call_id) in self.fired:
                self.effects.append(
                    (len(self.sink.rows) - 1, self.fired[(run.run_id, call.call_id)])
                )
            return json.loads(row["output"] or "null")
        raise recorded_error(spec.name, row)

    @serving
    def prompt(self, run: Run, encoded: str) -> RecordedCall:
        """A prompt the agent sends: it must be the recorded one at this step."""
        call = self._prompt(run, encoded)
        self.clock[0] = call.ts
        return call

    def _prompt(self, run: Run, encoded: str) -> RecordedCall:
        try:
            return self._match(run, "prompts", "prompt", None, encoded, upto=True)
        except RecordingEnds:
            past_the_end(run)
            raise

    @serving
    def model(self, run: Run, spec: Any, prompt: str) -> Any:
        """A model call: the recorded answer (or error), the model not called."""
        call = self._prompt(run, prompt)
        row = call.result
        if row is None:
            raise RecordingEnds(
                f"the recording of run {run.run_id} has no answer to the model "
                f"call at step {call.step}",
                run_id=run.run_id,
                step=call.step,
                kind=EventKind.PROMPT,
            )
        self.clock[0] = row["ts"].timestamp()
        run._record(
            EventKind.PROMPT, name=spec.name or run.release.model, call_id=call.call_id, args=prompt
        )
        if row["kind"] == EventKind.ERROR:
            run._record(
                EventKind.ERROR,
                name=row["name"],
                call_id=call.call_id,
                status=EventStatus.ERROR,
                error=row["error"],
                attrs=row["attrs"],
            )
            raise recorded_error(str(row["name"]), row)
        value = json.loads(row["output"] or "null")
        result = spec.decode(value) if spec.decode is not None else value
        record_output(run, spec, call.call_id or "", result, row["output"], row["latency_ms"])
        return result

    @serving
    def draw(self, run: Run | None, kind: str) -> Any:
        """The next recorded clock read or random draw of the run, read at the same step."""
        if run is None:
            return int(self.clock[0] * 1e6) if kind == EventKind.CLOCK else 0.5
        recorded = self.runs[run.run_id]
        what = f"tracekit.{'now' if kind == 'clock' else 'random'}()"
        draws = recorded.draws[kind]
        if not draws:
            cls = RecordingEnds if recorded.exhausted() else ReplayDivergence
            raise cls(
                f"agent replay diverged in run {run.run_id} at step {run.step}: {what} "
                "was called more times than the recording has",
                run_id=run.run_id,
                step=run.step,
                kind=kind,
            )
        step, value = draws[0]
        if step != run.step:
            raise ReplayDivergence(
                f"agent replay diverged in run {run.run_id}: {what} was read at step "
                f"{run.step}; the next recorded read is at step {step}",
                run_id=run.run_id,
                step=run.step,
                kind=kind,
            )
        draws.popleft()
        return int(value) if kind == EventKind.CLOCK else float(value)

    @serving
    def outside_run(self, name: str) -> None:
        raise ReplayDivergence(
            f"agent replay: tool {name} was called outside any run, so it was not recorded and "
            "cannot be served; call it inside `with tracekit.run(...)` (in a thread, run it in "
            "contextvars.copy_context())",
            kind=EventKind.TOOL_CALL,
        )


def recorded_error(name: str, row: dict[str, Any]) -> Exception:
    """The error a call failed with in the recording, raised again: its own type when it can
    be imported (so the agent's ``except TimeoutError`` retries as it did), always also a
    ``ReplayedToolError``."""
    text = str(row["error"] or "")
    message = text.split(": ", 1)[1] if ": " in text else text
    origin = json.loads(row["attrs"] or "{}").get("exception") if row["attrs"] else None
    try:
        module, _, qualname = str(origin).partition(":")
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if isinstance(cls, type) and issubclass(cls, Exception):
            replayed = type(cls.__name__, (cls, ReplayedToolError), {})
            return replayed(message)  # type: ignore[no-any-return]
    except Exception:
        pass
    return ReplayedToolError(f"{name} failed in the recording: {text}")


def past_the_end(run: Run) -> None:
    """A model call the recording does not have would start the next step: today's guard
    sees that step (its step, cost and no-progress bounds may stop the run there)."""
    guard = run._guard
    if guard is None:
        return
    run.step += 1
    try:
        guard.after_model_output(None)
    except Exception as exc:
        if getattr(exc, "tracekit_halt", False):
            run._refused(exc)  # type: ignore[arg-type]
        raise
