"""Step 1: what one recorded event costs the caller's thread.

Contenders, with the same payload:

* tracekit ``run.event("tool_call", name=..., args=payload)`` and ``run.progress(label)``;
* an OpenTelemetry SDK span with the same attributes (the payload json-dumped into a string
  attribute), through a ``BatchSpanProcessor`` whose exporter discards the spans;
* stdlib ``logging`` of one JSON line to a file through a ``FileHandler``.

Each sample times ``batch`` calls with ``perf_counter_ns`` and divides, so the timer's own cost
does not dominate. Rounds interleave the contenders in a rotating order, so a noisy neighbour
slows them alike. Between rounds (outside the timed region) tracekit and OpenTelemetry flush their
background queues: the numbers are the cost on the caller's thread of a program that records at a
rate its writer keeps up with. The sustained rate, writer included, is step 2.

OpenTelemetry and logging encode the payload with plain ``json.dumps(payload)`` (unsorted keys),
what a user would write; tracekit's encoding is canonical (sorted keys). The reference rows time
the encoders alone.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import PAYLOAD, PROGRESS_LABEL, TOOL_NAME, summary

Timed = Callable[[int], int]


class _DiscardExporter:
    """A span exporter that counts what it is handed and keeps nothing."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _tracekit(store: Path) -> tuple[dict[str, Timed], Callable[[], None], Callable[[], None]]:
    import tracekit

    tracekit.configure(store=store)
    run = tracekit.run(tenant="acme", agent="bench").__enter__()
    event, progress, payload = run.event, run.progress, PAYLOAD

    def tk_event(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            event("tool_call", name=TOOL_NAME, args=payload)
        return time.perf_counter_ns() - t0

    def tk_progress(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            progress(PROGRESS_LABEL)
        return time.perf_counter_ns() - t0

    def close() -> None:
        run.__exit__(None, None, None)
        tracekit.shutdown()

    return {"event": tk_event, "progress": tk_progress}, tracekit.flush, close


def _otel() -> tuple[dict[str, Timed], Callable[[], None], Callable[[], None], _DiscardExporter]:
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = _DiscardExporter()
    processor = BatchSpanProcessor(exporter)  # type: ignore[arg-type]
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tracekit-bench")
    # the agent run is the parent span, current for the whole loop like tracekit's run
    parent = tracer.start_span("run", attributes={"tenant": "acme", "agent": "bench"})
    ctx = trace.set_span_in_context(parent)
    token = context.attach(ctx)
    start_span, dumps, payload = tracer.start_span, json.dumps, PAYLOAD

    def otel_event(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            span = start_span("tool_call", attributes={
                "tool.name": TOOL_NAME,
                "tool.args": dumps(payload),
            })
            span.end()
        return time.perf_counter_ns() - t0

    def otel_progress(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            span = start_span("progress", attributes={"progress.label": PROGRESS_LABEL})
            span.end()
        return time.perf_counter_ns() - t0

    def flush() -> None:
        processor.force_flush()

    def close() -> None:
        context.detach(token)
        parent.end()
        provider.shutdown()

    return {"event": otel_event, "progress": otel_progress}, flush, close, exporter


def _logging(path: Path) -> tuple[dict[str, Timed], Callable[[], None], Callable[[], None]]:
    logger = logging.getLogger("tracekit-bench.jsonl")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    info, dumps, payload, now = logger.info, json.dumps, PAYLOAD, time.time_ns
    seq = [0]
    run_id, tenant = "run_bench0000000000000000", "acme"

    def log_event(n: int) -> int:
        s = seq[0]
        t0 = time.perf_counter_ns()
        for i in range(s, s + n):
            info(dumps({"ts": now() // 1000, "run_id": run_id, "tenant": tenant, "seq": i,
                        "kind": "tool_call", "name": TOOL_NAME, "args": payload}))
        elapsed = time.perf_counter_ns() - t0
        seq[0] = s + n
        return elapsed

    def log_progress(n: int) -> int:
        s = seq[0]
        t0 = time.perf_counter_ns()
        for i in range(s, s + n):
            info(dumps({"ts": now() // 1000, "run_id": run_id, "tenant": tenant, "seq": i,
                        "kind": "progress", "name": PROGRESS_LABEL}))
        elapsed = time.perf_counter_ns() - t0
        seq[0] = s + n
        return elapsed

    def close() -> None:
        logger.removeHandler(handler)
        handler.close()

    return {"event": log_event, "progress": log_progress}, (lambda: None), close


def _references() -> dict[str, Timed]:
    """What parts of the work cost on their own: the loop, and the JSON encoders."""
    from tracekit import canonical_json

    payload = PAYLOAD

    def empty_loop(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            pass
        return time.perf_counter_ns() - t0

    def canonical(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            canonical_json(payload)
        return time.perf_counter_ns() - t0

    def dumps(n: int) -> int:
        d = json.dumps
        t0 = time.perf_counter_ns()
        for _ in range(n):
            d(payload)
        return time.perf_counter_ns() - t0

    refs = {"empty loop": empty_loop, "tracekit.canonical_json(payload)": canonical,
            "json.dumps(payload)": dumps}
    try:  # not a tracekit dependency: a reference for what a faster encoder would save
        import orjson
    except ImportError:
        return refs

    def orjson_sorted(n: int) -> int:
        d, opt = orjson.dumps, orjson.OPT_SORT_KEYS
        t0 = time.perf_counter_ns()
        for _ in range(n):
            d(payload, option=opt)
        return time.perf_counter_ns() - t0

    refs["orjson.dumps(payload, OPT_SORT_KEYS)"] = orjson_sorted
    return refs


def _ratios(med: dict[str, float]) -> dict[str, float]:
    return {
        f"{other}/tracekit {kind}": med[f"{other} {kind}"] / med[f"tracekit {kind}"]
        for other in ("otel", "logging") for kind in ("event", "progress")
    }


def _one_repeat(rounds: int, batch: int, tmp: Path) -> tuple[dict[str, list[float]], int, int]:
    tmp.mkdir(parents=True, exist_ok=True)
    tk, tk_flush, tk_close = _tracekit(tmp / "store")
    ot, ot_flush, ot_close, exporter = _otel()
    lg, _, lg_close = _logging(tmp / "events.jsonl")
    contenders: dict[str, Timed] = {}
    for kind in ("event", "progress"):
        contenders[f"tracekit {kind}"] = tk[kind]
        contenders[f"otel {kind}"] = ot[kind]
        contenders[f"logging {kind}"] = lg[kind]
    contenders.update(_references())
    names = list(contenders)
    for name in names:  # warm up: imports, caches, first segment file
        contenders[name](batch)
    tk_flush()
    ot_flush()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            samples[name].append(contenders[name](batch) / batch)
        tk_flush()  # outside the timed region: the writers keep up
        ot_flush()
    started, exported = (rounds + 1) * batch * 2, exporter.spans
    tk_close()
    ot_close()
    lg_close()
    gc.collect()
    return samples, started, exported


def bench_hotpath(rounds: int = 400, batch: int = 1000, workdir: Path | None = None,
                  repeats: int = 1) -> dict[str, Any]:
    """Per-call cost (ns) of each contender: median and p90 over ``rounds`` batches.

    With ``repeats`` > 1 the whole set-up is done again (fresh store, tracer provider, log file)
    and the batches of every repeat are pooled; each repeat's own medians are kept too, so the
    spread between repeats on a noisy machine is visible.
    """
    tmp = Path(tempfile.mkdtemp(prefix="hotpath-", dir=workdir))
    pooled: dict[str, list[float]] = {}
    per_repeat = []
    started = exported = 0
    t_start = time.perf_counter()
    for i in range(repeats):
        samples, s, e = _one_repeat(rounds, batch, tmp / f"r{i}")
        started, exported = started + s, exported + e
        for name, values in samples.items():
            pooled.setdefault(name, []).extend(values)
        med = {name: statistics.median(v) for name, v in samples.items()}
        per_repeat.append({"median_ns": {k: round(v, 1) for k, v in med.items()},
                           "ratios": {k: round(v, 2) for k, v in _ratios(med).items()}})
    shutil.rmtree(tmp, ignore_errors=True)
    ns = {name: summary(values) for name, values in pooled.items()}
    return {
        "rounds": rounds, "batch": batch, "repeats": repeats,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "ns_per_call": ns,
        "ratios": _ratios({name: s["median"] for name, s in ns.items()}),
        "per_repeat": per_repeat,
        "otel_spans_started": started, "otel_spans_exported_before_close": exported,
    }


if __name__ == "__main__":
    print(json.dumps(bench_hotpath(rounds=50), indent=2))
