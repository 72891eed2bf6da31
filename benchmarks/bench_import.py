"""`tracekit import` of a large OTLP/JSON trace file: wall time, spans/s and peak memory.

    python benchmarks/bench_import.py [--spans 1000000] [--sizes 100000,1000000] [--out FILE]

The file is what the OpenTelemetry Collector's file exporter writes: one
``ExportTraceServiceRequest`` per line, each a batch of 512 spans, hex ids, 64-bit integers as
strings. The workload is agents following the GenAI conventions: runs of 5-40 loops of a ``chat``
span (input and output messages as JSON text, usage, a tool call in the output) and the
``execute_tool`` span that runs it (arguments and result), under an ``invoke_agent`` span; ids,
amounts and texts vary so nothing repeats exactly. Generated once per size into
``benchmarks/out/`` and reused.

Each size is imported in a fresh subprocess into an empty store (``tracekit.import_traces``, the
library call ``tracekit import`` makes), its peak RSS read from the kernel. Beside it, in the
same run: the same file only parsed by ``json.loads`` a line at a time (the floor of any Python
reader), and counted by DuckDB's ``read_json`` (a C++ reader that does nothing else). Bounded
memory shows as peak RSS that does not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine  # noqa: E402

T0 = 1_764_720_000_000_000_000
BATCH = 512
TARGET_S = 10.0
_WORDS = ("refund", "order", "flight", "seat", "upgrade", "invoice", "customer", "policy",
          "delay", "baggage", "voucher", "status", "booking", "change", "cancel", "fare")


def _kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _run_spans(rng: random.Random, run: int, t: int) -> list[dict[str, Any]]:
    """One agent run's spans: invoke_agent, then loops of chat + execute_tool, then an answer."""
    trace = f"{rng.getrandbits(128):032x}"
    root = f"{rng.getrandbits(64):016x}"
    loops = rng.randint(5, 40)
    spans = []
    for i in range(loops + 1):
        call = f"call_{run}_{i}"
        order = {"order_id": f"A-{rng.randint(1, 99999)}", "amount": rng.randint(1, 500)}
        args = json.dumps(order)
        answer = {"type": "text", "content": _text(rng, 12)}
        ask = {"type": "tool_call", "id": call, "name": "refund", "arguments": args}
        parts = [answer if i == loops else ask]
        chat = [
            _kv("gen_ai.operation.name", "chat"), _kv("gen_ai.provider.name", "openai"),
            _kv("gen_ai.request.model", "gpt-4o-mini"), _kv("gen_ai.response.model", "gpt-4o-mini"),
            _kv("gen_ai.usage.input_tokens", rng.randint(200, 4000)),
            _kv("gen_ai.usage.output_tokens", rng.randint(10, 300)),
            _kv("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [
                {"type": "text", "content": _text(rng, 20)}]}])),
            _kv("gen_ai.output.messages", json.dumps([{"role": "assistant", "parts": parts}])),
        ]  # fmt: skip
        spans.append(_span(trace, root, "chat gpt-4o-mini", t, t + 400_000_000, chat))
        if i == loops:
            break
        tool = [
            _kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", "refund"),
            _kv("gen_ai.tool.call.id", call), _kv("gen_ai.tool.call.arguments", args),
            _kv("gen_ai.tool.call.result", json.dumps({"refunded": rng.randint(1, 500)})),
        ]  # fmt: skip
        spans.append(_span(trace, root, "execute_tool refund", t + 410_000_000, t + 540_000_000,
                           tool))  # fmt: skip
        t += 550_000_000
    agent = [_kv("gen_ai.operation.name", "invoke_agent"), _kv("gen_ai.agent.name", "support")]
    spans.append({**_span(trace, None, "invoke_agent support", spans[0]["startTimeUnixNano"],
                          t + 500_000_000, agent), "spanId": root})  # fmt: skip
    return spans


