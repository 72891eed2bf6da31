"""Step 2: sustained events/s from one producer to durable Parquet, and peak RSS.

Each size runs in a fresh interpreter (``python bench_throughput.py --worker N STORE``) so the
peak RSS is that of the run alone. The producer records runs of 100 events (run_start, 49 x
[tool_call with the benchmark payload, progress], run_end) as fast as it can; the clock runs from
the first event to ``tracekit.shutdown()`` returning, which flushes, fsyncs and compacts every
segment into Parquet. A sampler thread reads VmRSS from /proc/self/status every 50 ms; the
kernel's ru_maxrss and VmHWM (the high-water mark) are reported too. The rows in the Parquet
parts are counted afterwards: ``lost`` must be 0.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import PAYLOAD, PROGRESS_LABEL, TOOL_NAME, RssSampler, rss_kb

EVENTS_PER_RUN = 100
POOL = 64 * 1024  # distinct payloads in the "distinct" modes (a power of two)


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


TENANTS = tuple(f"tenant-{i:02d}" for i in range(50))


def _payload_pool(name: str) -> list[dict[str, Any]]:
    """The payloads the producer cycles through: one, or 64 Ki distinct ones."""
    if name == "default":
        return [PAYLOAD]
    base = {**PAYLOAD, "sort_key": "price"} if name == "distinct-hint" else PAYLOAD
    return [{**base, "page": i} for i in range(POOL)]


def worker(events: int, store: Path, payload: str = "default") -> dict[str, Any]:
    """Record ``events`` events into ``store`` (in this process) and measure."""
    import pyarrow.parquet as pq

    import tracekit
    from tracekit._store.layout import Store

    pool = _payload_pool(payload)
    mask = len(pool) - 1
    tracekit.configure(store=store)
    base_kb = rss_kb()
    runs = -(-events // EVENTS_PER_RUN)
    pairs = (EVENTS_PER_RUN - 2) // 2
    sampler = RssSampler().start()
    cpu0 = os.times()
    t0 = time.perf_counter()
    for k in range(runs):
        with tracekit.run(tenant=TENANTS[k % len(TENANTS)]) as run:
            event, progress = run.event, run.progress
            if mask == 0:
                args = pool[0]
                for _ in range(pairs):
                    event("tool_call", name=TOOL_NAME, args=args)
                    progress(PROGRESS_LABEL)
            else:
                for j in range(k * pairs, k * pairs + pairs):
                    event("tool_call", name=TOOL_NAME, args=pool[j & mask])
                    progress(PROGRESS_LABEL)
    t_emitted = time.perf_counter()
    ok = tracekit.shutdown(timeout=3600)
    t_done = time.perf_counter()
    cpu1 = os.times()
    sampler.stop()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    recorded = runs * EVENTS_PER_RUN
    st = Store(store)
    parts = st.parquet_paths()
    rows = sum(pq.read_metadata(p).num_rows for p in parts)
    part_bytes = sum(p.stat().st_size for p in parts)
    return {
        "events": recorded,
        "shutdown_ok": ok,
        "emit_s": round(t_emitted - t0, 3),
        "total_s": round(t_done - t0, 3),
        "drain_after_emit_s": round(t_done - t_emitted, 3),
        "events_per_s": recorded / (t_done - t0),
        "emit_events_per_s": recorded / (t_emitted - t0),
        "rows_in_parquet": rows,
        "lost": recorded - rows,
        "segments_left": len(st.segment_paths()),
        "parquet_parts": len(parts),
        "parquet_bytes": part_bytes,
        "parquet_bytes_per_event": part_bytes / rows if rows else float("nan"),
        "rss_base_mb": round(base_kb / 1024, 1),
        "rss_peak_mb": round(sampler.peak_kb / 1024, 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "vmhwm_mb": round(_status_kb("VmHWM") / 1024, 1),
        "rss_curve_s_mb": sampler.curve(),
        "process_cpu_s": round(cpu_s, 2),
        "cores_busy": round(cpu_s / (t_done - t0), 2),
        "thread_cpu_s": {k: round(v, 2) for k, v in sorted(sampler.thread_cpu_s.items())},
    }


def bench_throughput(sizes: list[int], workdir: Path, payload: str = "default",
                     env: dict[str, str] | None = None) -> dict[str, Any]:
    """One fresh subprocess per size (``env`` added to its environment); stores are deleted."""
    out: dict[str, Any] = {}
    for n in sizes:
        store = workdir / f"throughput-{n}"
        shutil.rmtree(store, ignore_errors=True)
        # through sh, which forks: Linux keeps ru_maxrss across execve, so a child exec'd
        # straight from this (large) process would report this process's peak as its own
        cmd = ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, __file__, "--worker",
               str(n), str(store), payload]
        print(f"  throughput: {n:,} events {payload} {env or ''} ...", flush=True)
        child_env = {k: v for k, v in os.environ.items() if k != "TRACEKIT_HOME"} | (env or {})
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=child_env)
        if proc.returncode != 0:
            raise RuntimeError(f"throughput worker failed ({n}):\n{proc.stderr[-4000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["payload"] = payload
        result["env"] = env or {}
        if proc.stderr.strip():
            result["stderr"] = proc.stderr.strip()[-2000:]
        out[str(n)] = result
        print(f"    {result['events_per_s']:,.0f} events/s, peak RSS {result['rss_peak_mb']} MB",
              flush=True)
        shutil.rmtree(store, ignore_errors=True)
    return out


#: payload modes (``--worker N STORE MODE``): "default" repeats the one benchmark payload;
#: "distinct" cycles through 64 Ki payloads that differ in one field, as real tool arguments
#: do (so nothing downstream can reuse the work done for an identical payload);
#: "distinct-hint" is the same with a redaction hint word ("key" in "sort_key") in every
#: payload, so the writer's cheap pre-check cannot skip the redaction rules
PAYLOAD_MODES = ("default", "distinct", "distinct-hint")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--worker":
        os.environ.pop("TRACEKIT_HOME", None)
        mode = sys.argv[4] if len(sys.argv) > 4 else "default"
        if mode not in PAYLOAD_MODES:
            sys.exit(f"payload mode must be one of {PAYLOAD_MODES}")
        print(json.dumps(worker(int(sys.argv[2]), Path(sys.argv[3]), mode)))
    else:
        sys.exit("usage: bench_throughput.py --worker EVENTS STORE [MODE]; MODE in "
                 + ", ".join(PAYLOAD_MODES))
