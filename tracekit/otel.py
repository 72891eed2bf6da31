"""OpenTelemetry's GenAI spans recorded live, as tracekit runs (``pip install 'tracekit[otel]'``)::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    import tracekit.otel

    provider = TracerProvider()
    provider.add_span_processor(tracekit.otel.SpanProcessor())
    trace.set_tracer_provider(provider)

Any instrumentation that follows OpenTelemetry's GenAI conventions (``gen_ai.*``) or
OpenInference's is then recorded into the configured store (``tracekit.configure``). A span is
read by the very code ``tracekit import`` reads an OTLP/JSON file with, so a trace is the run
``otel-<trace id>`` and importing an OTLP dump of the same spans later adds nothing.

A run's events are numbered in their recorded order, which is not the order spans end in (an
agent span ends after its model and tool calls), so each trace's events are held in memory until
its local root span ends (a span without a parent, or whose parent is in another process); then
they are handed to tracekit's recorder, which only enqueues: its writer thread redacts and writes
them. At ``shutdown`` a trace still open is recorded as far as it got. A span of a trace already
recorded is counted in ``late`` and dropped; a span whose events would take the events held past
``max_events`` is counted in ``dropped`` (and left out). Nothing here raises into the
instrumented program: an error is counted in ``errors`` (``last_error`` says what it was).
Nothing is guarded: this records, it does not contain (``tracekit.instrument`` and the
framework integrations guard).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanProcessor as _SdkSpanProcessor
from opentelemetry.trace import StatusCode

from ._base.vocab import EventKind
from ._capture.rows import RunStatic
from ._capture.state import PROCESS
from ._import.drafts import Draft, Unit
from ._import.otlp import Span
from ._import.runs import LAST, RunSummary, costed, draft_row
from ._import.spans import conventions, unit_of
from ._integrations.prices import Prices

__all__ = ["SpanProcessor", "span_of"]

_Key = tuple[int, int, int, int]  # the importer's order: ts (µs), unit start (µs), part, arrival
_RECENT = 4096  # trace ids remembered after their run is recorded (to tell late spans apart)


@dataclass
class _Trace:
    """One open trace: its run's summary and its events so far, each with its order key."""

    summary: RunSummary
    drafts: list[tuple[_Key, Draft]] = field(default_factory=list)


class SpanProcessor(_SdkSpanProcessor):
    """Records the GenAI spans of every trace into tracekit's store, a run per trace.

    ``tenant`` names the runs' tenant (default: the resource's ``tracekit.tenant`` / ``tenant``
    attribute, else ``imported``, as ``tracekit import`` does)."""

    def __init__(self, *, tenant: str | None = None, max_events: int = 100_000) -> None:
        self.tenant = tenant
        self.max_events = max_events
        self.errors = 0
        self.dropped = 0
        self.late = 0
        self.last_error: str | None = None
        self.unknown_models: set[str] = set()  # models the price table has no price for
        self._lock = threading.Lock()
        self._open: dict[str, _Trace] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._held = 0
        self._conventions = conventions("otlp-json")
        self._prices = Prices.shipped()

    # -- the SDK's calls ----------------------------------------------------------------------
    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            done = self._end(span)
            if done is not None:
                self._record(*done)
        except Exception as exc:
            self._failed(exc)

    def shutdown(self) -> None:
        """Record every trace still open, then wait until the recorder has written it all."""
        try:
            with self._lock:
                left, self._open, self._held = list(self._open.items()), {}, 0
            for trace_id, trace in left:
                self._record(trace_id, trace)
            PROCESS.flush(30.0)
        except Exception as exc:
            self._failed(exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every run recorded so far is durable (open traces stay open)."""
        try:
            return PROCESS.flush(timeout_millis / 1000)
        except Exception as exc:
            self._failed(exc)
            return False

    # -- the work -----------------------------------------------------------------------------
    def _end(self, span: ReadableSpan) -> tuple[str, _Trace] | None:
        """Hold the span's events; its trace (to record now) when the span is its local root."""
        found = span_of(span)
        unit = unit_of(found, self._conventions)
        local_root = span.parent is None or span.parent.is_remote
        with self._lock:
            if unit is not None:
                self._hold(found.trace_id, unit)
            if not local_root:
                return None
            self._remember(found.trace_id)
            trace = self._open.pop(found.trace_id, None)
            if trace is None:
                return None
            self._held -= len(trace.drafts)
        return found.trace_id, trace

    def _hold(self, trace_id: str, unit: Unit) -> None:
        if trace_id in self._recent:
            self.late += 1
            return
        if unit.drafts and self._held + len(unit.drafts) > self.max_events:
            self.dropped += 1
            return
        trace = self._open.get(trace_id)
        if trace is None:
            trace = self._open[trace_id] = _Trace(RunSummary.of(unit, self.tenant))
        else:
            trace.summary.add(unit)
        start_us = unit.start_ns // 1000
        for draft in unit.drafts:
            priced = costed(draft, self._prices, self.unknown_models)
            key = (draft.ts_ns // 1000, start_us, draft.part, len(trace.drafts))
            trace.drafts.append((key, priced))
        self._held += len(unit.drafts)

    def _remember(self, trace_id: str) -> None:
        self._recent[trace_id] = None
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    def _record(self, trace_id: str, trace: _Trace) -> None:
        """The run's events, in the importer's order, handed to the recorder."""
        summary = trace.summary
        start, end = summary.bounds()
        n = len(trace.drafts)
        keyed = [*trace.drafts, ((start.ts_ns // 1000, -1, start.part, n), start),
                 ((end.ts_ns // 1000, LAST // 1000, end.part, n + 1), end)]  # fmt: skip
        keyed.sort(key=itemgetter(0))
        static = _static(f"otel-{trace_id}", summary)
        emit, step = PROCESS.emit, 0
        for seq, (_, draft) in enumerate(keyed):
            step += draft.kind == EventKind.MODEL_OUTPUT
            emit(draft_row(static, seq, step, draft))

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"


def _static(run_id: str, summary: RunSummary) -> RunStatic:
    release = summary.release
    return (run_id, summary.parent, summary.parent or run_id, summary.tenant,
            release.release_id, release.model, release.prompt, release.tools)  # fmt: skip


def span_of(span: ReadableSpan) -> Span:
    """A finished SDK span as the importers read one from an OTLP file: hex ids, attributes
    as plain values (sequences as lists), events, resource, the status message of an error."""
    ctx = span.get_span_context()
    if ctx is None:
        raise ValueError(f"span {span.name!r} has no span context")
    start = span.start_time or 0
    error = None
    if span.status.status_code is StatusCode.ERROR:
        error = span.status.description or ""
    return Span(
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
        parent_id=None if span.parent is None else format(span.parent.span_id, "016x"),
        name=span.name,
        start_ns=start,
        end_ns=span.end_time or start,
        attrs=_plain(span.attributes),
        events=tuple((e.timestamp, e.name, _plain(e.attributes)) for e in span.events),
        error=error,
        resource=_plain(span.resource.attributes),
    )


def _plain(attrs: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (attrs or {}).items()}