def _span(trace: str, parent: str | None, name: str, start: int | str, end: int,
          attrs: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    span = {"traceId": trace, "spanId": f"{random.getrandbits(64):016x}", "name": name,
            "kind": 1, "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
            "attributes": attrs, "status": {}}  # fmt: skip
    if parent:
        span["parentSpanId"] = parent
    return span


def generate(path: Path, spans: int) -> Path:
    """``spans`` spans (at least) of OTLP/JSON lines at ``path``; reused when it exists."""
    if path.exists():
        return path
    rng = random.Random(13)
    random.seed(14)  # the span ids: another stream than the trace ids
    tmp = path.with_suffix(".tmp")
    written = run = 0
    batch: list[dict[str, Any]] = []
    with open(tmp, "w") as fh:
        while written < spans:
            run += 1
            batch.extend(_run_spans(rng, run, T0 + run * 1_000_000_000))
            while len(batch) >= BATCH or (batch and written + len(batch) >= spans):
                chunk, batch = batch[:BATCH], batch[BATCH:]
                fh.write(json.dumps(_request(chunk)) + "\n")
                written += len(chunk)
    tmp.rename(path)
    return path


def _request(spans: list[dict[str, Any]]) -> dict[str, Any]:
    resource = {"attributes": [_kv("service.name", "support-agent"), _kv("tenant", "acme")]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [
        {"scope": {"name": "agent"}, "spans": spans}]}]}  # fmt: skip


_CHILD = """
import json, resource, sys, time, tempfile
from pathlib import Path
what, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if what == "tracekit":
    import tracekit
    store = Path(tempfile.mkdtemp(prefix="bench-import-"))
    report = tracekit.import_traces([path], store)
    out = {"spans": report.spans, "runs": len(report.runs), "events": report.events}
elif what == "json":
    n = 0
    with open(path) as fh:
        for line in fh:
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    n += len(ss["spans"])
    out = {"spans": n}
else:
    import duckdb
    n = duckdb.sql(f"SELECT sum(len(s.spans)) FROM (SELECT unnest(resourceSpans) r FROM "
                   f"read_json('{path}', maximum_object_size=1000000000)), "
                   f"unnest(r.scopeSpans) t(s)").fetchall()[0][0]
    out = {"spans": int(n)}
out["seconds"] = time.perf_counter() - t0
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


def measure(what: str, path: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _CHILD, what, str(path)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{what} on {path} failed:\n{done.stderr[-3000:]}")
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="span counts, comma-separated")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "import.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    (HERE / "out").mkdir(exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "sizes": {}}
    for n in sizes:
        path = generate(HERE / "out" / f"otlp-{n}.jsonl", n)
        mb = path.stat().st_size / 1e6
        row = {"file_mb": round(mb, 1)}
        for what in ("tracekit", "json", "duckdb"):
            print(f"{n:>9,} spans ({mb:,.0f} MB): {what} ...", file=sys.stderr, flush=True)
            row[what] = measure(what, path)
        results["sizes"][n] = row
    args.out.write_text(json.dumps(results, indent=2))
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    head = ("spans (file)", "tracekit import", "spans/s", "peak RSS", "json.loads only",
            "DuckDB read_json", "import / json.loads", "verdict (< 10 s for 1M)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n, row in results["sizes"].items():
        tk, js, dk = row["tracekit"], row["json"], row["duckdb"]
        verdict = "met" if tk["seconds"] < TARGET_S * int(n) / 1_000_000 else "MISSED"
        lines.append(
            f"| {int(n):,} ({row['file_mb']:,} MB) | {tk['seconds']:.1f} s ({tk['runs']:,} runs, "
            f"{tk['events']:,} events) | {int(n) / tk['seconds']:,.0f} | "
            f"{tk['peak_rss_mb']:,.0f} MB | {js['seconds']:.1f} s ({js['peak_rss_mb']:,.0f} MB) | "
            f"{dk['seconds']:.1f} s ({dk['peak_rss_mb']:,.0f} MB) | "
            f"{tk['seconds'] / js['seconds']:.1f}x | {verdict} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
