"""The guard's speed: the per-call check, halt propagation, and the shared tenant spend window.

    python benchmarks/bench_guard.py [--out benchmarks/out/guard.json] [--reps 20]

1. A guard check with nothing tripped (every bound configured), median ns, on the SQLite and the
   Redis control store, side by side with what a guard that asked its store on every call would
   pay (one SQLite SELECT of the flags; one Redis HGETALL round trip).
2. Halt propagation: a worker process calls a guarded tool in a loop; this process sets
   ``halt:tenant:bench`` (what ``tracekit halt tenant bench`` does) and the worker reports when its
   first call was refused. Median and worst of ``--reps``, on SQLite and on Redis.
3. Tenant spend with 4 processes spending at once: the control store's window total against the
   true sum, and how far behind each process's own view was when it finished.

Redis runs as a private ``redis-server`` on a free loopback port, started and stopped here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_CHECK_NS = 3000
TARGET_PROPAGATION_MS = {"sqlite": 250.0, "redis": 50.0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                from tracekit._control.redis import RedisControl

                RedisControl(self.url).close()  # initialised, as `tracekit status --init` does
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _all_bounds() -> Any:
    import tracekit

    return tracekit.Guard(
        max_steps=10**6, max_cost_usd=10**6, max_tool_calls_per_minute=10**9, max_repeats=10**9,
        max_steps_without_progress=10**6, tenant_spend_usd=10**6, max_writes_per_minute=10**9,
        min_progress_per_usd=1e-9,
    )


def bench_check(control: str, store: Path) -> dict[str, float]:
    """Median ns of RunGuard.check_call with every bound set and nothing tripped.

    Each check is handed a new ``Call`` (name, canonical arguments, writes), as the run builds
    one before every guarded tool call."""
    import tracekit
    from tracekit._contain.detectors.base import Call
    from tracekit._contain.detectors.tool_rate import PerMinute

    tracekit.configure(store=store, guard=_all_bounds(), control=control)
    signatures = [json.dumps({"order_id": f"O-{i}"}) for i in range(50)]
    per_call: list[float] = []
    with tracekit.run(tenant="bench") as run:
        guard = run._guard
        assert guard is not None
        # the sliding-minute windows (tool calls, writes), emptied between rounds
        rate_windows = [d.times for d in guard.detectors if isinstance(d, PerMinute)]
        for _ in range(300):
            t0 = time.perf_counter_ns()
            for i in range(500):
                guard.check_call(Call("lookup_order", signatures[i % 50], False))
            per_call.append((time.perf_counter_ns() - t0) / 500)
            for window in rate_windows:
                window.clear()
        naive = _naive_round_trip(guard.rt.control)
    tracekit.shutdown()
    return {"check_ns": statistics.median(per_call), "naive_ns": naive}


def _naive_round_trip(control: Any) -> float:
    """What asking the store on every call would cost: one read of every flag."""
    samples = []
    for _ in range(30):
        t0 = time.perf_counter_ns()
        for _ in range(50):
            control.flags()
        samples.append((time.perf_counter_ns() - t0) / 50)
    return statistics.median(samples)


_WORKER = textwrap.dedent("""
    import sys, time, tracekit
    store, control = sys.argv[1], sys.argv[2]
    tracekit.configure(store=store, control=control,
                       guard=tracekit.Guard(staleness_s=1.0, refresh_s=0.1))

    @tracekit.tool
    def ping():
        return 1

    halted = False
    with tracekit.run(tenant="bench") as run:
        print("ready", flush=True)
        while True:
            try:
                ping()
                if halted:
                    halted = False
                    print("ready", flush=True)
            except tracekit.Halted as h:
                if not halted:
                    halted = True
                    print("halted", time.time(), h.level, flush=True)
                if h.level == "global":
                    break
            time.sleep(0.0005)
""")


def bench_propagation(control: str, store: Path, reps: int) -> dict[str, Any]:
    """From set_flag in this process to the worker's first refused call, in ms."""
    from tracekit._control.backends import open_control
    from tracekit._control.base import flag_key, now_info

    con = open_control(control, store)
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(store), control],
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    latencies = []
    try:
        for _ in range(reps):
            while worker.stdout.readline().split()[0] != "ready":
                pass
            time.sleep(0.15)
            t0 = time.time()
            con.set_flag(flag_key("tenant", "bench"), now_info("benchmark"))
            line = worker.stdout.readline().split()
            latencies.append((float(line[1]) - t0) * 1000.0)
            con.clear_flag(flag_key("tenant", "bench"))
        con.set_flag(flag_key("global"), now_info("benchmark over"))
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
        con.clear_flag(flag_key("global"))
        con.close()
    return {"median_ms": statistics.median(latencies), "worst_ms": max(latencies),
            "reps": len(latencies)}


