"""Issue 12: what ``tracekit.instrument(client)`` adds to one model call, no network.

    python benchmarks/bench_instrument.py [--quick] [--rounds 200] [--repeats 2]
                                          [--out benchmarks/out/instrument.json] [--profile]
    python benchmarks/run.py --only instrument [--quick]     # the same, merged into results.json

The real openai (chat completions) and anthropic (Messages) SDK clients, non-streamed, each on
an in-process ``httpx2.MockTransport`` that answers a fixed JSON body (usage, one tool call), so
the SDK builds its request, "sends" it, parses the answer into its own objects, and nothing
leaves the process. For each SDK, in the same rounds:

* **sdk**: the call on an uninstrumented client (no tracekit code runs);
* **tracekit**: the call on ``tracekit.instrument(client)`` inside ``tracekit.run(tenant=...)``
  with a guard (``Guard(max_steps=10**9)``: the kill switch before the call, the step bound
  after the output), a prompt and a model_output event recorded (usage, cost from the price
  table, the tool call normalised);
* **otel**: the uninstrumented call inside an OpenTelemetry SDK span (``start_as_current_span``,
  kind CLIENT, the GenAI attributes ``gen_ai.operation.name``, ``gen_ai.provider.name``,
  ``gen_ai.request.model`` before the call and ``gen_ai.response.id`` / ``.model`` /
  ``.finish_reasons`` and ``gen_ai.usage.input_tokens`` / ``output_tokens`` after it), child of
  a current run span, through a ``BatchSpanProcessor`` whose exporter discards;
* the same three with the SDK's method replaced, before instrumenting, by a stub that returns
  the parsed answer of the mock call: the wrapper's own cost without the SDK's ~1 ms around it
  (a difference of two ~1 ms medians is only as precise as the machine is quiet).

The overhead is median(tracekit) - median(sdk) per call, the peer's median(otel) - median(sdk),
and their ratio. A second phase does the same with ``guard=False`` (recording only): the guard
is process-wide, so that phase has its own baselines (sdk and otel) in its own rounds, with the
same contenders, so a tracekit call follows as many SDK calls of the others in both phases.

Through the SDK each call is timed alone (``perf_counter_ns``, ~0.1 µs): in each round every
contender of an SDK makes ``SDK_CALLS`` (10) calls, one each in turn, the order rotating, so
each call follows another contender's SDK call (the caches hold the SDK's code, not tracekit's,
as in an agent between two model calls) and slow drift hits all alike. The stub contenders are
timed 200 calls at a time (their code stays hot: the wrapper's cost at best). After each SDK's
turn of calls and after every stub sample, outside the timed region, tracekit and OpenTelemetry
flush their background queues: this is the cost on the caller's thread when the writer keeps up
(in a real agent the writer works while the call waits on the network). ``--repeats`` fresh
set-ups (store, clients, tracer provider) are pooled; each repeat's overheads are kept to show the
spread, with a bootstrap 90 % interval of the difference of medians and the median of the
differences of calls made one after the other ("paired"). At the end of each phase the store is
checked: one prompt and one model_output per instrumented call, each output with its cost and
its tool call, no guard event.

The target is judged on a more precise measure of the same quantity: the wrapper's own cost
right after a real SDK call ("after an SDK call"): an untimed SDK call, then one call of the
instrumented client on the stub SDK, timed alone, minus the stub alone timed the same way; the
same for the OTel span, and the call after that one (caches warm again) beside it. The
difference of two ~1 ms end-to-end medians has a 90 % interval tens of µs wide; this one is
~1 µs. Each phase also reads the CPU clock of tracekit's writer thread: the work (encoding the
prompt, the answer and its tool calls; redaction; Arrow; the writes) moved off the caller's
thread, per instrumented call.

``--profile`` adds diagnostics: the parts of the instrumented path timed apart and a cProfile
of the instrumented stub path (the top functions by own time).
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import cProfile
import gc
import io
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, summary  # noqa: E402

TARGET_US = 20.0
#: calls through the SDK per contender per round (each timed alone); stub calls per sample
SDK_CALLS, STUB_BATCH = 10, 200

Timed = Callable[[int], int]

# -- the call and its answer ------------------------------------------------------------------
SYSTEM = "You are the support agent of an airline. Use the tools to act; answer briefly."
USER = "My flight AF276 on 2026-12-20 was cancelled. Please refund order 42 to my card."
REFUND_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "description": "the order to refund"},
        "amount": {"type": "number", "description": "in EUR"},
    },
    "required": ["order_id", "amount"],
}
TOOL_ARGS = '{"order_id":"42","amount":30}'
USAGE_IN, USAGE_OUT = 120, 30

OPENAI_MODEL = "gpt-4o-mini"
OPENAI_KWARGS: dict[str, Any] = {
    "model": OPENAI_MODEL,
    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
    "tools": [{"type": "function", "function": {
        "name": "refund", "description": "Refund an order", "parameters": REFUND_SCHEMA}}],
}
OPENAI_ANSWER = {
    "id": "chatcmpl-bench1", "object": "chat.completion", "created": 1764720000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "refund", "arguments": TOOL_ARGS}}]}}],
    "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
              "total_tokens": USAGE_IN + USAGE_OUT},
}

ANTHROPIC_MODEL = "claude-haiku-4-5"
ANTHROPIC_KWARGS: dict[str, Any] = {
    "model": ANTHROPIC_MODEL,
    "max_tokens": 1024,
    "system": SYSTEM,
    "messages": [{"role": "user", "content": USER}],
    "tools": [{"name": "refund", "description": "Refund an order", "input_schema": REFUND_SCHEMA}],
}
ANTHROPIC_ANSWER = {
    "id": "msg_bench1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "Refunding order 42."},
                {"type": "tool_use", "id": "toolu_1", "name": "refund",
                 "input": json.loads(TOOL_ARGS)}],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
}


@dataclass(frozen=True)
class Sdk:
    """One SDK method under test."""

    name: str
    make: Callable[[], Any]  # a fresh client on the mock transport
    method: Callable[[Any], Any]  # client -> the bound create method (read each time)
    kwargs: dict[str, Any]
    provider: str  # gen_ai.provider.name
    response_attrs: Callable[[Any], dict[str, Any]]  # answer -> the span's GenAI attributes

    def stub(self, client: Any, answer: Any) -> Any:
        """``client`` with its create method answering ``answer`` without the SDK."""
        owner = client.chat.completions if self.name == "openai" else client.messages

        def create(*args: Any, **kwargs: Any) -> Any:
            return answer

        owner.create = create
        return client


def _transport(doc: dict[str, Any]) -> Any:
    import httpx2

    body = json.dumps(doc).encode()
    headers = {"content-type": "application/json", "x-request-id": "req_bench"}

    def handler(request: Any) -> Any:
        return httpx2.Response(200, headers=headers, content=body)

    return httpx2.MockTransport(handler)


def _openai_client() -> Any:
    import openai

    return openai.OpenAI(
        api_key="k", base_url="http://bench.invalid/v1", max_retries=0,
        http_client=openai.DefaultHttpxClient(transport=_transport(OPENAI_ANSWER)))


def _anthropic_client() -> Any:
    import anthropic

    return anthropic.Anthropic(
        api_key="k", base_url="http://bench.invalid", max_retries=0,
        http_client=anthropic.DefaultHttpxClient(transport=_transport(ANTHROPIC_ANSWER)))


def _openai_attrs(r: Any) -> dict[str, Any]:
    return {"gen_ai.response.id": r.id, "gen_ai.response.model": r.model,
            "gen_ai.response.finish_reasons": [c.finish_reason for c in r.choices],
            "gen_ai.usage.input_tokens": r.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": r.usage.completion_tokens}


def _anthropic_attrs(r: Any) -> dict[str, Any]:
    return {"gen_ai.response.id": r.id, "gen_ai.response.model": r.model,
            "gen_ai.response.finish_reasons": [r.stop_reason],
            "gen_ai.usage.input_tokens": r.usage.input_tokens,
            "gen_ai.usage.output_tokens": r.usage.output_tokens}


SDKS = (
    Sdk("openai", _openai_client, lambda c: c.chat.completions.create, OPENAI_KWARGS, "openai",
        _openai_attrs),
    Sdk("anthropic", _anthropic_client, lambda c: c.messages.create, ANTHROPIC_KWARGS,
        "anthropic", _anthropic_attrs),
)


# -- the contenders ---------------------------------------------------------------------------
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


class _Otel:
    """A tracer provider with a discarding batch exporter and a current run span."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.exporter = _DiscardExporter()
        self.processor = BatchSpanProcessor(self.exporter)  # type: ignore[arg-type]
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("tracekit-bench")
        self.parent = self.tracer.start_span("run", attributes={"tenant": "acme"})
        self._token = context.attach(trace.set_span_in_context(self.parent))
        self.kind = trace.SpanKind.CLIENT
        self.started = 0

    def traced(self, sdk: Sdk, create: Callable[..., Any]) -> Callable[..., Any]:
        """``create`` in a GenAI client span, as an OpenTelemetry instrumentation makes one."""
        start, kind, model = self.tracer.start_as_current_span, self.kind, sdk.kwargs["model"]
        name, response_attrs = f"chat {model}", sdk.response_attrs
        request = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": sdk.provider,
                   "gen_ai.request.model": model}
        if "max_tokens" in sdk.kwargs:
            request["gen_ai.request.max_tokens"] = sdk.kwargs["max_tokens"]

        def call(**kwargs: Any) -> Any:
            with start(name, kind=kind, attributes=request) as span:
                result = create(**kwargs)
                span.set_attributes(response_attrs(result))
            return result

        return call

    def flush(self) -> None:
        self.processor.force_flush()

    def close(self) -> None:
        from opentelemetry import context

        context.detach(self._token)
        self.parent.end()
        self.provider.shutdown()


