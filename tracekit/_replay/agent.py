"""Agent replay: the real agent code runs again, with the world served from the recording.

``replay(bundle, entrypoint="module:function")`` calls the entry point with the input the
incident recorded (``@tracekit.entrypoint``). Inside it, every run maps to the recorded run it
replays; every tool call is matched to a recorded call by its logical key — step, tool and
canonical arguments, not arrival order, so calls made in parallel match too — and gets the
recorded result without the tool running (a write never touches the world); model calls made
through ``@tracekit.model`` get the recorded answer; ``tracekit.now()`` and
``tracekit.random()`` get the recorded values; HTTP is served by vcrpy from the bundle's
cassette with record mode ``none``; any other connection is refused. The project's guard checks
every call on the recorded clock, against an in-memory control store.

The first call that is not in the recording raises ``ReplayDivergence``: the step, the actual
call, the nearest recorded calls with the fields that matched, and a diff.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
import re
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .._base.encode import canonical_json
from .._base.redact import MARKER
from .._capture import run as _run
from .._capture import settings as _config
from .._contain.guard import Guard
from .._export.cassette import serving
from ..errors import RecordingEnds, ReplayDivergence, ReplayedToolError

__all__ = ["RecordingEnds", "ReplayDivergence", "agent_replay", "load_entrypoint"]

_COLUMNS = ("run_id", "parent_run_id", "tenant", "seq", "step", "ts", "kind", "name", "call_id",
            "args", "output", "status", "error", "cost_usd", "latency_ms", "attrs")
_SHOWN = 3  # nearest recorded calls named in a divergence
_DIFF_LINES = 40


@dataclass
class _Call:
    """One recorded decision that replay can serve: a tool call or a model call.

    A prompt's text (it can be the whole conversation) is read from the bundle only when the
    replay gets to it: ``text`` is then a ``(prompts, row)`` reference."""

    step: int
    name: str | None
    text: str | tuple[_Prompts, int]
    ts: float
    call_id: str | None
    result: dict[str, Any] | None = None
    taken: bool = False

    @property
    def args(self) -> str:
        if not isinstance(self.text, str):
            prompts, row = self.text
            self.text = prompts.text(row)
        return self.text

    def label(self) -> str:
        return f"{self.name} at step {self.step}"


class _Prompts:
    """The bundle's prompt texts, read a row group at a time as the replay reaches them."""

    def __init__(self, path: Path) -> None:
        self.file = pq.ParquetFile(path)
        self.groups: list[int] = []  # row -> its row group
        self.offsets: list[int] = []  # row -> its index in that group
        self._read: dict[int, pa.ChunkedArray] = {}

    def rows(self) -> list[dict[str, Any]]:
        """Every prompt event but its text, each with ``args`` referring to the text."""
        columns = [c for c in _COLUMNS if c != "args" and c in self.file.schema_arrow.names]
        found: list[dict[str, Any]] = []
        for group in range(self.file.num_row_groups):
            if not self._may_hold_prompts(group):
                continue
            table = self.file.read_row_group(group, columns=columns)
            for offset, row in enumerate(table.to_pylist()):
                if row["kind"] == "prompt":
                    row["args"] = (self, len(self.groups))
                    self.groups.append(group)
                    self.offsets.append(offset)
                    found.append(row)
        return found

    def _may_hold_prompts(self, group: int) -> bool:
        stats = self.file.metadata.row_group(group).column(
            self.file.schema_arrow.get_field_index("kind")).statistics
        if stats is None or not stats.has_min_max:
            return True
        return bool(stats.min <= "prompt" <= stats.max)

    def text(self, row: int) -> str:
        group = self.groups[row]
        if group not in self._read:
            self._read[group] = self.file.read_row_group(group, columns=["args"])["args"]
        return self._read[group][self.offsets[row]].as_py() or "null"


