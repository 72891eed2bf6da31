"""One revision's side of ``bench_revisions.py``: a long-lived process that times hot paths.

    PYTHONPATH=<revision tree>:benchmarks python benchmarks/_revision_worker.py \
        --mode plain|guarded --store DIR --expect-tree DIR --warmup 1000

It imports whichever ``tracekit`` its ``PYTHONPATH`` puts first (checked against
``--expect-tree``), configures it on a fresh store, opens one run that stays open until ``close``,
warms every contender up and writes one ``ready`` line. Then it answers one JSON line per
request on stdin with one JSON line on stdout:

* ``{"op": "sample", "name": NAME, "n": N}`` → ``{"ns": T}``: N calls of contender NAME timed
  with ``perf_counter_ns`` (the caller divides);
* ``{"op": "flush"}`` → ``{"flushed": true}``: ``tracekit.flush()``, outside any timed region;
* ``{"op": "close"}`` → the run is ended, ``tracekit.shutdown()`` compacts the store, and the
  events in its Parquet parts are counted by kind against the calls this process made (no
  ``guard`` event, one ``run_start`` and one ``run_end``, every call recorded).

Modes (the guard is process-wide, so a guarded and an unguarded contender cannot share a
process): ``plain`` is ``configure(guard=False)`` with ``event``, ``progress`` and ``tool``;
``guarded`` is a ``Guard`` with every bound configured at 10**9 on the default SQLite control
store, with ``guarded tool`` and ``guarded model_output``. Only public API that exists in the
revisions compared is used. A ``tracekit.Halted`` (or any error) is answered as
``{"error": ...}`` and the process exits: the parent fails loudly.

The protocol owns the real stdout; anything else printed goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from _common import PAYLOAD, PROGRESS_LABEL, TOOL_NAME

Timed = Callable[[int], int]

#: tool-call argument values cycled over, so the repeat detector's windows stay small
VARIANTS = 50
USAGE = {"input_tokens": 10, "output_tokens": 5}
COST_USD = 1e-9
HUGE = 10**9
MODES = {"plain": ("event", "progress", "tool"),
         "guarded": ("guarded tool", "guarded model_output")}


_TOOL_CALLS: dict[int, list[dict[str, Any]]] = {}


def _tool_calls(n: int) -> list[dict[str, Any]]:
    """``n`` keyword-argument dicts for the tool, cycling over ``VARIANTS`` queries (cached)."""
    if n not in _TOOL_CALLS:
        variants = [{**PAYLOAD, "query": f"{PAYLOAD['query']} #{i}"} for i in range(VARIANTS)]
        _TOOL_CALLS[n] = [variants[i % VARIANTS] for i in range(n)]
    return _TOOL_CALLS[n]


class Bench:
    """The configured tracekit, its open run, the timed contenders and the calls made so far."""

    def __init__(self, mode: str, store: Path) -> None:
        import tracekit

        self.tk = tracekit
        self.store = store
        if mode == "guarded":
            guard: Any = tracekit.Guard(
                max_steps=HUGE, max_cost_usd=HUGE, max_tool_calls_per_minute=HUGE,
                max_repeats=HUGE, max_steps_without_progress=HUGE,
                # a loop of 200k calls a minute fills the per-minute windows, and the background
                # thread saving the run's state then lags: both revisions would fail closed
                # (stale flags) at the default 1 s
                staleness_s=10.0,
            )
        else:
            guard = False
        tracekit.configure(store=store, guard=guard, control="sqlite")

        @tracekit.tool
        def search_flights(query: str, max_results: int, cabin: str,
                           dates: list[str]) -> dict[str, Any]:
            return {"found": max_results}

        assert search_flights.__name__ == TOOL_NAME
        self.run = tracekit.run(tenant="acme", agent="bench-revisions").__enter__()
        self.calls: dict[str, int] = {}
        event, progress, model_output = self.run.event, self.run.progress, self.run.model_output
        payload, label = PAYLOAD, PROGRESS_LABEL

        def tk_event(n: int) -> int:
            t0 = time.perf_counter_ns()
            for _ in range(n):
                event("tool_call", name=TOOL_NAME, args=payload)
            return time.perf_counter_ns() - t0

        def tk_progress(n: int) -> int:
            t0 = time.perf_counter_ns()
            for _ in range(n):
                progress(label)
            return time.perf_counter_ns() - t0

        def tk_tool(n: int) -> int:
            calls, fn = _tool_calls(n), search_flights
            t0 = time.perf_counter_ns()
            for kw in calls:
                fn(**kw)
            return time.perf_counter_ns() - t0

        def tk_model_output(n: int) -> int:
            usage, cost = USAGE, COST_USD
            t0 = time.perf_counter_ns()
            for _ in range(n):
                model_output("ok", usage=usage, cost_usd=cost)
            return time.perf_counter_ns() - t0

        every: dict[str, Timed] = {
            "event": tk_event, "progress": tk_progress, "tool": tk_tool,
            "guarded tool": tk_tool, "guarded model_output": tk_model_output,
        }
        self.contenders = {name: every[name] for name in MODES[mode]}

    def sample(self, name: str, n: int) -> int:
        ns = self.contenders[name](n)
        self.calls[name] = self.calls.get(name, 0) + n
        return ns

    def expected(self) -> dict[str, int]:
        """Events of each kind this process's calls must have left in the store."""
        c = self.calls
        tools = c.get("tool", 0) + c.get("guarded tool", 0)
        return {"run_start": 1, "run_end": 1, "guard": 0, "error": 0,
                "tool_call": c.get("event", 0) + tools, "tool_result": tools,
                "progress": c.get("progress", 0),
                "model_output": c.get("guarded model_output", 0)}

    def close(self) -> dict[str, Any]:
        """End the run, shut down (compact to Parquet), count the events by kind."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        self.run.__exit__(None, None, None)
        t0 = time.perf_counter()
        clean = self.tk.shutdown()
        shutdown_s = time.perf_counter() - t0
        counts: dict[str, int] = {}
        parts = sorted((self.store / "events").glob("date=*/part-*.parquet"))
        for part in parts:
            kinds = pq.read_table(part, columns=["kind"]).column("kind")
            for row in pc.value_counts(kinds).to_pylist():
                counts[str(row["values"])] = counts.get(str(row["values"]), 0) + row["counts"]
        expected = self.expected()
        left = sorted(p.name for p in (self.store / "segments").glob("*.arrows"))
        problems = [f"{kind}: {counts.get(kind, 0)} in the store, expected {want}"
                    for kind, want in expected.items() if counts.get(kind, 0) != want]
        problems += [f"{kind}: {n} unexpected events" for kind, n in counts.items()
                     if kind not in expected]
        if not clean:
            problems.append("tracekit.shutdown() returned False (not everything was flushed)")
        if left:
            problems.append(f"segments left after shutdown: {left}")
        return {"counts": counts, "expected": expected, "parts": len(parts),
                "shutdown_s": round(shutdown_s, 2), "problems": problems}


def _reply(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=sorted(MODES), required=True)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--expect-tree", type=Path, required=True,
                    help="the tree tracekit must be imported from")
    ap.add_argument("--warmup", type=int, default=1000, help="calls of each contender at start")
    args = ap.parse_args(argv)
    # the protocol keeps the real stdout; a stray print() (or a library's) goes to stderr
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        bench = Bench(args.mode, args.store)
        pkg = Path(bench.tk.__file__).resolve().parent
        if pkg != (args.expect_tree / "tracekit").resolve():
            raise RuntimeError(f"imported tracekit from {pkg}, not from {args.expect_tree}")
        for name in bench.contenders:  # imports, caches, the first segment, the guard's cache
            bench.sample(name, args.warmup)
        bench.tk.flush()
        _reply(out, {"ready": True, "pid": os.getpid(), "tracekit": str(pkg),
                     "version": getattr(bench.tk, "__version__", None),
                     "contenders": list(bench.contenders)})
        for line in sys.stdin:
            req = json.loads(line)
            op = req["op"]
            if op == "sample":
                _reply(out, {"ns": bench.sample(req["name"], int(req["n"]))})
            elif op == "flush":
                _reply(out, {"flushed": bench.tk.flush()})
            elif op == "close":
                _reply(out, bench.close())
                return 0
            else:
                raise ValueError(f"unknown request {op!r}")
        return 0
    except BaseException as exc:  # a Halted above all: the guard tripped, the numbers are void
        halted = type(exc).__name__ == "Halted"
        _reply(out, {"error": f"{type(exc).__name__}: {exc}", "halted": halted,
                     "traceback": traceback.format_exc()})
        return 1


if __name__ == "__main__":
    sys.exit(main())
