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

The first call that is not in the recording raises ``ReplayDivergence`` (``divergence.py``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from .._capture.rows import Event, MemorySink
from .._capture.state import PROCESS
from .._contain.settings import Guard
from ..errors import RecordingEnds, ReplayDivergence
from .cassette import serving
from .feed import memory_runtime
from .recording import Prompts, RecordedRun, load_runs
from .serving import Served, StopReplay

__all__ = ["agent_replay", "load_entrypoint"]


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
        raise ValueError(
            f"entrypoint {spec!r} cannot be loaded ({exc}); is the module on "
            "the path (run from the project root)?"
        ) from None
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
            "HTTP from the bundle's cassette and opens no socket",
            kind="network",
        )

    socket.socket.connect = refused  # type: ignore[method-assign]
    socket.socket.connect_ex = refused  # type: ignore[method-assign]
    socket.getaddrinfo = refused
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = originals  # type: ignore[method-assign]


def _http_divergence(exc: Exception) -> ReplayDivergence:
    """vcrpy's near miss, its URLs and text scrubbed (the agent's own key is in them)."""
    from .._base.urls import scrub_url

    text = re.sub(r"https?://\S+", lambda m: scrub_url(m.group(0)), str(exc))
    text = PROCESS.settings().redactor.redact_text(text)[0]
    return ReplayDivergence(
        f"agent replay diverged: an HTTP request is not in the incident's cassette: {text}",
        kind="http",
    )


def agent_replay(
    bundle: Path, events: pa.Table, ledger: pa.Table, entrypoint: str, guard: Guard
) -> tuple[list[Event], list[tuple[int, dict[str, Any]]], str | None]:
    """Run ``entrypoint`` against the recording. Returns the replay's events, the effects
    that would have fired (with the index of the event that fired each), and why it stopped
    early (the recording ended) if it did."""
    fn = load_entrypoint(entrypoint)
    runs = load_runs(events, Prompts(bundle / "events.parquet").rows())
    inputs = _inputs(runs, entrypoint, fn)
    clock = [min((r.start for r in runs.values()), default=0.0)]
    sink = MemorySink()
    served = Served(runs, ledger, clock, sink)
    runtime = memory_runtime(guard, clock)
    try:
        with PROCESS.pin(sink, runtime), _served(served), _no_network(), serving(bundle):
            for kwargs in inputs:
                _call_entry(fn, kwargs)
    except Exception as exc:
        if not _stopped(_alone(exc)):
            raise
    finally:
        runtime.close()
    return sink.events(), served.effects, _ended(served)


def _alone(exc: Exception) -> Exception:
    """The one exception inside an exception group (an agent on anyio or a TaskGroup, an MCP
    session, raises its halt wrapped), else the exception itself."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _stopped(exc: Exception) -> bool:
    """True when the recording ended or the guard halted the agent (the replay's verdict
    follows); an HTTP request not in the cassette is a divergence; else False (re-raised)."""
    if isinstance(exc, RecordingEnds | StopReplay) or getattr(exc, "tracekit_halt", False):
        return True
    if type(exc).__name__ == "CannotOverwriteExistingCassetteException":  # vcrpy's miss
        raise _http_divergence(exc) from None
    return False


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
    PROCESS.replay = served
    try:
        yield
    finally:
        PROCESS.replay = None


def _inputs(
    runs: dict[str, RecordedRun], entrypoint: str, fn: Callable[..., Any]
) -> list[dict[str, Any]]:
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
        return (
            f"entrypoint {entrypoint} needs arguments ({exc}) but the incident recorded no "
            "input: decorate the production entry point with @tracekit.entrypoint, or pass "
            "a function that takes none"
        )
    return (
        f"entrypoint {entrypoint} cannot take the input the incident recorded for "
        f"{recorded} (arguments {sorted(value)}): {exc}"
    )
