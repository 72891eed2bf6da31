"""Every named postmortem query on a large store, timed: the target is under 1 s each.

    python benchmarks/bench_named.py [--events 10000000] [--out benchmarks/out/named.json]

The store is step 3's (``bench_queries.generate`` and ``build_store``: tracekit's own layout,
4 writers, segments of the recorder's size), plus a side-effect ledger derived from it: every
tool call that writes (a quarter of them) gets a ``reserved`` and a ``fired`` row, to one of a few
hundred destinations per tenant, written with the compactor's ``write_partitions(store, ...,
kind="ledger")`` (``tracekit._store.compaction``). Each query runs with its default parameters
(``run_timeline`` and ``effects_by_run`` on sampled runs) on a fresh ``tracekit.connect``; median
and p90 of 5 (the first run included).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine  # noqa: E402
from bench_queries import build_store, generate  # noqa: E402

TARGET_S = 1.0


def ledger_of(events: pa.Table, seed: int = 5) -> pa.Table:
    """A ledger for the store: a reserved and a fired row for a quarter of the tool calls."""
    from tracekit._base.schema import LEDGER_SCHEMA, SCHEMA_VERSION

    calls = events.filter(pc.equal(events["kind"], "tool_call")).select(
        ["run_id", "tenant", "call_id", "ts", "name", "release_id"])
    rng = np.random.default_rng(seed)
    calls = calls.filter(pa.array(rng.random(calls.num_rows) < 0.25))
    n = calls.num_rows
    dest = [f"dest-{i}" for i in rng.integers(0, 300, n)]
    fired_ts = pc.add(calls["ts"], pa.scalar(np.timedelta64(200, "ms")))
    half = {
        "entry_id": [f"led_{i:010d}" for i in range(n)], "run_id": calls["run_id"],
        "tenant": calls["tenant"], "call_id": calls["call_id"], "tool": calls["name"],
        "destination": dest, "action": ["write"] * n, "idempotency_key": [None] * n,
        "request_hash": [None] * n, "amount": rng.random(n) * 100, "currency": ["USD"] * n,
        "reversible": [True] * n, "compensates": [None] * n, "result": [None] * n,
        "release_id": calls["release_id"], "schema_version": [SCHEMA_VERSION] * n,
    }
    reserved = pa.table({**half, "ts": calls["ts"], "status": ["reserved"] * n})
    fired = pa.table({**half, "ts": fired_ts, "status": ["fired"] * n})
    both = pa.concat_tables([reserved.select(LEDGER_SCHEMA.names),
                             fired.select(LEDGER_SCHEMA.names)])
    return both.cast(LEDGER_SCHEMA)


def build(n_events: int, workdir: Path) -> tuple[Path, list[str]]:
    """Build (or reuse) the store; returns it and a sample of its run ids."""
    from tracekit._store.compaction import write_partitions
    from tracekit._store.layout import Store

    store = workdir / f"named-{n_events}" / "store"
    if not (store / "events").exists():
        print(f"  generating {n_events:,} events ...", flush=True)
        table, writer = generate(n_events)
        build_store(store, table, writer)
        print("  writing the ledger ...", flush=True)
        ledger = ledger_of(table)
        step = 131_072
        for i, start in enumerate(range(0, ledger.num_rows, step)):
            write_partitions(Store(store), ledger.slice(start, step), f"ledger-{i:06d}",
                             kind="ledger")
        del table, writer
    parts = sorted((store / "events").rglob("*.parquet"))
    runs = pc.unique(pq.read_table(parts[:4], columns=["run_id"])["run_id"]).to_pylist()
    return store, random.Random(3).sample(runs, 5)


def time_queries(store: Path, runs: list[str], reps: int = 5) -> dict[str, dict[str, Any]]:
    import tracekit
    from tracekit._query.named import named_queries

    results: dict[str, dict[str, Any]] = {}
    for name in named_queries():
        times, count = [], 0
        for rep in range(reps):
            params = {"run_id": runs[rep % len(runs)]} if name in (
                "run_timeline", "effects_by_run") else {}
            with tracekit.connect(store) as con:
                t0 = time.perf_counter()
                count = len(tracekit.run_named(con, name, **params).fetchall())
                times.append(time.perf_counter() - t0)
        times.sort()
        results[name] = {"median_s": statistics.median(times),
                         "p90_s": times[min(len(times) - 1, int(len(times) * 0.9))],
                         "rows": count}
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "work")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "named.json")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    store, runs = build(args.events, args.workdir)
    results = time_queries(store, runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"events": args.events, "date": time.strftime("%Y-%m-%d"),
                                    "machine": machine(), "queries": results}, indent=1))
    print(f"| named query ({args.events:,} events) | median | p90 | rows | < {TARGET_S:g} s |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        verdict = "met" if r["median_s"] < TARGET_S else "MISSED"
        print(f"| {name} | {r['median_s'] * 1000:.0f} ms | {r['p90_s'] * 1000:.0f} ms | "
              f"{r['rows']:,} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