@dataclass
class _RecordedRun:
    run_id: str
    tenant: str
    parent: str | None
    start: float
    attrs: str | None = None
    entry: dict[str, Any] | None = None
    calls: list[_Call] = field(default_factory=list)
    prompts: list[_Call] = field(default_factory=list)
    draws: dict[str, deque[tuple[int, str]]] = field(
        default_factory=lambda: {"clock": deque(), "random": deque()})

    def exhausted(self) -> bool:
        """Every recorded call and prompt of the run was replayed: it went past the end."""
        return all(c.taken for c in self.calls) and all(p.taken for p in self.prompts)


def _load_runs(events: pa.Table, prompts: list[dict[str, Any]]) -> dict[str, _RecordedRun]:
    """The incident's runs, each with its calls, prompts and draws in recorded order.
    ``events`` has every event but the prompts; ``prompts`` are those (texts unread)."""
    rows = events.select([c for c in _COLUMNS if c in events.column_names]).to_pylist()
    rows = [r for r in rows if r["kind"] != "prompt"] + prompts
    rows.sort(key=lambda r: (r["run_id"], r["seq"]))
    runs: dict[str, _RecordedRun] = {}
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        run = runs.get(row["run_id"])
        if run is None:
            run = runs[row["run_id"]] = _RecordedRun(row["run_id"], row["tenant"],
                                                     row["parent_run_id"], row["ts"].timestamp())
        _add(run, row, answers)
    for run in runs.values():
        for call in (*run.calls, *run.prompts):
            if call.call_id is not None:
                call.result = answers.get((run.run_id, call.call_id), call.result)
    return runs


def _add(run: _RecordedRun, row: dict[str, Any], answers: dict[tuple[str, str], Any]) -> None:
    kind = row["kind"]
    if kind in ("tool_call", "prompt"):
        call = _Call(row["step"] or 0, row["name"], row["args"] or "null",
                     row["ts"].timestamp(), row["call_id"])
        (run.calls if kind == "tool_call" else run.prompts).append(call)
    elif kind in ("tool_result", "model_output", "error"):
        if row["call_id"] is not None:  # an error with a call id: a model call that raised
            answers[(run.run_id, row["call_id"])] = row
        elif kind == "model_output" and run.prompts and run.prompts[-1].result is None:
            run.prompts[-1].result = row  # a manual model_output answers the prompt before it
    elif kind in ("clock", "random"):
        run.draws[kind].append((row["step"] or 0, row["output"]))
    elif kind == "run_start":
        run.attrs = row["attrs"]
    elif kind == "entry" and run.entry is None:
        run.entry = {"target": row["name"], "input": json.loads(row["args"] or "{}")}


# -- matching ------------------------------------------------------------------------------
def _same(recorded: Any, actual: Any) -> bool:
    """Equal, where a redacted recorded value matches whatever the agent sent."""
    if isinstance(recorded, str) and MARKER in recorded:
        if recorded == MARKER:
            return True
        pattern = ".*".join(re.escape(p) for p in recorded.split(MARKER))
        return isinstance(actual, str) and re.fullmatch(pattern, actual, re.S) is not None
    if isinstance(recorded, dict) and isinstance(actual, dict):
        return recorded.keys() == actual.keys() and all(
            _same(v, actual[k]) for k, v in recorded.items())
    if isinstance(recorded, list) and isinstance(actual, list):
        return len(recorded) == len(actual) and all(
            _same(a, b) for a, b in zip(recorded, actual, strict=True))
    return bool(recorded == actual)


def _same_text(recorded: str, actual: str) -> bool:
    if recorded == actual:
        return True
    if MARKER not in recorded:
        return False
    return _same(json.loads(recorded), json.loads(actual))