def _timed(call: Callable[..., Any], kwargs: dict[str, Any]) -> Timed:
    def timed(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            call(**kwargs)
        return time.perf_counter_ns() - t0

    return timed


@dataclass
class _Contenders:
    calls: dict[str, dict[str, Callable[[], Any]]]  # SDK -> contender -> one call, timed alone
    batched: dict[str, Timed]  # the stub contenders, timed STUB_BATCH calls at a time
    recorded: dict[str, int]  # contender -> the instrumented calls one sample (or call) makes


def _contenders(otel: _Otel | None) -> _Contenders:
    import functools

    import tracekit

    got = _Contenders({}, {}, {})
    for sdk in SDKS:
        n, kw = sdk.name, sdk.kwargs
        plain = sdk.make()
        answer = sdk.method(plain)(**kw)  # the parsed answer the stubs hand back
        stubbed = sdk.stub(sdk.make(), answer)
        raw = sdk.method(plain)
        one = {"sdk": functools.partial(raw, **kw),
               "tracekit": functools.partial(sdk.method(tracekit.instrument(sdk.make())), **kw)}
        got.batched[f"{n} stub"] = _timed(sdk.method(stubbed), kw)
        got.batched[f"{n} tracekit, stub"] = _timed(
            sdk.method(tracekit.instrument(sdk.stub(sdk.make(), answer))), kw)
        got.recorded[f"{n} tracekit"], got.recorded[f"{n} tracekit, stub"] = 1, STUB_BATCH
        if otel is not None:
            one["otel"] = functools.partial(otel.traced(sdk, raw), **kw)
            got.batched[f"{n} otel, stub"] = _timed(otel.traced(sdk, sdk.method(stubbed)), kw)
        got.calls[n] = {f"{n} {who}": fn for who, fn in one.items()}
    return got


# -- one phase --------------------------------------------------------------------------------
def _check_store(store: Path, calls: int) -> dict[str, Any]:
    """Every instrumented call became a prompt and a costed model output with its tool call."""
    import tracekit

    with contextlib.closing(tracekit.connect(store)) as con:
        rows = con.execute(
            "SELECT kind, count(*), count(cost_usd), count(attrs) FROM events GROUP BY kind"
        ).fetchall()
        sample = con.execute("SELECT name, tokens_in, tokens_out, cost_usd, attrs FROM events "
                             "WHERE kind = 'model_output' LIMIT 2").fetchall()
    kinds = {kind: {"n": n, "with_cost": c, "with_attrs": a} for kind, n, c, a in rows}
    out = kinds.get("model_output", {"n": 0, "with_cost": 0, "with_attrs": 0})
    ok = (kinds.get("prompt", {}).get("n") == calls and out["n"] == calls
          and out["with_cost"] == calls and out["with_attrs"] == calls and "guard" not in kinds)
    return {"ok": ok, "expected_calls": calls, "kinds": kinds,
            "sample_outputs": [list(r) for r in sample]}


def _phase(guarded: bool, rounds: int, tmp: Path, otel_on: bool) -> dict[str, Any]:
    import tracekit

    store = tmp / ("guard" if guarded else "record")
    guard = tracekit.Guard(max_steps=10**9) if guarded else False
    tracekit.configure(store=store, guard=guard)
    otel = _Otel() if otel_on else None
    c = _contenders(otel)
    batched = list(c.batched)
    calls = 0
    samples: dict[str, list[float]] = {name: [] for group in c.calls.values() for name in group}
    samples |= {name: [] for name in batched}
    clock = time.perf_counter_ns

    def flush() -> None:
        tracekit.flush()
        if otel is not None:
            otel.flush()

    with tracekit.run(tenant="acme", agent="bench") as run:
        assert (run._guard is not None) == guarded, "the guard is not what was configured"
        writer = _WriterCpu()
        for group in c.calls.values():  # warm up: imports, caches, the first segment
            for name, fn in group.items():
                for _ in range(5):
                    fn()
                calls += 5 * c.recorded.get(name, 0)
        for name in batched:
            c.batched[name](STUB_BATCH)
            calls += c.recorded.get(name, 0)
        flush()
        writer.start(calls)
        for r in range(rounds):
            for group in c.calls.values():
                names = list(group)
                for i in range(SDK_CALLS):  # one call each, in turn, the order rotating
                    k = (r * SDK_CALLS + i) % len(names)
                    for name in names[k:] + names[:k]:
                        fn = group[name]
                        t0 = clock()
                        fn()
                        samples[name].append(clock() - t0)
                        calls += c.recorded.get(name, 0)
                flush()  # outside the timed region: the writers keep up
            k = r % len(batched)
            for name in batched[k:] + batched[:k]:
                samples[name].append(c.batched[name](STUB_BATCH) / STUB_BATCH)
                calls += c.recorded.get(name, 0)
                flush()
        steps = run.step
        writer_ns = writer.per_call(calls)
    exported = None
    if otel is not None:
        otel.close()  # flushes: every span started was handed to the exporter
        exported = otel.exporter.spans
    tracekit.shutdown()
    check = _check_store(store, calls)
    check["run_steps"] = steps
    check["ok"] = check["ok"] and steps == calls
    if exported is not None:
        check["otel_spans_exported"] = exported
    gc.collect()
    return {"samples": samples, "check": check, "writer_cpu_ns_per_call": writer_ns}


class _WriterCpu:
    """The CPU time tracekit's writer thread spends per instrumented call (encoding the
    deferred prompt, answer and tool calls, redaction, Arrow, the segment writes): the work
    taken off the caller's thread, read from the thread's own CPU clock."""

    def __init__(self) -> None:
        from tracekit._capture.state import PROCESS

        self.clock = time.pthread_getcpuclockid(PROCESS.recorder()._thread.ident)  # type: ignore[attr-defined]
        self.t0 = self.calls0 = 0

    def start(self, calls: int) -> None:
        self.t0, self.calls0 = time.clock_gettime_ns(self.clock), calls

    def per_call(self, calls: int) -> float:
        return (time.clock_gettime_ns(self.clock) - self.t0) / max(1, calls - self.calls0)


# -- statistics -------------------------------------------------------------------------------
def _diff_ci(b: list[float], a: list[float], reps: int = 1000, seed: int = 12) -> list[float]:
    """A bootstrap 90 % interval of median(b) - median(a)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    bb, aa = np.asarray(b), np.asarray(a)
    diffs = np.sort(np.median(rng.choice(bb, (reps, len(bb))), axis=1)
                    - np.median(rng.choice(aa, (reps, len(aa))), axis=1))
    return [float(diffs[int(0.05 * reps)]), float(diffs[int(0.95 * reps) - 1])]


def _paired(b: list[float], a: list[float]) -> float:
    """The median of the differences of the calls made one after the other (same turn)."""
    return statistics.median(x - y for x, y in zip(b, a, strict=True))


def _overheads(ns: dict[str, list[float]], sdk: str, ci: bool) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in ns.items() if k.startswith(sdk + " ")}
    out: dict[str, Any] = {}
    for who in ("tracekit", "otel"):
        if f"{sdk} {who}" not in med:
            continue
        over = med[f"{sdk} {who}"] - med[f"{sdk} sdk"]
        stub = med[f"{sdk} {who}, stub"] - med[f"{sdk} stub"]
        out[who] = {"overhead_ns": over, "paired_ns": _paired(ns[f"{sdk} {who}"], ns[f"{sdk} sdk"]),
                    "stub_overhead_ns": stub}
        if ci:
            out[who]["overhead_ci90_ns"] = _diff_ci(ns[f"{sdk} {who}"], ns[f"{sdk} sdk"])
    if "otel" in out:
        t, o = out["tracekit"], out["otel"]
        out["ratio"] = t["overhead_ns"] / o["overhead_ns"] if o["overhead_ns"] > 0 else None
        out["stub_ratio"] = t["stub_overhead_ns"] / o["stub_overhead_ns"]
    return out


def _profile(guarded: bool, tmp: Path, calls: int = 20_000, top: int = 25) -> dict[str, Any]:
    """cProfile of the instrumented stub path (openai and anthropic), top functions by tottime."""
    import tracekit

    store = tmp / ("profile-guard" if guarded else "profile-record")
    tracekit.configure(store=store, guard=tracekit.Guard(max_steps=10**9) if guarded else False)
    result: dict[str, Any] = {}
    for sdk in SDKS:
        answer = sdk.method(sdk.make())(**sdk.kwargs)
        create, kwargs = sdk.method(tracekit.instrument(sdk.stub(sdk.make(), answer))), sdk.kwargs
        with tracekit.run(tenant="acme", agent="profile"):
            for _ in range(500):
                create(**kwargs)
            tracekit.flush()
            prof = cProfile.Profile()
            prof.enable()
            for i in range(calls):
                create(**kwargs)
                if i % 1000 == 999:
                    prof.disable()
                    tracekit.flush()
                    prof.enable()
            prof.disable()
        stream = io.StringIO()
        stats = pstats.Stats(prof, stream=stream)
        stats.sort_stats("tottime").print_stats(top)
        rows = []
        entries = stats.stats.items()  # type: ignore[attr-defined]
        for (file, line, func), (_cc, nc, tt, ct, _) in entries:
            rows.append({"function": f"{_short(file)}:{line}({func})",
                         "calls_per_call": nc / calls, "tottime_us_per_call": tt / calls * 1e6,
                         "cumtime_us_per_call": ct / calls * 1e6})
        rows.sort(key=lambda r: -r["tottime_us_per_call"])
        total = sum(r["tottime_us_per_call"] for r in rows)
        result[sdk.name] = {"calls": calls, "profiled_us_per_call": total, "top": rows[:top],
                            "text": stream.getvalue()}
    tracekit.shutdown()
    return result


def _pieces(tmp: Path, n: int = 1000, samples: int = 40) -> dict[str, Any]:
    """The parts of the instrumented stub path timed one by one, without a profiler (ns per
    call, median of ``samples`` interleaved samples of ``n`` calls). The parts past the public
    API reach into tracekit's internals, which may move: they are skipped if they have."""
    import tracekit
    from tracekit import canonical_json

    tracekit.configure(store=tmp / "pieces", guard=tracekit.Guard(max_steps=10**9))
    out: dict[str, Any] = {}
    with tracekit.run(tenant="acme", agent="pieces") as run:
        for sdk in SDKS:
            kw, model = sdk.kwargs, sdk.kwargs["model"]
            answer = sdk.method(sdk.make())(**kw)
            stub = sdk.method(sdk.stub(sdk.make(), answer))
            wrapped = sdk.method(tracekit.instrument(sdk.stub(sdk.make(), answer)))
            keys = ("system", "messages", "tools")
            prompt = {k: kw[k] for k in keys if k in kw}
            parts: dict[str, Callable[[], Any]] = {
                "instrumented call, stub SDK (total)": lambda w=wrapped, kw=kw: w(**kw),
                "the stub alone": lambda f=stub, kw=kw: f(**kw),
                "canonical_json(prompt)": lambda p=prompt: canonical_json(p),
                "canonical_json(answer) (model_dump + encode)": lambda a=answer: canonical_json(a),
                "answer.model_dump()": answer.model_dump,
                "reference: answer.model_dump_json()": answer.model_dump_json,
            }
            try:
                from tracekit._integrations.calls import _Spec
                from tracekit._integrations.prices import Prices

                if sdk.name == "openai":
                    from tracekit._integrations.openai import _apis

                    api = _apis()[0]
                else:
                    from tracekit._integrations.anthropic import _api

                    api = _api()
                spec = _Spec(api, Prices.shipped(), model, stub)
                encoded, attrs = canonical_json(answer), spec.attrs(answer)
                prompt_encoded = canonical_json(prompt)
                usage, cost = spec.usage(answer), spec.cost(answer)
                guard = run._guard
                assert guard is not None
                parts |= {
                    "spec.usage(answer)": lambda s=spec, a=answer: s.usage(a),
                    "spec.cost(answer)": lambda s=spec, a=answer: s.cost(a),
                    "spec.attrs(answer) (tool calls + encode)": lambda s=spec, a=answer: s.attrs(a),
                    "guard.check_flags() (the kill switch)": guard.check_flags,
                    "run._record(prompt row, pre-encoded)":
                        lambda m=model, p=prompt_encoded: run._record(
                            "prompt", name=m, call_id="call_x", args=p),
                    "run._output(...) (output row + guard after it)":
                        lambda e=encoded, u=usage, c=cost, m=model, t=attrs: run._output(
                            e, u, c, m, 1.0, t, "call_x"),
                }
            except Exception as exc:  # internals moved: the public parts still stand
                parts["internals skipped"] = lambda: None
                out.setdefault("errors", []).append(f"{sdk.name}: {type(exc).__name__}: {exc}")
            samples_ns: dict[str, list[float]] = {k: [] for k in parts}
            for fn in parts.values():
                fn()
            names = list(parts)
            for r in range(samples):
                for name in names[r % len(names):] + names[: r % len(names)]:
                    fn = parts[name]
                    t0 = time.perf_counter_ns()
                    for _ in range(n):
                        fn()
                    samples_ns[name].append((time.perf_counter_ns() - t0) / n)
                    tracekit.flush()
            out[sdk.name] = {k: statistics.median(v) for k, v in samples_ns.items()}
    tracekit.shutdown()
    return out


def _cold(tmp: Path, rounds: int = 400) -> dict[str, Any]:
    """The wrapper's cost (stub SDK, minus the stub) right after a real SDK call, and on the
    call just after that one: what the SDK's work between two calls does to the caches. Each
    call timed alone (``perf_counter_ns`` costs ~0.1 µs), medians. "outside a run" is the
    instrumented client called where no run is current (it only looks for one): the floor of
    any wrapper here."""
    import functools

    import tracekit

    tracekit.configure(store=tmp / "cold", guard=tracekit.Guard(max_steps=10**9))
    otel = _Otel()
    out: dict[str, Any] = {}
    with tracekit.run(tenant="acme", agent="cold"):
        for sdk in SDKS:
            kw = sdk.kwargs
            raw = sdk.method(sdk.make())
            answer = raw(**kw)
            stub = sdk.method(sdk.stub(sdk.make(), answer))
            wrapped = sdk.method(tracekit.instrument(sdk.stub(sdk.make(), answer)))
            outside = contextvars.Context()  # no run current in it: the wrapper passes through
            fns = {"stub": stub, "tracekit": wrapped, "otel": otel.traced(sdk, stub),
                   "tracekit outside a run": functools.partial(outside.run, wrapped)}
            first: dict[str, list[int]] = {k: [] for k in fns}
            second: dict[str, list[int]] = {k: [] for k in fns}
            for r in range(rounds):
                for k, fn in fns.items():
                    raw(**kw)  # untimed: the SDK's own work, as between two calls of an agent
                    t0 = time.perf_counter_ns()
                    fn(**kw)
                    t1 = time.perf_counter_ns()
                    fn(**kw)
                    t2 = time.perf_counter_ns()
                    first[k].append(t1 - t0)
                    second[k].append(t2 - t1)
                if r % 20 == 19:
                    tracekit.flush()
                    otel.flush()
            f = {k: statistics.median(v) for k, v in first.items()}
            s2 = {k: statistics.median(v) for k, v in second.items()}
            whos = ("tracekit", "otel", "tracekit outside a run")
            out[sdk.name] = {f"{who} after an SDK call": f[who] - f["stub"] for who in whos}
            out[sdk.name] |= {f"{who} on the next call": s2[who] - s2["stub"] for who in whos}
    otel.close()
    tracekit.shutdown()
    return out


def _short(file: str) -> str:
    for marker in ("site-packages/", "/tracekit/"):
        if marker in file:
            return ("tracekit/" if marker == "/tracekit/" else "") + file.split(marker, 1)[1]
    return file


# -- the benchmark ----------------------------------------------------------------------------
def bench_instrument(rounds: int = 200, repeats: int = 2, workdir: Path | None = None,
                     record_only: bool = True, profile: bool = False) -> dict[str, Any]:
    """Per-call medians (ns) of every contender, the overheads and their ratio, per SDK."""
    os.environ.pop("TRACEKIT_HOME", None)
    tmp = Path(tempfile.mkdtemp(prefix="instrument-", dir=workdir))
    t_start = time.perf_counter()
    phases = {"guard": True, "record": False} if record_only else {"guard": True}
    pooled: dict[str, dict[str, list[float]]] = {p: {} for p in phases}
    per_repeat: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    writer: dict[str, list[float]] = {p: [] for p in phases}
    try:
        for i in range(repeats):
            rep: dict[str, Any] = {}
            for phase, guarded in phases.items():
                got = _phase(guarded, rounds, tmp / f"r{i}", otel_on=True)
                checks.append({"repeat": i, "phase": phase, **got["check"]})
                writer[phase].append(got["writer_cpu_ns_per_call"])
                for name, values in got["samples"].items():
                    pooled[phase].setdefault(name, []).extend(values)
                rep[phase] = {sdk.name: _overheads(got["samples"], sdk.name, ci=False)
                              for sdk in SDKS}
            per_repeat.append(rep)
        cold = _cold(tmp, rounds=2 * rounds)
        prof = None
        if profile:
            prof = {"guard": _profile(True, tmp), "pieces": _pieces(tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    from importlib import metadata

    res: dict[str, Any] = {
        "rounds": rounds, "repeats": repeats, "sdk_calls_per_round": SDK_CALLS,
        "stub_batch": STUB_BATCH,
        "versions": {d: metadata.version(d)
                     for d in ("openai", "anthropic", "httpx2", "opentelemetry-sdk", "pydantic")},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "phases": {
            phase: {
                "ns_per_call": {name: summary(v) for name, v in ns.items()},
                "overheads": {sdk.name: _overheads(ns, sdk.name, ci=True) for sdk in SDKS},
            } for phase, ns in pooled.items()},
        "per_repeat": per_repeat,
        "after_an_sdk_call": cold,
        "writer_cpu_ns_per_call": {p: statistics.median(v) for p, v in writer.items()},
        "checks": checks,
        "checks_ok": all(c["ok"] for c in checks),
        "prompt_bytes": {sdk.name: len(json.dumps({k: sdk.kwargs[k] for k in sdk.kwargs
                                                   if k in ("system", "messages", "tools")}))
                         for sdk in SDKS},
    }
    if prof is not None:
        res["profile"] = prof
    return res


# -- the table --------------------------------------------------------------------------------
def _us(ns: float | None) -> str:
    return "n/a" if ns is None else f"{ns / 1000:.2f} µs"


def _spread(res: dict[str, Any], phase: str, sdk: str, who: str) -> str:
    reps = [r[phase][sdk][who]["overhead_ns"] for r in res.get("per_repeat", []) if phase in r]
    return f"; repeats {min(reps) / 1000:.1f} to {max(reps) / 1000:.1f}" if len(reps) > 1 else ""


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 12's target, per SDK: instrumented overhead (recording and guard) < 20 µs median.

    Judged on the wrapper's own cost right after a real SDK call (``_cold``: each call timed
    alone, a median over thousands, precise to ~1 µs), with the difference of the end-to-end
    medians beside it (the same quantity through the SDK's ~1 ms of noise: its 90 % interval
    is tens of µs wide)."""
    out = []
    guard = res["phases"]["guard"]["overheads"]
    for sdk in SDKS:
        o = guard[sdk.name]["tracekit"]
        cold = res["after_an_sdk_call"][sdk.name]
        val = cold["tracekit after an SDK call"] / 1000
        ci = o.get("overhead_ci90_ns") or [float("nan")] * 2
        ok = val < TARGET_US
        out.append({
            "target": f"{sdk.name}: instrumented call overhead (recording + guard) < 20 µs median",
            "measured": f"{val:.1f} µs after an SDK call (OTel span "
                        f"{cold['otel after an SDK call'] / 1000:.1f} µs); end to end "
                        f"{o['overhead_ns'] / 1000:.1f} µs [{ci[0] / 1000:.0f}, "
                        f"{ci[1] / 1000:.0f}]; wrapper hot {o['stub_overhead_ns'] / 1000:.1f} µs",
            "met": ok,
            "verdict": "met" if ok else f"MISSED ({val / TARGET_US:.1f}x over)"})
    return out


def run_rows(res: dict[str, Any]) -> list[str]:
    """This step's rows in run.py's table (step | measure | tracekit | OTel | other | ratio)."""
    lines = []
    for phase, what in (("guard", "recording + guard"), ("record", "recording only")):
        ph = res["phases"].get(phase)
        if ph is None:
            continue
        ns = ph["ns_per_call"]
        for sdk in SDKS:
            n, o = sdk.name, ph["overheads"][sdk.name]
            t, ot = o["tracekit"], o.get("otel")
            call = "chat.completions.create" if n == "openai" else "messages.create"
            lines.append(
                f"| 5 instrument | {n} `{call}` overhead per call, {what} (SDK alone "
                f"{_us(ns[f'{n} sdk']['median'])}) | {_us(t['overhead_ns'])} (stub SDK "
                f"{_us(t['stub_overhead_ns'])}) | "
                + (f"{_us(ot['overhead_ns'])} (stub SDK {_us(ot['stub_overhead_ns'])})"
                   if ot else "")
                + " | | "
                + (f"tk/OTel {o['ratio']:.2f}x (stub {o['stub_ratio']:.2f}x)"
                   if ot and o.get("ratio") is not None else "")
                + " |")
    return lines


def table(res: dict[str, Any]) -> str:
    lines = ["| SDK call (no network) | phase | uninstrumented median (p90) | tracekit median "
             "(p90) | OTel span median (p90) | tracekit overhead [90% CI] | OTel overhead | "
             "tracekit/OTel overhead |",
             "|---|---|---|---|---|---|---|---|"]
    for phase, what in (("guard", "recording + guard"), ("record", "recording only")):
        if phase not in res["phases"]:
            continue
        ph = res["phases"][phase]
        ns, over = ph["ns_per_call"], ph["overheads"]
        for sdk in SDKS:
            n, o = sdk.name, over[sdk.name]
            t = o["tracekit"]
            ci = t.get("overhead_ci90_ns")
            ci_text = f" [{ci[0] / 1000:.1f}, {ci[1] / 1000:.1f}]" if ci else ""

            def cell(key: str, ns: dict[str, Any] = ns) -> str:
                s = ns.get(key)
                return f"{_us(s['median'])} ({_us(s['p90'])})" if s else ""

            otel = o.get("otel")
            ratio = o.get("ratio")
            stub_ratio = f"{o['stub_ratio']:.2f}x" if "stub_ratio" in o else ""
            lines.append(
                f"| {n} `{'chat.completions' if n == 'openai' else 'messages'}.create` | {what} "
                f"| {cell(f'{n} sdk')} | {cell(f'{n} tracekit')} | {cell(f'{n} otel')} "
                f"| {_us(t['overhead_ns'])}{ci_text} (paired {_us(t['paired_ns'])}"
                f"{_spread(res, phase, n, 'tracekit')}) "
                f"| {_us(otel['overhead_ns']) if otel else ''} "
                f"| {f'{ratio:.2f}x' if ratio is not None else ''} |")
            lines.append(
                f"| {n}, SDK replaced by a stub | {what} | {cell(f'{n} stub')} "
                f"| {cell(f'{n} tracekit, stub')} | {cell(f'{n} otel, stub')} "
                f"| {_us(t['stub_overhead_ns'])} "
                f"| {_us(otel['stub_overhead_ns']) if otel else ''} "
                f"| {stub_ratio} |")
    tg = targets(res)
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {t['verdict']} |" for t in tg]
    lines.append("")
    lines.append(f"store checks: {'ok' if res['checks_ok'] else 'FAILED'} "
                 f"({sum(c['expected_calls'] for c in res['checks']):,} instrumented calls, each "
                 "a prompt and a costed model_output with its tool call; no guard event)")
    prof = res.get("profile")
    if prof and "pieces" in prof:
        for sdk, parts in prof["pieces"].items():
            if sdk == "errors":
                lines += ["", f"pieces skipped: {parts}"]
                continue
            lines += ["", f"parts of the instrumented path ({sdk}, guard on, timed apart, "
                      "no profiler):"]
            lines += [f"  {ns / 1000:7.2f} µs  {name}" for name, ns in parts.items()]
    writer = res.get("writer_cpu_ns_per_call", {})
    if writer:
        lines += ["", "tracekit's writer thread, CPU per instrumented call (off the caller's "
                  "thread): " + "; ".join(f"{p} {_us(ns)}" for p, ns in writer.items())]
    cold = res.get("after_an_sdk_call") or (prof or {}).get("cold")
    if cold:
        lines += ["", "the wrapper's own cost (stub SDK, minus the stub), each call timed alone, "
                  "medians:"]
        for sdk, parts in cold.items():
            lines.append(f"  {sdk}: " + "; ".join(f"{name} {_us(ns)}"
                                                  for name, ns in parts.items()))
    if prof:
        for phase, by_sdk in prof.items():
            if phase in ("pieces", "cold"):  # "cold": results of older runs
                continue
            for sdk, p in by_sdk.items():
                lines += ["", f"profile ({phase}, {sdk}, stub SDK, {p['calls']:,} calls): "
                          f"{p['profiled_us_per_call']:.1f} µs/call under cProfile; top by own "
                          "time (µs per call):"]
                lines += [f"  {r['tottime_us_per_call']:6.2f} own {r['cumtime_us_per_call']:6.2f}"
                          f" cum  x{r['calls_per_call']:.1f}  {r['function']}"
                          for r in p["top"][:15]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 rounds, 1 repeat")
    ap.add_argument("--rounds", type=int, default=None, help="default 200 (--quick 100)")
    ap.add_argument("--repeats", type=int, default=None, help="default 2 (--quick 1)")
    ap.add_argument("--no-record-only", action="store_true",
                    help="skip the second phase (guard=False)")
    ap.add_argument("--profile", action="store_true",
                    help="also cProfile the instrumented path (stub SDK)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "instrument.json")
    ap.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = ap.parse_args(argv)
    if args.table:
        print(table(json.loads(args.out.read_text())["instrument"]))
        return 0
    rounds = args.rounds or (100 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 2)
    workdir = HERE / "out" / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    res = {"machine": machine(),
           "instrument": bench_instrument(rounds, repeats, workdir,
                                          record_only=not args.no_record_only,
                                          profile=args.profile)}
    res["instrument"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1, default=str))
    print(table(res["instrument"]))
    print(f"\nresults: {args.out}")
    return 0 if res["instrument"]["checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