_SPENDER = textwrap.dedent("""
    import json, sys, time, tracekit
    store, control, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tracekit.configure(store=store, control=control,
                       guard=tracekit.Guard(tenant_spend_usd=10**6, spend_window_s=300))
    spent = 0.0
    t0 = time.perf_counter()
    with tracekit.run(tenant="spend") as run:
        for i in range(calls):
            run.model_output("thinking", cost_usd=0.01)
            spent += 0.01
            time.sleep(0.001)
        rt = run._guard.rt
        view = rt.tenant_spend("spend")
    seconds = time.perf_counter() - t0
    print(json.dumps({"spent": spent, "view": view, "seconds": seconds,
                      "bucket_s": rt._bucket_s}), flush=True)
    tracekit.shutdown()
""")


def bench_spend(control: str, store: Path, procs: int = 4, calls: int = 500) -> dict[str, Any]:
    """4 processes spend at once; compare the shared window total with the true sum."""
    from tracekit._control.backends import open_control

    workers = [subprocess.Popen([sys.executable, "-c", _SPENDER, str(store), control,
                                 str(calls)], stdout=subprocess.PIPE, text=True)
               for _ in range(procs)]
    reports = [json.loads(w.communicate(timeout=300)[0].strip().splitlines()[-1])
               for w in workers]
    true_sum = sum(r["spent"] for r in reports)
    # the bucket the spenders' GuardRuntime counted in: max(spend_window_s / 30, 1 s)
    bucket_s = reports[0]["bucket_s"]
    con = open_control(control, store)
    since = int((time.time() - 300) // bucket_s) + 1
    total = con.total("spend:spend", since)
    con.close()
    lag = max(true_sum - r["view"] for r in reports)
    rate = true_sum / max(r["seconds"] for r in reports)
    return {"true_sum": round(true_sum, 4), "window_total": round(total, 4),
            "error_usd": round(abs(total - true_sum), 6),
            "worst_view_lag_usd": round(lag, 4),
            "worst_view_lag_s_of_spend": round(lag / rate, 3),
            "bucket_s": bucket_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "out" / "guard.json")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args(argv)
    os.environ.pop("TRACEKIT_HOME", None)
    work = Path(tempfile.mkdtemp(prefix="tracekit-bench-guard-"))
    server = RedisServer()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "backends": {}}
    try:
        for name, control in (("sqlite", "sqlite"), ("redis", server.url)):
            store = work / name
            res: dict[str, Any] = bench_check(control, store)
            res["propagation"] = bench_propagation(control, store, args.reps)
            res["spend"] = bench_spend(control, work / f"{name}-spend")
            results["backends"][name] = res
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    lines = ["| measure | SQLite | Redis | target |", "|---|---|---|---|"]
    b = results["backends"]
    lines.append("| guard check, nothing tripped, median | "
                 f"{b['sqlite']['check_ns']:,.0f} ns | {b['redis']['check_ns']:,.0f} ns | "
                 f"<= {TARGET_CHECK_NS:,} ns |")
    lines.append("| asking the store per call instead (one read of the flags) | "
                 f"{b['sqlite']['naive_ns']:,.0f} ns | {b['redis']['naive_ns']:,.0f} ns | "
                 f"(ratio {b['sqlite']['naive_ns'] / b['sqlite']['check_ns']:.0f}x / "
                 f"{b['redis']['naive_ns'] / b['redis']['check_ns']:.0f}x) |")
    sp, rp = b["sqlite"]["propagation"], b["redis"]["propagation"]
    lines.append(f"| halt propagation, median (worst of {sp['reps']}) | "
                 f"{sp['median_ms']:.1f} ms ({sp['worst_ms']:.1f}) | "
                 f"{rp['median_ms']:.1f} ms ({rp['worst_ms']:.1f}) | < 250 ms / < 50 ms |")
    ss, rs = b["sqlite"]["spend"], b["redis"]["spend"]
    lines.append("| tenant spend, 4 processes: window total vs true sum | "
                 f"${ss['window_total']} vs ${ss['true_sum']} | "
                 f"${rs['window_total']} vs ${rs['true_sum']} | within one bucket |")
    lines.append("| worst lag of a process's own view when it finished | "
                 f"${ss['worst_view_lag_usd']} ({ss['worst_view_lag_s_of_spend']} s of spend) | "
                 f"${rs['worst_view_lag_usd']} ({rs['worst_view_lag_s_of_spend']} s of spend) | "
                 f"bucket {ss['bucket_s']:g} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
