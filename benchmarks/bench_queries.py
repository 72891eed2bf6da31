"""Steps 3 and 4: postmortem queries on a large store, and bytes per event on disk.

The store is generated, not recorded event by event (that is step 2's job): realistic runs are
built as Arrow columns and written with tracekit's own ``write_partitions``
(``tracekit._store.compaction``), one call per write-ahead segment, exactly as the compactor
does. So the layout is what tracekit writes:

* 4 writer processes; a run belongs to one writer; each writer's rows arrive in time order and are
  cut into segments of the recorder's default ``rotate_rows`` (read from tracekit);
* each segment is sorted by (run_id, seq) and split per UTC date into
  ``events/date=YYYY-MM-DD/part-<writer>-<n>.parquet`` with tracekit's own writer settings.

The workload: runs of 20-200 events (uniform) for 50 tenants (Zipf-like weights), started over
4 hours that cross midnight UTC, events 1.5 s apart on average; each step is prompt,
model_output, tool_call, tool_result, progress; 10 % of runs are sub-agents; 2 % of tool results
fail. Payloads are small JSON documents drawn from pools with random ids and amounts, so they
neither repeat exactly nor look like random bytes.

SQLite holds the same rows (ts as integer microseconds), inserted in time order, with an index on
(run_id, seq); it is loaded with synchronous=OFF and journal_mode=OFF, which only helps it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import re
import shutil
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import summary

WRITERS = ("5f1ac0de01a7", "5f2bd1ef02b8", "5f3ce2f003c9", "5f4df30104da")


def rotate_rows() -> int:
    """The recorder's default segment size (rows), read from tracekit itself."""
    import inspect

    from tracekit._capture.recorder import Recorder

    return int(inspect.signature(Recorder).parameters["rotate_rows"].default)
START = dt.datetime(2026, 11, 29, 22, 0, tzinfo=dt.UTC)
WINDOW_S = 4 * 3600
N_TENANTS = 50

TIMELINE_SQL = "SELECT * FROM events WHERE run_id = ? ORDER BY seq"
SPEND_DUCKDB = (
    "SELECT tenant, time_bucket(INTERVAL '5 minutes', ts) AS bucket, sum(cost_usd) AS spend "
    "FROM events GROUP BY tenant, bucket ORDER BY tenant, bucket"
)
SPEND_SQLITE = (
    "SELECT tenant, ts / 300000000 AS bucket, sum(cost_usd) AS spend "
    "FROM events GROUP BY tenant, bucket ORDER BY tenant, bucket"
)

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_MODELS = (("gpt-x-2026-09", 2.5e-6, 1.0e-5), ("claude-y-4", 3.0e-6, 1.5e-5),
           ("small-z", 2.0e-7, 8.0e-7))
_TOOLS = ("search_flights", "lookup_order", "get_weather", "search_docs", "read_ticket",
          "list_invoices", "get_customer", "check_inventory", "translate", "send_email",
          "refund_payment", "update_ticket")
_WRITE_TOOLS = 9  # tools from this index on change the world
_LABELS = ("plan_made", "order_found", "answer_drafted", "ticket_updated", "itinerary_drafted")
_WORDS = ("refund", "delayed", "shipment", "invoice", "password reset", "flight", "hotel",
          "weather", "warranty", "upgrade", "cancel", "billing", "address", "discount",
          "missing item", "late delivery", "double charge", "subscription", "return label")
_CITIES = ("Paris", "Tokyo", "Lisbon", "Austin", "Nairobi", "Lima", "Oslo", "Seoul", "Perth",
           "Zurich", "Cairo", "Denver")


