"""tracekit benchmark suite: one command, a table on stdout, a JSON file.

    python benchmarks/run.py [--events 10000000] [--quick] [--out benchmarks/out/results.json]

Steps (see README.md): 1 hot path per event vs OpenTelemetry and logging; 2 sustained events/s
to durable Parquet and peak RSS (fresh subprocess per size); 3 queries on a large store, DuckDB
over tracekit's Parquet vs SQLite; 4 bytes per event on disk; 5 the overhead of
``tracekit.instrument(client)`` on an SDK model call (no network) vs an OpenTelemetry span.
``--only`` runs some steps and merges them into an existing results file; ``--table`` only prints
the table of a results file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine  # noqa: E402

STEPS = ("hotpath", "throughput", "queries", "instrument", "probes")

# targets: (name, predicate on the value, human text)
HOT_NS = 2000.0
HOT_RATIO = 10.0
EPS_TARGET = 300_000.0
RSS_MB = 300.0
TIMELINE_MS = 100.0
SPEND_MS = 1500.0
SPEND_RATIO = 10.0
BYTES_RATIO = 5.0


def _fmt_ns(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def _fmt_ms(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def _check(ok: bool, miss: str) -> str:
    return "met" if ok else f"MISSED ({miss})"


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value and whether it was met (and by how much not)."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: str, ok: bool, miss: str) -> None:
        out.append({"target": name, "measured": value, "met": ok,
                    "verdict": _check(ok, miss)})

    hot = res.get("hotpath")
    if hot:
        ns = hot["ns_per_call"]
        for kind in ("event", "progress"):
            med = ns[f"tracekit {kind}"]["median"]
            add(f"hot path {kind}: tracekit median <= 2 µs", _fmt_ns(med), med <= HOT_NS,
                f"{med / HOT_NS:.1f}x over")
            ratio = hot["ratios"][f"otel/tracekit {kind}"]
            add(f"hot path {kind}: >= 10x cheaper than an OTel span", f"{ratio:.1f}x",
                ratio >= HOT_RATIO, f"{HOT_RATIO / ratio:.1f}x short")
    thr = res.get("throughput")
    if thr and thr.get("sizes"):
        sizes = sorted(thr["sizes"], key=int)
        for size in sizes:
            r = thr["sizes"][size]
            eps = r["events_per_s"]
            add(f"sustained {int(size):,} events: >= 300k events/s", f"{eps:,.0f}/s",
                eps >= EPS_TARGET, f"{EPS_TARGET / eps:.1f}x short")
        big = thr["sizes"][sizes[-1]]
        small = thr["sizes"][sizes[0]]
        peak = big["rss_peak_mb"]
        flat = peak <= 1.25 * small["rss_peak_mb"] + 20
        why = [f"{peak / RSS_MB:.1f}x the bound"] if peak >= RSS_MB else []
        why += [] if flat else [f"grows with N: {small['rss_peak_mb']:.0f} → {peak:.0f} MB"]
        add(f"peak RSS at {int(sizes[-1]):,} events < 300 MB and flat",
            f"{peak:.0f} MB (at {int(sizes[0]):,}: {small['rss_peak_mb']:.0f} MB)",
            peak < RSS_MB and flat, "; ".join(why))
    q = res.get("queries")
    if q:
        qq = q["queries"]
        tl = qq["timeline_ms"]["duckdb"]["median"]
        add("one run's timeline < 100 ms", _fmt_ms(tl), tl < TIMELINE_MS,
            f"{tl / TIMELINE_MS:.1f}x over")
        sp = qq["spend_ms"]["duckdb"]["median"]
        add("spend per tenant per 5 min < 1.5 s", _fmt_ms(sp), sp < SPEND_MS,
            f"{sp / SPEND_MS:.1f}x over")
        ratio = qq["ratios"]["spend sqlite/duckdb"]
        add("spend >= 10x faster than SQLite", f"{ratio:.1f}x", ratio >= SPEND_RATIO,
            f"{SPEND_RATIO / ratio:.1f}x short")
        sz = q["sizes"]
        r = sz["json_lines/parquet"]
        add("bytes/event <= 1/5 of JSON lines", f"1/{r:.1f}", r >= BYTES_RATIO,
            f"only 1/{r:.1f}")
    ins = res.get("instrument")
    if ins:
        from bench_instrument import targets as instrument_targets

        out += instrument_targets(ins)
    return out


def _spread(hot: dict[str, Any], kind: str) -> str:
    reps = [r["ratios"][f"otel/tracekit {kind}"] for r in hot.get("per_repeat", [])]
    return f" (repeats {min(reps):.1f}-{max(reps):.1f})" if len(reps) > 1 else ""


def table(res: dict[str, Any]) -> str:
    """The results as a Markdown table (also what is printed)."""
    lines = ["| step | measure | tracekit | OTel span | logging / SQLite / JSON | ratio |",
             "|---|---|---|---|---|---|"]
    hot = res.get("hotpath")
    if hot:
        ns = hot["ns_per_call"]
        for kind, what in (("event", "`run.event(\"tool_call\", args=payload)`"),
                           ("progress", "`run.progress(label)`")):
            tk, ot, lg = (ns[f"{c} {kind}"] for c in ("tracekit", "otel", "logging"))
            lines.append(
                f"| 1 hot path | {what}, median (p90) per call | {_fmt_ns(tk['median'])} "
                f"({_fmt_ns(tk['p90'])}) | {_fmt_ns(ot['median'])} ({_fmt_ns(ot['p90'])}) | "
                f"logging {_fmt_ns(lg['median'])} ({_fmt_ns(lg['p90'])}) | "
                f"OTel/tk {hot['ratios'][f'otel/tracekit {kind}']:.1f}x{_spread(hot, kind)}, "
                f"logging/tk {hot['ratios'][f'logging/tracekit {kind}']:.1f}x |")
        for ref in ("tracekit.canonical_json(payload)", "json.dumps(payload)",
                    "orjson.dumps(payload, OPT_SORT_KEYS)", "empty loop"):
            if ref in ns:
                lines.append(f"| 1 hot path | reference: {ref} | {_fmt_ns(ns[ref]['median'])} "
                             "| | | |")
    thr = res.get("throughput")
    if thr:
        for size, r in sorted(thr["sizes"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| 2 sustained | {int(size):,} events → Parquet (first event → shutdown) | "
                f"{r['events_per_s']:,.0f} events/s; peak RSS {r['rss_peak_mb']:.0f} MB "
                f"(ru_maxrss {r['ru_maxrss_mb']:.0f}, base {r['rss_base_mb']:.0f}) | | "
                f"lost {r['lost']}, segments left {r['segments_left']} | |")
        for name, r in thr.get("probes", {}).items():
            lines.append(
                f"| 2 sustained | probe: {name}, {r['events']:,} events | "
                f"{r['events_per_s']:,.0f} events/s; peak RSS {r['rss_peak_mb']:.0f} MB; "
                f"Parquet {r['parquet_bytes_per_event']:.1f} B/event | | | |")
    q = res.get("queries")
    if q:
        qq, sz = q["queries"], q["sizes"]
        tl, sp = qq["timeline_ms"], qq["spend_ms"]
        lines.append(
            f"| 3 queries | one run's timeline, {sz['rows']:,} events, median (p90) | DuckDB "
            f"{_fmt_ms(tl['duckdb']['median'])} ({_fmt_ms(tl['duckdb']['p90'])}) | | SQLite "
            f"{_fmt_ms(tl['sqlite']['median'])} ({_fmt_ms(tl['sqlite']['p90'])}) | "
            f"SQLite/DuckDB {qq['ratios']['timeline sqlite/duckdb']:.2f}x |")
        lines.append(
            f"| 3 queries | spend per tenant per 5 min, median | DuckDB "
            f"{_fmt_ms(sp['duckdb']['median'])} | | SQLite {_fmt_ms(sp['sqlite']['median'])} | "
            f"SQLite/DuckDB {qq['ratios']['spend sqlite/duckdb']:.1f}x |")
        lines.append(f"| 3 queries | `tracekit.connect(store)` ({sz['parquet_parts']} parts) | "
                     f"{_fmt_ms(qq['connect_ms'])} | | | |")
        lines.append(
            f"| 4 size | bytes per event on disk | Parquet {sz['parquet_bytes_per_event']:.1f} | "
            f"| JSON lines {sz['json_lines_bytes_per_event']:.0f} (gzip "
            f"{sz['json_lines_gzip_bytes_per_event']:.0f}); SQLite "
            f"{sz['sqlite_bytes_per_event']:.0f} | JSON/Parquet {sz['json_lines/parquet']:.1f}x |")
    if thr:
        for size, r in sorted(thr["sizes"].items(), key=lambda kv: int(kv[0])):
            lines.append(f"| 4 size | same payload repeated ({int(size):,} events, step 2) | "
                         f"Parquet {r['parquet_bytes_per_event']:.1f} | | | |")
    ins = res.get("instrument")
    if ins:
        from bench_instrument import run_rows

        lines += run_rows(ins)
    tg = targets(res)
    if tg:
        lines += ["", "| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['measured']} | {t['verdict']} |" for t in tg]
    return "\n".join(lines)


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _clean(obj: Any) -> Any:
    """NaN → None so the JSON file is strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _reexec_on_snapshot(rev: str, workdir: Path) -> None:
    """Export tracekit/ at ``rev`` and run this same command again with it first on the path."""
    import subprocess

    repo = HERE.parent
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", rev + "^{commit}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    dest = workdir / f"src-{sha[:12]}"
    if not (dest / "tracekit" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(repo), "archive", sha, "tracekit"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dest), env.get("PYTHONPATH")]))
    env["TRACEKIT_BENCH_SOURCE"] = f"git archive of {rev} = {sha}"
    print(f"measuring tracekit at {rev} ({sha[:12]}) from {dest}", flush=True)
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=None,
                    help="largest size for steps 2 and 3 (default 10,000,000; --quick 1,000,000)")
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes and fewer repetitions (sizes 100k and 1M)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "results.json")
    ap.add_argument("--only", action="append", choices=STEPS,
                    help="run only these steps (repeatable); merged into --out if it exists")
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "work",
                    help="where stores are built (the query store is kept for reuse)")
    ap.add_argument("--no-reuse", action="store_true", help="rebuild the query store")
    ap.add_argument("--table", action="store_true", help="print the table of --out and exit")
    ap.add_argument("--snapshot", metavar="REV",
                    help="measure tracekit as committed at REV (e.g. HEAD), exported with git "
                         "archive, instead of the work tree (which others may be editing)")
    args = ap.parse_args(argv)
    if args.snapshot and not os.environ.get("TRACEKIT_BENCH_SOURCE"):
        _reexec_on_snapshot(args.snapshot, args.workdir)

    if args.table:
        print(table(_load(args.out)))
        return 0
    events = args.events or (1_000_000 if args.quick else 10_000_000)
    steps = args.only or ["hotpath", "throughput", "queries", "instrument"]
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    res = _load(args.out) if args.only else {}
    res["machine"] = machine()
    res.setdefault("args", {})
    res["args"].update({"events": events, "quick": args.quick})
    os.environ.pop("TRACEKIT_HOME", None)

    def stamp(name: str, t0: float) -> None:
        res[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        res[name]["loadavg_end"] = os.getloadavg()
        args.out.write_text(json.dumps(_clean(res), indent=1, default=str))

    if "hotpath" in steps:
        from bench_hotpath import bench_hotpath

        print("step 1: hot path ...", flush=True)
        t0 = time.perf_counter()
        res["hotpath"] = bench_hotpath(rounds=100 if args.quick else 300,
                                       workdir=args.workdir, repeats=1 if args.quick else 3)
        stamp("hotpath", t0)
    if "throughput" in steps:
        from bench_throughput import bench_throughput

        print("step 2: sustained throughput ...", flush=True)
        t0 = time.perf_counter()
        res["throughput"] = {"sizes": bench_throughput([events // 10, events], args.workdir)}
        stamp("throughput", t0)
    if "queries" in steps:
        from bench_queries import bench_queries

        print("steps 3-4: queries and sizes ...", flush=True)
        t0 = time.perf_counter()
        res["queries"] = bench_queries(
            events, args.workdir, reuse=not args.no_reuse,
            json_sample=min(events, 1_000_000),
            timeline_passes=2 if args.quick else 4,
            spend_reps=(3, 2) if args.quick else (7, 3))
        stamp("queries", t0)
    if "instrument" in steps:
        from importlib.util import find_spec

        missing = [m for m in ("openai", "anthropic", "httpx2") if find_spec(m) is None]
        if missing:
            print(f"step 5 skipped: {', '.join(missing)} not installed "
                  "(pip install -e '.[bench,openai,anthropic]')", flush=True)
        else:
            from bench_instrument import bench_instrument

            print("step 5: instrumented SDK model calls ...", flush=True)
            t0 = time.perf_counter()
            res["instrument"] = bench_instrument(rounds=100 if args.quick else 200,
                                                 repeats=1 if args.quick else 2,
                                                 workdir=args.workdir)
            stamp("instrument", t0)
    if "probes" in steps:
        from bench_throughput import bench_throughput
        from probe_writer import probe_writer

        print("probes: writer breakdown; throughput with a hint payload, tuning knobs ...",
              flush=True)
        t0 = time.perf_counter()
        res.setdefault("throughput", {"sizes": {}})
        n = events // 10
        probes = {
            "64 Ki distinct payloads": {"payload": "distinct"},
            "64 Ki distinct payloads with a redaction hint word": {"payload": "distinct-hint"},
            "TRACEKIT_SEGMENT_ROWS=65536": {"env": {"TRACEKIT_SEGMENT_ROWS": "65536"}},
            "ARROW_DEFAULT_MEMORY_POOL=system": {
                "env": {"ARROW_DEFAULT_MEMORY_POOL": "system"}},
        }
        res["throughput"]["probes"] = {
            name: bench_throughput([n], args.workdir, **kw)[str(n)]
            for name, kw in probes.items()}
        try:  # it calls tracekit's internals, which may have moved
            res["probes"] = {"writer": probe_writer()}
        except Exception as exc:
            res["probes"] = {"writer": {"error": f"{type(exc).__name__}: {exc}"}}
        stamp("probes", t0)
    res["targets"] = targets(res)
    args.out.write_text(json.dumps(_clean(res), indent=1, default=str))
    print()
    print(table(res))
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