def _fields(recorded: Any, actual: Any) -> tuple[list[str], list[str]]:
    """(matched, differed) fields of two call arguments, for the near-miss report: the
    top-level fields that matched, and the paths (down to the leaves) that differed."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        keys = sorted(recorded.keys() | actual.keys())
        matched = [f"args.{k}" for k in keys if k in recorded and k in actual
                   and _same(recorded[k], actual[k])]
    else:
        matched = ["args"] if _same(recorded, actual) else []
    return matched, differences(recorded, actual, "args")[:_SHOWN]


def differences(recorded: Any, actual: Any, path: str,
                 labels: tuple[str, str] = ("recorded", "actual")) -> list[str]:
    """Where two JSON values differ, as paths with both values."""
    if _same(recorded, actual):
        return []
    if isinstance(recorded, dict) and isinstance(actual, dict):
        return [d for k in sorted(recorded.keys() | actual.keys()) for d in differences(
            recorded.get(k, "<absent>"), actual.get(k, "<absent>"), f"{path}.{k}", labels)]
    if isinstance(recorded, list) and isinstance(actual, list) and len(recorded) == len(actual):
        return [d for i, (a, b) in enumerate(zip(recorded, actual, strict=True))
                for d in differences(a, b, f"{path}[{i}]", labels)]
    return [f"{path} ({labels[0]} {_short(recorded)}, {labels[1]} {_short(actual)})"]


def _short(value: Any, limit: int = 60) -> str:
    text = canonical_json(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _near_miss(call: _Call, step: int, name: str | None, actual: Any) -> tuple[int, str]:
    matched, differed = _fields(json.loads(call.args), actual)
    checks = [("step", call.step == step)]
    if name is not None:
        checks.append(("tool", call.name == name))
    for label, same in checks:
        (matched if same else differed).insert(0, label)
    score = (name in (None, call.name)) * 1000 + (call.step == step) * 100 + len(matched)
    text = f"{call.label()}: matched {', '.join(matched) or 'nothing'}"
    return score, text + (f"; differed {', '.join(differed)}" if differed else "")


def _pretty(text: str) -> list[str]:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True).splitlines()
    except ValueError:
        return text.splitlines()


def _diff(recorded: _Call, actual: str) -> str:
    lines = list(difflib.unified_diff(
        _pretty(recorded.args), _pretty(actual), f"recorded {recorded.label()}", "actual",
        lineterm="", n=2))
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... ({len(lines) - _DIFF_LINES} more diff lines)"]
    return "\n".join(f"    {line}" for line in lines)


def _masked(recorded: Any, actual: Any) -> Any:
    """``actual`` with what matched a redacted recorded value shown redacted, as recorded."""
    if isinstance(recorded, str) and MARKER in recorded and _same(recorded, actual):
        return recorded
    if isinstance(recorded, dict) and isinstance(actual, dict):
        return {k: _masked(recorded[k], v) if k in recorded else v for k, v in actual.items()}
    if isinstance(recorded, list) and isinstance(actual, list) and len(recorded) == len(actual):
        return [_masked(a, b) for a, b in zip(recorded, actual, strict=True)]
    return actual


def _shown(actual: str, pool: list[_Call]) -> str:
    """The actual call as a divergence may show it: never a secret the recording redacted
    (masked like the nearest recorded call, then through the configured redaction rules)."""
    value = json.loads(actual)
    for call in pool:
        value = _masked(json.loads(call.args), value)
    return _config.settings().redactor.redact_json(canonical_json(value))[0]


def _divergence(run: _RecordedRun, kind: str, step: int, name: str | None, actual: str,
                pool: list[_Call]) -> ReplayDivergence:
    actual = _shown(actual, [c for c in pool if c.step == step and name in (None, c.name)][:8])
    what = f"{kind} {name}" if name else kind
    head = (f"agent replay diverged in run {run.run_id} at step {step}: {what} with "
            f"{_short(json.loads(actual), 200)} is not in the recording")
    left = [c for c in pool if not c.taken]
    if run.exhausted():
        return RecordingEnds(f"the agent went on past the end of the recording of run "
                             f"{run.run_id}: {what} at step {step}", run_id=run.run_id,
                             step=step, kind=kind, actual=actual)
    if not left:
        rest = sum(not c.taken for c in (*run.calls, *run.prompts))
        return ReplayDivergence(f"{head}\n  every recorded {kind} of the run was replayed, but "
                                f"{rest} other recorded call(s) were not: the agent took "
                                "another path", run_id=run.run_id, step=step, kind=kind,
                                actual=actual)
    value = json.loads(actual)
    near = [c for c in left if abs(c.step - step) <= 2] or left[:50]  # texts read: a few
    ranked = sorted(((_near_miss(c, step, name, value), i, c) for i, c in enumerate(near)),
                    key=lambda t: (-t[0][0], t[1]))[:_SHOWN]
    shown = "\n".join(f"    {t[0][1]}" for t in ranked)
    best = ranked[0][2]
    message = (f"{head}\n  found {len(left)} recorded {kind} event(s) not yet replayed; the "
               f"nearest:\n{shown}\n  diff (recorded -> actual):\n{_diff(best, actual)}")
    return ReplayDivergence(message, run_id=run.run_id, step=step, kind=kind, actual=actual,
                            recorded=best.args)


def _take(run: _RecordedRun, pool: list[_Call], kind: str, step: int, name: str | None,
          actual: str, upto: bool = False) -> _Call:
    """The first recorded call not yet served with this logical key (step, name, arguments);
    ``upto``: recorded at this step or before (model calls made in parallel each start a step,
    in whatever order they answer)."""
    for call in pool:
        if call.taken or name not in (None, call.name):
            continue
        if (call.step <= step if upto else call.step == step) and _same_text(call.args, actual):
            call.taken = True
            return call
    raise _divergence(run, kind, step, name, actual, pool)


# -- serving -----------------------------------------------------------------------------------
class _Sink:
    """The recorder of a replay: rows stay in memory (nothing reaches the store)."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.emit = self.rows.append

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self, timeout: float = 30.0) -> bool:
        return True