def _b32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def _releases() -> list[tuple[str, str, str, str]]:
    import hashlib

    out = []
    for i, (model, _, _) in enumerate(_MODELS + _MODELS[:1]):
        prompt, tools = f"p{12 + i}", f"t{7 + i % 2}"
        rid = hashlib.sha256("\x1f".join((model, prompt, tools)).encode()).hexdigest()[:12]
        out.append((rid, model, prompt, tools))
    return out


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def generate(n_events: int, seed: int = 7) -> tuple[pa.Table, np.ndarray]:
    """The events in time order (tracekit's schema) and each row's writer index."""
    from tracekit import EVENT_SCHEMA

    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    sizes = rng.integers(20, 201, size=n_events // 20 + 16)
    ends = np.cumsum(sizes)
    n_runs = int(np.searchsorted(ends, n_events)) + 1
    sizes = sizes[:n_runs].copy()
    sizes[-1] -= int(ends[n_runs - 1] - n_events)
    if sizes[-1] < 2:  # a run has at least run_start and run_end
        sizes[-2] += sizes[-1] - 2
        sizes[-1] = 2
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n = int(sizes.sum())
    run_of = np.repeat(np.arange(n_runs), sizes)
    seq = np.arange(n) - offsets[run_of]
    last = seq == (sizes[run_of] - 1)

    # time: exponential gaps inside a run, runs start uniformly over the window
    gaps = rng.exponential(1.5e6, n)
    gaps[seq == 0] = 0.0
    cs = np.cumsum(gaps)
    rel = cs - cs[offsets][run_of]
    duration = rel[offsets + sizes - 1]
    start_us = int(START.timestamp() * 1e6)
    starts = start_us + (rng.random(n_runs) * np.maximum(WINDOW_S * 1e6 - duration, 0))
    ts = (starts[run_of] + rel).astype(np.int64)

    # run identity
    weights = 1.0 / np.arange(1, N_TENANTS + 1) ** 1.1
    tenant_of_run = rng.choice(N_TENANTS, size=n_runs, p=weights / weights.sum())
    rand = rng.integers(0, 2**50, size=n_runs)
    run_ids = [f"run_{_b32(int(s) // 1000, 10)}{_b32(int(r), 10)}"
               for s, r in zip(starts, rand, strict=True)]
    parent = np.full(n_runs, -1)
    sub = np.flatnonzero(rng.random(n_runs) < 0.10)
    parent[sub] = rng.integers(0, n_runs, size=len(sub))
    parent[parent == np.arange(n_runs)] = -1
    tenant_of_run[sub] = tenant_of_run[parent[sub]]
    releases = _releases()
    release_of_run = tenant_of_run % 3
    release_of_run[rng.random(n_runs) < 0.08] = 3  # a canary
    tenants = [f"tenant-{i:02d}" for i in range(N_TENANTS)]
    run_id_col = [run_ids[i] for i in range(n_runs)]
    parent_col = [run_ids[p] if p >= 0 else None for p in parent]
    root_col = [run_ids[p] if p >= 0 else run_ids[i] for i, p in enumerate(parent)]

    def per_run(values: list[Any], typ: pa.DataType) -> pa.Array:
        return pa.array(values, typ).take(pa.array(run_of, pa.int32()))

    # kinds: run_start, then steps of prompt, model_output, tool_call, tool_result, progress
    k = seq - 1
    phase = np.where(seq == 0, -1, np.where(last, -2, k % 5))
    kind_names = np.array(["prompt", "model_output", "tool_call", "tool_result", "progress",
                           "run_end", "run_start"])
    kind = kind_names[np.where(phase == -1, 6, np.where(phase == -2, 5, phase))]
    step = np.where(seq == 0, 0, k // 5 + (k % 5 >= 1)).astype(np.int32)
    step[last] = np.where(seq[last] > 1, (k[last] - 1) // 5 + ((k[last] - 1) % 5 >= 1), 0)

    model_idx = np.array([_MODELS.index(next(m for m in _MODELS if m[0] == r[1]))
                          for r in releases])[release_of_run][run_of]
    tool_rand = rng.integers(0, len(_TOOLS), n)
    tool_idx = np.where(phase == 3, np.roll(tool_rand, 1), tool_rand)
    names = np.full(n, None, dtype=object)
    is_model = (phase == 0) | (phase == 1)
    names[is_model] = np.array([m[0] for m in _MODELS], dtype=object)[model_idx[is_model]]
    is_tool = (phase == 2) | (phase == 3)
    names[is_tool] = np.array(_TOOLS, dtype=object)[tool_idx[is_tool]]
    is_prog = phase == 4
    names[is_prog] = np.array(_LABELS, dtype=object)[rng.integers(0, len(_LABELS),
                                                                   int(is_prog.sum()))]
    call_ids = np.full(n, None, dtype=object)
    call_ids[is_tool] = [f"call_{s}" for s in step[is_tool]]

    # payloads
    args = np.full(n, None, dtype=object)
    output = np.full(n, None, dtype=object)
    systems = [f"You are the support agent of tenant-{i:02d}. Be brief, cite the order id, "
               f"never promise refunds above {50 + 10 * i} EUR without a human." for i in
               range(N_TENANTS)]
    ten_ev = tenant_of_run[run_of]
    pick = pyrng.choice
    idx = np.flatnonzero(phase == 0)
    args[idx] = [_dumps([{"content": systems[t], "role": "system"},
                         {"content": f"My {pick(_WORDS)} for order A-{pyrng.randrange(10**6):06d}"
                                     f" from {pick(_CITIES)}, what now?", "role": "user"}])
                 for t in ten_ev[idx]]
    idx = np.flatnonzero(phase == 1)
    output[idx] = [_dumps({"content": f"Checking the {pick(_WORDS)} for you.",
                           "tool_calls": [{"name": _TOOLS[t]}]}) for t in tool_rand[idx + 1]]
    idx = np.flatnonzero(phase == 2)
    args[idx] = [_dumps({"order_id": f"A-{pyrng.randrange(10**6):06d}", "query": pick(_WORDS),
                         "city": pick(_CITIES), "limit": pyrng.choice((5, 10, 20))})
                 for _ in idx]
    idx = np.flatnonzero(phase == 3)
    failed = rng.random(len(idx)) < 0.02
    output[idx] = [None if f else _dumps({"status": pick(("shipped", "open", "pending")),
                                          "total": round(pyrng.uniform(3, 900), 2),
                                          "items": pyrng.randrange(1, 9)})
                   for f in failed]
    status = np.full(n, None, dtype=object)
    status[phase == -1] = "running"
    status[(phase == 1) | (phase == 4)] = "ok"
    status[phase == 2] = "started"
    status[idx] = np.where(failed, "error", "ok")
    end_idx = np.flatnonzero(phase == -2)
    end_roll = rng.random(len(end_idx))
    status[end_idx] = np.where(end_roll < 0.03, "error", np.where(end_roll < 0.05, "halted", "ok"))
    error = np.full(n, None, dtype=object)
    error[idx[failed]] = "TimeoutError: upstream did not answer within 30 s"
    error[end_idx[end_roll < 0.03]] = "ToolError: lookup_order failed 3 times"
    error[end_idx[(end_roll >= 0.03) & (end_roll < 0.05)]] = "Halted: spend per tenant in 5 min"

    # usage and cost on model outputs, latency on model outputs and tool results
    mo = phase == 1
    tok_in = np.where(mo, rng.integers(200, 6000, n), 0)
    tok_out = np.where(mo, rng.integers(20, 800, n), 0)
    price_in = np.array([m[1] for m in _MODELS])[model_idx]
    price_out = np.array([m[2] for m in _MODELS])[model_idx]
    cost = np.round(tok_in * price_in + tok_out * price_out, 8)
    latency = np.where(mo, rng.lognormal(6.5, 0.6, n),
                       np.where(phase == 3, rng.lognormal(4.5, 0.8, n), np.nan))
    attrs = np.full(n, None, dtype=object)
    attrs[phase == -1] = '{"agent":"support-bot"}'
    attrs[(phase == 2) & (tool_idx >= _WRITE_TOOLS)] = '{"writes":true}'

    rel_col = [releases[r] for r in release_of_run]
    cols: dict[str, pa.Array] = {
        "run_id": per_run(run_id_col, pa.string()),
        "parent_run_id": per_run(parent_col, pa.string()),
        "root_run_id": per_run(root_col, pa.string()),
        "tenant": per_run([tenants[t] for t in tenant_of_run], pa.string()),
        "seq": pa.array(seq, pa.int64()),
        "step": pa.array(step, pa.int32()),
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "kind": pa.array(kind, pa.string()),
        "name": pa.array(names, pa.string()),
        "call_id": pa.array(call_ids, pa.string()),
        "args": pa.array(args, pa.string()),
        "output": pa.array(output, pa.string()),
        "status": pa.array(status, pa.string()),
        "error": pa.array(error, pa.string()),
        "tokens_in": pa.array(np.where(mo, tok_in, 0), pa.int64(), mask=~mo),
        "tokens_out": pa.array(np.where(mo, tok_out, 0), pa.int64(), mask=~mo),
        "cost_usd": pa.array(np.where(mo, cost, 0.0), pa.float64(), mask=~mo),
        "latency_ms": pa.array(np.nan_to_num(latency), pa.float64(), mask=np.isnan(latency)),
        "release_id": per_run([r[0] for r in rel_col], pa.string()),
        "model_version": per_run([r[1] for r in rel_col], pa.string()),
        "prompt_version": per_run([r[2] for r in rel_col], pa.string()),
        "tools_version": per_run([r[3] for r in rel_col], pa.string()),
        "attrs": pa.array(attrs, pa.string()),
        "schema_version": pa.array(np.ones(n, np.int16), pa.int16()),
    }
    writer = (np.arange(n_runs) % len(WRITERS))[run_of]
    # time order, then each writer's own counter in its event ids
    order = np.lexsort((seq, ts))
    table = pa.table(cols).take(pa.array(order))
    writer = writer[order]
    ts_sorted = ts[order]
    event_ids = np.empty(n, dtype=object)
    for w, wid in enumerate(WRITERS):
        rows = np.flatnonzero(writer == w)
        event_ids[rows] = [f"{t:016d}{wid}{i:09d}" for i, t in enumerate(ts_sorted[rows])]
    table = table.append_column("event_id", pa.array(event_ids, pa.string()))
    return table.select([f.name for f in EVENT_SCHEMA]).cast(EVENT_SCHEMA), writer


def build_store(root: Path, table: pa.Table, writer: np.ndarray) -> dict[str, Any]:
    """Write ``table`` as tracekit's compactor would: per writer, per segment."""
    from tracekit._store.compaction import write_partitions
    from tracekit._store.layout import Store

    store = Store(root)
    store.ensure()
    parts = 0
    seg_rows = rotate_rows()
    t0 = time.perf_counter()
    for w, wid in enumerate(WRITERS):
        rows = table.filter(pa.array(writer == w))
        for i, start in enumerate(range(0, rows.num_rows, seg_rows)):
            seg = rows.slice(start, seg_rows)
            parts += len(write_partitions(store, seg, f"{wid}-{i + 1:06d}"))
    return {"parts": parts, "segment_rows": seg_rows,
            "write_s": round(time.perf_counter() - t0, 1)}


def build_sqlite(path: Path, table: pa.Table) -> dict[str, Any]:
    """The same rows in SQLite (time order), ts as integer microseconds, indexed on run_id."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    types = {pa.string(): "TEXT", pa.int64(): "INTEGER", pa.int32(): "INTEGER",
             pa.int16(): "INTEGER", pa.float64(): "REAL"}
    decl = ", ".join(f"{f.name} {types.get(f.type, 'INTEGER')}" for f in table.schema)
    con.execute(f"CREATE TABLE events ({decl})")
    marks = ", ".join("?" * table.num_columns)
    t0 = time.perf_counter()
    ts_i = table.schema.get_field_index("ts")
    for batch in table.to_batches(max_chunksize=200_000):
        cols = []
        for i, col in enumerate(batch.columns):
            if i == ts_i:
                col = col.cast(pa.int64())
            cols.append(col.to_pylist())
        con.executemany(f"INSERT INTO events VALUES ({marks})", zip(*cols, strict=True))
    con.commit()
    t_load = time.perf_counter() - t0
    con.execute("CREATE INDEX events_run ON events (run_id, seq)")
    con.commit()
    con.close()
    return {"load_s": round(t_load, 1), "index_s": round(time.perf_counter() - t0 - t_load, 1)}


def _json_line(row: dict[str, Any]) -> str:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            continue
        if key in ("args", "output", "attrs"):
            value = json.loads(value)
        elif key == "ts":
            value = value.isoformat().replace("+00:00", "Z")
        out[key] = value
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def json_lines_size(table: pa.Table, sample: int, seed: int = 11) -> dict[str, Any]:
    """Bytes per event as compact JSON lines (nulls left out, payloads as nested JSON).

    Measured on a uniform random sample of ``sample`` rows (all rows if the table is smaller);
    gzip -6 of the same lines is reported for reference.
    """
    n = table.num_rows
    if sample >= n:
        picked = table
    else:
        rng = np.random.default_rng(seed)
        picked = table.take(pa.array(np.sort(rng.choice(n, size=sample, replace=False))))
    raw = 0
    comp = 0
    chunks = []
    for batch in picked.to_batches(max_chunksize=50_000):
        text = "".join(_json_line(r) + "\n" for r in batch.to_pylist()).encode()
        raw += len(text)
        chunks.append(text)
        if len(chunks) >= 20:
            comp += len(gzip.compress(b"".join(chunks), 6))
            chunks = []
    if chunks:
        comp += len(gzip.compress(b"".join(chunks), 6))
    rows = picked.num_rows
    return {"sample_rows": rows, "bytes_per_event": raw / rows, "gzip_bytes_per_event": comp / rows}


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000.0, out


def _scan_facts(profile: str) -> dict[str, str]:
    """The pruning facts from DuckDB's EXPLAIN ANALYZE of the timeline query."""
    facts = {}
    for key in ("Total Files Read", "Row Groups Scanned", "Total Time", "Data Read"):
        m = re.search(re.escape(key) + r":\s*([^│\n]+?)\s*(?:│|\n|$)", profile)
        if m:
            facts[key] = m.group(1).strip()
    return facts


def run_queries(store: Path, db: Path, run_ids: list[str], timeline_passes: int,
                spend_reps_duck: int, spend_reps_sqlite: int) -> dict[str, Any]:
    """Timeline and spend, median milliseconds, DuckDB over tracekit's Parquet vs SQLite."""
    import tracekit

    connect_ms, duck = _timed(lambda: tracekit.connect(store))
    lite = sqlite3.connect(db)
    lite.execute("PRAGMA cache_size=-262144")  # 256 MB page cache, generous to SQLite
    tl: dict[str, list[float]] = {"duckdb": [], "sqlite": []}
    rows_seen: dict[str, int] = {"duckdb": 0, "sqlite": 0}
    for _ in range(timeline_passes):
        for rid in run_ids:
            ms, rows = _timed(lambda rid=rid: duck.execute(TIMELINE_SQL, [rid]).fetchall())
            tl["duckdb"].append(ms)
            rows_seen["duckdb"] += len(rows)
            ms, rows = _timed(lambda rid=rid: lite.execute(TIMELINE_SQL, [rid]).fetchall())
            tl["sqlite"].append(ms)
            rows_seen["sqlite"] += len(rows)
    sp: dict[str, list[float]] = {"duckdb": [], "sqlite": []}
    duck_rows: list[Any] = []
    lite_rows: list[Any] = []
    for _ in range(spend_reps_duck):
        ms, duck_rows = _timed(lambda: duck.execute(SPEND_DUCKDB).fetchall())
        sp["duckdb"].append(ms)
    for _ in range(spend_reps_sqlite):
        ms, lite_rows = _timed(lambda: lite.execute(SPEND_SQLITE).fetchall())
        sp["sqlite"].append(ms)
    explain = duck.execute("EXPLAIN ANALYZE " + TIMELINE_SQL, [run_ids[0]]).fetchall()
    duck.close()
    lite.close()
    total = {k: sum(r[2] or 0.0 for r in rows) for k, rows in
             (("duckdb", duck_rows), ("sqlite", lite_rows))}
    return {
        "connect_ms": connect_ms,
        "timeline_ms": {k: summary(v) for k, v in tl.items()},
        "timeline_rows": rows_seen,
        "spend_ms": {k: summary(v) for k, v in sp.items()},
        "spend_result_rows": {"duckdb": len(duck_rows), "sqlite": len(lite_rows)},
        "spend_total_usd": total,
        "results_agree": rows_seen["duckdb"] == rows_seen["sqlite"]
        and len(duck_rows) == len(lite_rows)
        and abs(total["duckdb"] - total["sqlite"]) < 1e-6 * max(1.0, total["sqlite"]),
        "ratios": {
            "timeline sqlite/duckdb": statistics.median(tl["sqlite"])
            / statistics.median(tl["duckdb"]),
            "spend sqlite/duckdb": statistics.median(sp["sqlite"])
            / statistics.median(sp["duckdb"]),
        },
        "duckdb_timeline_scan": _scan_facts(explain[0][1] if explain else ""),
    }


def bench_queries(n_events: int, workdir: Path, *, reuse: bool = True, json_sample: int = 1_000_000,
                  timeline_passes: int = 3, spend_reps: tuple[int, int] = (5, 3)) -> dict[str, Any]:
    """Generate (or reuse) the store and its SQLite twin, then time the queries and sizes."""
    from tracekit._store.layout import Store

    base = workdir / f"query-{n_events}"
    store, db, manifest = base / "store", base / "events.sqlite", base / "manifest.json"
    info: dict[str, Any] = {}
    table = None
    if reuse and manifest.exists():  # a store built for another segment size is stale
        built = json.loads(manifest.read_text()).get("store", {}).get("segment_rows")
        reuse = built == rotate_rows()
    if not (reuse and manifest.exists()):
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        print(f"  queries: generating {n_events:,} events ...", flush=True)
        t0 = time.perf_counter()
        table, writer = generate(n_events)
        info["generate_s"] = round(time.perf_counter() - t0, 1)
        print("  queries: writing tracekit store ...", flush=True)
        info["store"] = build_store(store, table, writer)
        del writer
        print("  queries: loading SQLite ...", flush=True)
        info["sqlite"] = build_sqlite(db, table)
        print("  queries: JSON lines sample ...", flush=True)
        info["json_lines"] = json_lines_size(table, json_sample)
        manifest.write_text(json.dumps(info))
    else:
        info = json.loads(manifest.read_text())
        info["reused"] = True
    parts = Store(store).parquet_paths()
    rows = sum(pq.read_metadata(p).num_rows for p in parts)
    parquet_bytes = sum(p.stat().st_size for p in parts)
    if table is None:
        run_table = pq.read_table(parts, columns=["run_id"])
    else:
        run_table = table.select(["run_id"])
    unique_runs = pc.unique(run_table["run_id"]).to_pylist()
    del table, run_table
    pick = random.Random(3).sample(unique_runs, min(25, len(unique_runs)))
    print(f"  queries: timing on {rows:,} rows ...", flush=True)
    q = run_queries(store, db, pick, timeline_passes, *spend_reps)
    sizes = {
        "rows": rows,
        "runs": len(unique_runs),
        "parquet_parts": len(parts),
        "parquet_bytes": parquet_bytes,
        "parquet_bytes_per_event": parquet_bytes / rows,
        "sqlite_bytes": db.stat().st_size,
        "sqlite_bytes_per_event": db.stat().st_size / rows,
        "json_lines_bytes_per_event": info["json_lines"]["bytes_per_event"],
        "json_lines_gzip_bytes_per_event": info["json_lines"]["gzip_bytes_per_event"],
        "json_lines_sample_rows": info["json_lines"]["sample_rows"],
    }
    sizes["json_lines/parquet"] = sizes["json_lines_bytes_per_event"] / sizes[
        "parquet_bytes_per_event"]
    return {"build": info, "queries": q, "sizes": sizes}


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(json.dumps(bench_queries(n, Path("benchmarks/out/work"), json_sample=50_000), indent=2,
                     default=str))
