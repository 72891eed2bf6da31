"""The side-effect ledger's cost per write-tool call, on SQLite and Redis, and this disk's fsync.

    python benchmarks/bench_ledger.py [--calls 400] [--out benchmarks/out/ledger.json]

Side by side in one run: the same no-op tool called inside a run as a read tool (recorded, no
ledger) and as a write tool (atomic reservation in the control store + a fsynced ``reserved``
row + a fsynced ``fired`` row + the settle). The overhead is the difference of the medians.
Every write call uses a new idempotency key, so each one really fires.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_guard import RedisServer  # noqa: E402


def fsync_cost(samples: int = 300) -> float:
    """Median µs of one small append + fsync on the disk the stores live on."""
    (HERE / "out").mkdir(parents=True, exist_ok=True)  # also when --out points elsewhere
    with tempfile.NamedTemporaryFile(dir=HERE / "out") as fh:
        times = []
        for _ in range(samples):
            fh.write(b"x" * 256)
            fh.flush()
            t0 = time.perf_counter()
            os.fsync(fh.fileno())
            times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def per_call(control: str, store: Path, calls: int) -> dict[str, float]:
    import tracekit

    tracekit.configure(store=store, control=control, guard=False)

    @tracekit.tool
    def read(n: int) -> int:
        return n

    @tracekit.tool(writes=True, destination="bench", idempotency_key=lambda n: f"k{n}")
    def write(n: int) -> int:
        return n

    reads, writes = [], []
    with tracekit.run(tenant="bench"):
        write(-1)  # opens the control store and the ledger segment
        for i in range(calls):
            t0 = time.perf_counter()
            read(i)
            reads.append((time.perf_counter() - t0) * 1e6)
            t0 = time.perf_counter()
            write(i)
            writes.append((time.perf_counter() - t0) * 1e6)
    tracekit.shutdown()
    read_us, write_us = statistics.median(reads), statistics.median(writes)
    return {"read_us": read_us, "write_us": write_us, "overhead_us": write_us - read_us,
            "write_p90_us": sorted(writes)[int(len(writes) * 0.9)]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "ledger.json")
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.pop("TRACEKIT_HOME", None)
    work = Path(tempfile.mkdtemp(prefix="tracekit-bench-ledger-"))
    server = RedisServer()
    try:
        results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"),
                                   "fsync_us": fsync_cost()}
        for name, control in (("sqlite", "sqlite"), ("redis", server.url)):
            results[name] = per_call(control, work / name, args.calls)
    finally:
        server.stop()
    args.out.write_text(json.dumps(results, indent=1))
    s, r = results["sqlite"], results["redis"]
    print("| measure | SQLite | Redis | target |\n|---|---|---|---|")
    print(f"| read tool call (recorded, no ledger), median | {s['read_us']:.0f} µs | "
          f"{r['read_us']:.0f} µs | |")
    print("| write tool call (reserve, fsynced reserved row, fired row, settle), median (p90) | "
          f"{s['write_us']:.0f} µs ({s['write_p90_us']:.0f}) | "
          f"{r['write_us']:.0f} µs ({r['write_p90_us']:.0f}) | |")
    print(f"| ledger overhead per write call, median | {s['overhead_us']:.0f} µs | "
          f"{r['overhead_us']:.0f} µs | < 1,000 µs |")
    print(f"| one small append + fsync on this disk, median | {results['fsync_us']:.0f} µs | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