class _StopReplay(BaseException):
    """The guard has halted the replay and the agent went on anyway: the verdict is in, and
    what the agent does next is not evidence (a BaseException: agent code does not catch it)."""


def _serving(method: Callable[..., Any]) -> Callable[..., Any]:
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
                    raise _StopReplay() from None
                self.failure = exc
                raise
    return wrapper


class Served:
    """The recording, as the replayed agent's world: what `_run` asks during agent replay."""

    def __init__(self, runs: dict[str, _RecordedRun], ledger: pa.Table,
                 clock: list[float], rows: list[tuple[Any, ...]]) -> None:
        self.runs = runs
        self.clock = clock
        self.rows = rows  # the replay's own events, so far
        self.fired = {(r["run_id"], r["call_id"]): r for r in ledger.to_pylist()
                      if r["status"] == "fired"}
        self.effects: list[tuple[int, dict[str, Any]]] = []  # (event index, ledger row)
        self.failure: ReplayDivergence | None = None
        self.lock = threading.RLock()
        self._unassigned = sorted(runs.values(), key=lambda r: (r.start, r.run_id))

    def halted(self) -> bool:
        """Has today's guard refused a call in this replay already?"""
        return any(r[4] == "guard" and r[9] in ("halted", "refused") for r in self.rows)

    @_serving
    def run_id_for(self, tenant: str, run_id: str | None, parent: Any,
                   attrs: dict[str, Any] | None = None) -> str:
        """The recorded run a new run replays: the one named, else the first not yet replayed
        with the same parent and tenant, preferring one with the same attributes (sub-agents
        started in parallel match whatever order they start in)."""
        parent_id = getattr(parent, "run_id", parent)
        named = [r for r in self._unassigned if r.run_id == run_id]
        same = [r for r in self._unassigned if r.parent == parent_id and r.tenant == tenant]
        encoded = canonical_json(attrs) if attrs else None
        alike = [r for r in same if (r.attrs is None) == (encoded is None) and (
            encoded is None or _same_text(str(r.attrs), encoded))]
        for run in (*named, *alike, *same):
            self._unassigned.remove(run)
            return run.run_id
        raise ReplayDivergence(
            f"agent replay diverged: the agent started a run (tenant={tenant!r}, parent="
            f"{parent_id!r}{f', run_id={run_id!r}' if run_id else ''}) that the recording does "
            f"not have; runs not yet replayed: {[r.run_id for r in self._unassigned]}",
            kind="run")

    @_serving
    def tool(self, run: _run.Run, spec: Any, params: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        named = _run._named(params, args, kwargs)
        encoded = canonical_json(named)
        try:
            call = self._match(run, "calls", "tool_call", spec.name, encoded)
        except ReplayDivergence:
            if run._guard is not None:  # today's guard may refuse it: then it never happens
                run._check(spec, named, encoded)
            raise
        self.clock[0] = call.ts
        if run._guard is not None:
            run._check(spec, named, encoded)
        run._record("tool_call", name=spec.name, call_id=call.call_id, args=encoded,
                    status="started", attrs=spec.attrs)
        return self._result(run, spec, call)

    def _match(self, run: _run.Run, pool: str, kind: str, name: str | None, actual: str,
               upto: bool = False) -> _Call:
        """The recorded call this one replays. A run that has replayed nothing yet may turn
        out to be a sibling of the one it was matched to at its start (sub-agents started in
        parallel, in another order, with the same attributes): it is matched again, to the
        sibling whose recording has this call."""
        recorded = self.runs[run.run_id]
        try:
            return _take(recorded, getattr(recorded, pool), kind, run.step, name, actual, upto)
        except ReplayDivergence:
            if any(c.taken for c in (*recorded.calls, *recorded.prompts)):
                raise
            for other in self._siblings(recorded):
                try:
                    call = _take(other, getattr(other, pool), kind, run.step, name, actual, upto)
                except ReplayDivergence:
                    continue
                self._swap(run, recorded, other)
                return call
            raise

    def _siblings(self, recorded: _RecordedRun) -> list[_RecordedRun]:
        return [r for r in self._unassigned if r.parent == recorded.parent
                and r.tenant == recorded.tenant and not any(
                    c.taken for c in (*r.calls, *r.prompts))]

    def _swap(self, run: _run.Run, was: _RecordedRun, now: _RecordedRun) -> None:
        """``run`` replays ``now`` instead of ``was`` (which goes back to the unassigned)."""
        self._unassigned.remove(now)
        self._unassigned.append(was)
        self._unassigned.sort(key=lambda r: (r.start, r.run_id))
        run.run_id = now.run_id
        run._static = (now.run_id, *run._static[1:])
        guard = run._guard
        if guard is not None:
            guard.run_id = now.run_id
            guard.keys = (*guard.keys[:3], ("run", now.run_id, f"halt:run:{now.run_id}"))

    def _result(self, run: _run.Run, spec: Any, call: _Call) -> Any:
        row = call.result
        if row is None:
            raise RecordingEnds(f"the recording of run {run.run_id} stops at {call.label()}: "
                                "the tool call has no recorded result", run_id=run.run_id,
                                step=call.step, kind="tool_call")
        run._record("tool_result", name=spec.name, call_id=call.call_id, output=row["output"],
                    status=row["status"], error=row["error"], latency_ms=row["latency_ms"])
        if row["status"] in ("ok", "duplicate"):
            if spec.writes and (run.run_id, call.call_id) in self.fired:
                self.effects.append((len(self.rows) - 1,
                                     self.fired[(run.run_id, call.call_id)]))
            return json.loads(row["output"] or "null")
        raise recorded_error(spec.name, row)

    @_serving
    def prompt(self, run: _run.Run, encoded: str) -> _Call:
        """A prompt the agent sends: it must be the recorded one at this step."""
        call = self._prompt(run, encoded)
        self.clock[0] = call.ts
        return call

    def _prompt(self, run: _run.Run, encoded: str) -> _Call:
        try:
            return self._match(run, "prompts", "prompt", None, encoded, upto=True)
        except RecordingEnds:
            _past_the_end(run)
            raise

    @_serving
    def model(self, run: _run.Run, spec: Any, prompt: str) -> Any:
        """A model call: the recorded answer (or error), the model not called."""
        from .._capture.decorators import record_output

        call = self._prompt(run, prompt)
        row = call.result
        if row is None:
            raise RecordingEnds(f"the recording of run {run.run_id} has no answer to the model "
                                f"call at step {call.step}", run_id=run.run_id, step=call.step,
                                kind="prompt")
        self.clock[0] = row["ts"].timestamp()
        run._record("prompt", name=spec.name or run.release.model, call_id=call.call_id,
                    args=prompt)
        if row["kind"] == "error":
            run._record("error", name=row["name"], call_id=call.call_id, status="error",
                        error=row["error"], attrs=row["attrs"])
            raise recorded_error(str(row["name"]), row)
        value = json.loads(row["output"] or "null")
        result = spec.decode(value) if spec.decode is not None else value
        record_output(run, spec, call.call_id or "", result, row["output"], row["latency_ms"])
        return result

    @_serving
    def draw(self, run: _run.Run | None, kind: str) -> Any:
        """The next recorded clock read or random draw of the run, read at the same step."""
        if run is None:
            return int(self.clock[0] * 1e6) if kind == "clock" else 0.5
        recorded = self.runs[run.run_id]
        what = f"tracekit.{'now' if kind == 'clock' else 'random'}()"
        draws = recorded.draws[kind]
        if not draws:
            cls = RecordingEnds if recorded.exhausted() else ReplayDivergence
            raise cls(f"agent replay diverged in run {run.run_id} at step {run.step}: {what} "
                      "was called more times than the recording has", run_id=run.run_id,
                      step=run.step, kind=kind)
        step, value = draws[0]
        if step != run.step:
            raise ReplayDivergence(
                f"agent replay diverged in run {run.run_id}: {what} was read at step "
                f"{run.step}; the next recorded read is at step {step}", run_id=run.run_id,
                step=run.step, kind=kind)
        draws.popleft()
        return int(value) if kind == "clock" else float(value)

    @_serving
    def outside_run(self, name: str) -> None:
        raise ReplayDivergence(
            f"agent replay: tool {name} was called outside any run, so it was not recorded and "
            "cannot be served; call it inside `with tracekit.run(...)` (in a thread, run it in "
            "contextvars.copy_context())", kind="tool_call")


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


def _past_the_end(run: _run.Run) -> None:
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


# -- the replay ------------------------------------------------------------------------------
def load_entrypoint(spec: str) -> Callable[..., Any]:
    """``module:function`` (``module:Class.method`` too), imported."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"entrypoint {spec!r} must look like module:function")
    try:
        target: Any = _import(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"entrypoint {spec!r} cannot be loaded ({exc}); is the module on "
                         "the path (run from the project root)?") from None
    if not callable(target):
        raise ValueError(f"entrypoint {spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def _import(name: str) -> Any:
    """Import the entry point's module; from the project's folder (the current one) too, as
    ``python -m pytest`` would find it when plain ``pytest`` does not."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if here in sys.path or not (exc.name or "").startswith(name.split(".")[0]):
            raise
        sys.path.insert(0, here)
        return importlib.import_module(name)


@contextmanager
def _no_network() -> Iterator[None]:
    """Refuse every connection made while the block runs (replay must not touch the world)."""
    originals = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

    def refused(*args: Any, **kwargs: Any) -> Any:
        target = args[1] if len(args) > 1 else args[0] if args else "?"
        raise ReplayDivergence(
            f"agent replay: the agent opened a network connection to {target!r}; replay serves "
            "HTTP from the bundle's cassette and opens no socket", kind="network")

    socket.socket.connect = refused  # type: ignore[method-assign]
    socket.socket.connect_ex = refused  # type: ignore[method-assign]
    socket.getaddrinfo = refused
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = originals  # type: ignore[method-assign]


def _http_divergence(exc: Exception) -> ReplayDivergence:
    """vcrpy's near miss, its URLs and text scrubbed (the agent's own key is in them)."""
    from ..http import scrub_url

    text = re.sub(r"https?://\S+", lambda m: scrub_url(m.group(0)), str(exc))
    text = _config.settings().redactor.redact_text(text)[0]
    return ReplayDivergence(f"agent replay diverged: an HTTP request is not in the incident's "
                            f"cassette: {text}", kind="http")


def agent_replay(bundle: Path, events: pa.Table, ledger: pa.Table, entrypoint: str,
                 guard: Guard) -> tuple[list[tuple[Any, ...]], list[tuple[int, dict[str, Any]]],
                                         str | None]:
    """Run ``entrypoint`` against the recording. Returns the replay's event rows, the effects
    that would have fired, and why it stopped early (the recording ended) if it did."""
    from .policy import memory_runtime

    fn = load_entrypoint(entrypoint)
    runs = _load_runs(events, _Prompts(bundle / "events.parquet").rows())
    inputs = _inputs(runs, entrypoint, fn)
    clock = [min((r.start for r in runs.values()), default=0.0)]
    sink = _Sink()
    served = Served(runs, ledger, clock, sink.rows)
    runtime = memory_runtime(guard, clock)
    try:
        with _config.pinned(sink, runtime), _served(served), _no_network(), serving(bundle):
            for kwargs in inputs:
                _call_entry(fn, kwargs)
    except (RecordingEnds, _StopReplay):
        pass
    except Exception as exc:
        if type(exc).__name__ == "CannotOverwriteExistingCassetteException":  # vcrpy's miss
            raise _http_divergence(exc) from None
        if not getattr(exc, "tracekit_halt", False):
            raise
    finally:
        runtime.close()
    return sink.rows, served.effects, _ended(served)


def _ended(served: Served) -> str | None:
    """Why the replay stopped early: the recording ended (a divergence the agent swallowed is
    raised here, unless the guard had halted the replay by then)."""
    failure = served.failure
    if failure is None or served.halted():
        return None
    if isinstance(failure, RecordingEnds):
        return str(failure)
    raise failure


def _call_entry(fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Call the entry point (awaited if it is async, in a thread of its own when this thread
    already runs an event loop); ``sys.exit`` in it ends it like a return."""
    import asyncio

    try:
        result = fn(**kwargs)
        if inspect.isawaitable(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                asyncio.run(_awaited(result))
            else:
                _in_thread(lambda: asyncio.run(_awaited(result)))
    except SystemExit:
        return


def _in_thread(job: Callable[[], Any]) -> None:
    failure: list[BaseException] = []

    def target() -> None:
        try:
            job()
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=target, name="tracekit-agent-replay")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


async def _awaited(result: Any) -> Any:
    return await result


@contextmanager
def _served(served: Served) -> Iterator[None]:
    _run._replay = served
    try:
        yield
    finally:
        _run._replay = None


def _inputs(runs: dict[str, _RecordedRun], entrypoint: str,
            fn: Callable[..., Any]) -> list[dict[str, Any]]:
    """The recorded input of each root run, in the order they started; each must fit ``fn``."""
    roots = [r for r in runs.values() if r.parent is None or r.parent not in runs]
    roots.sort(key=lambda r: (r.start, r.run_id))
    entries = [r.entry for r in roots if r.entry is not None]
    found = [e["input"] for e in entries] or [{}]
    recorded = entries[0]["target"] if entries else None
    for value in found:
        if not isinstance(value, dict):
            raise ValueError(f"the recorded input of {recorded} is not keyword arguments")
        try:
            inspect.signature(fn).bind(**value)
        except TypeError as exc:
            raise ValueError(_unfit(entrypoint, recorded, value, exc)) from None
        except ValueError:  # no signature to check (a builtin): the call will tell
            pass
    return found


def _unfit(entrypoint: str, recorded: str | None, value: dict[str, Any], exc: TypeError) -> str:
    if recorded is None:
        return (f"entrypoint {entrypoint} needs arguments ({exc}) but the incident recorded no "
                "input: decorate the production entry point with @tracekit.entrypoint, or pass "
                "a function that takes none")
    return (f"entrypoint {entrypoint} cannot take the input the incident recorded for "
            f"{recorded} (arguments {sorted(value)}): {exc}")
