"""The per-call hot paths of two tracekit revisions, side by side in one run.

    python benchmarks/bench_revisions.py [--base 322474f] [--head WORKTREE|REV] [--rounds 200]
        [--batch 1000] [--repeats 3] [--tolerance 0.05] [--json PATH] [--workdir DIR] [--keep]

Did a change (a refactor above all) make the hot paths slower? Two revisions are measured in the
same rounds, so that a noisy neighbour slows both alike:

* ``--base REV`` (default ``322474f``, the last commit before the layout refactor) is exported
  with ``git archive REV tracekit templates | tar -x`` (``templates/`` only where the revision has
  it at the top level: there the package finds its templates beside itself);
* ``--head WORKTREE`` (the default) copies ``tracekit/`` of the work tree as it is at the start,
  so that edits made during the run cannot reach a worker started later; ``--head REV`` is
  exported like the base.

Each revision runs in long-lived worker processes (``_revision_worker.py`` with ``PYTHONPATH`` set
to that revision's tree and this folder, ``PYTHONHASHSEED=0`` for both), each importing its own
``tracekit`` on a fresh temporary store. The guard is process-wide, so each revision has two
workers: ``plain`` (``configure(guard=False)``) and ``guarded`` (a ``Guard`` with
``max_steps``, ``max_cost_usd``, ``max_tool_calls_per_minute``, ``max_repeats`` and
``max_steps_without_progress`` at 10**9, on the default SQLite control store; its per-call path
reads only memory, a background thread refreshes the flags). Contenders, with the payload, tool
name and progress label of ``_common.py``:

1. ``run.event("tool_call", name=TOOL_NAME, args=PAYLOAD)`` (plain);
2. ``run.progress(PROGRESS_LABEL)`` (plain);
3. a ``@tracekit.tool`` function called inside the run, no guard configured (plain);
4. the same tool call under the guard (its arguments cycle over 50 values, so the repeat
   detector's windows stay small; every call still appends to the per-minute windows);
5. ``run.model_output("ok", usage=..., cost_usd=1e-9)`` under the guard (each starts a step).

The parent drives the workers over stdin/stdout, one JSON line per request. In each round the
contenders come in a rotating order, and for each contender the two revisions are asked for one
sample in an order that alternates from round to round; a sample is the time of ``--batch`` calls
(``perf_counter_ns`` in the worker) divided by the batch. Between rounds, outside every timed
region, each worker calls ``tracekit.flush()``: the numbers are the caller's cost when the writer
keeps up. ``--repeats`` does the whole set-up again (fresh workers and stores); samples are
pooled for the median and p90, and the ratio head/base of the medians is also given per repeat
(its spread) and as the median of the per-round ratios (each round's two samples are neighbours
in time). The verdict is ``SLOWER`` only when every repeat's ratio exceeds 1 + tolerance.

Reference rows, in the parent and in the same rounds: an OpenTelemetry SDK span and a stdlib
``logging`` JSON line, exactly as ``bench_hotpath.py`` times them.

Nothing may trip: a ``tracekit.Halted`` in a worker fails the run, and at the end each worker
ends its run, shuts down and counts the events in its Parquet parts by kind against the calls it
made (no ``guard`` event, one ``run_start`` and one ``run_end``, every call recorded, no segment
left). The temporary trees and stores are removed at the end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _common import summary  # noqa: E402

WORKTREE = "WORKTREE"
SIDES = ("base", "head")
#: contender -> (worker mode, what it times)
CONTENDERS: dict[str, tuple[str, str]] = {
    "event": ("plain", '`run.event("tool_call", name=..., args=payload)`'),
    "progress": ("plain", "`run.progress(label)`"),
    "tool": ("plain", "`@tracekit.tool` call, no guard"),
    "guarded tool": ("guarded", "`@tracekit.tool` call, guarded (SQLite control)"),
    "guarded model_output": ("guarded", "`run.model_output(...)`, guarded"),
}
MODES = ("plain", "guarded")
REFERENCES = {
    "otel span": "OpenTelemetry SDK span (BatchSpanProcessor, discarding exporter)",
    "logging json line": "stdlib `logging` JSON line to a file",
}

Timed = Callable[[int], int]


# -- the two trees ------------------------------------------------------------------------------
def _git(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=check)


def _digest(tree: Path) -> str:
    """A short hash of every file under ``tree`` (paths and bytes): equal trees, equal digests."""
    h = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _export(rev: str, dest: Path) -> dict[str, Any]:
    """``git archive REV tracekit [templates] | tar -x -C dest``; what was exported."""
    done = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_revisions: {rev!r} is not a commit of {REPO}")
    sha = done.stdout.decode().strip()
    paths = [p for p in ("tracekit", "templates")
             if _git("cat-file", "-e", f"{sha}:{p}", check=False).returncode == 0]
    if "tracekit" not in paths:
        raise SystemExit(f"bench_revisions: {rev} ({sha[:12]}) has no tracekit/ folder")
    dest.mkdir(parents=True)
    archive = _git("archive", sha, *paths).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return {"rev": rev, "commit": sha, "paths": paths, "tree": str(dest),
            "digest": _digest(dest)}


def _copy_worktree(dest: Path) -> dict[str, Any]:
    """``tracekit/`` (and a top-level ``templates/``) of the work tree, as they are now."""
    dest.mkdir(parents=True)
    paths = [p for p in ("tracekit", "templates") if (REPO / p).is_dir()]
    for name in paths:
        shutil.copytree(REPO / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    head = _git("rev-parse", "HEAD").stdout.decode().strip()
    dirty = _git("status", "--porcelain", "--", *paths).stdout.decode().splitlines()
    return {"rev": WORKTREE, "commit": head, "dirty_files": len(dirty), "paths": paths,
            "tree": str(dest), "digest": _digest(dest),
            "copied_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _name(info: dict[str, Any]) -> str:
    if info["rev"] == WORKTREE:
        dirty = f", {info['dirty_files']} files changed" if info["dirty_files"] else ", clean"
        return f"work tree (HEAD {info['commit'][:7]}{dirty})"
    return info["rev"] if info["commit"].startswith(info["rev"]) else \
        f"{info['rev']} ({info['commit'][:7]})"


# -- the workers --------------------------------------------------------------------------------
class WorkerError(RuntimeError):
    """A worker that failed, exited or was halted; ``side`` names its revision."""

    def __init__(self, text: str, side: str) -> None:
        super().__init__(text)
        self.side = side


class Worker:
    """One ``_revision_worker.py`` process: one revision, one mode, its own store."""

    def __init__(self, side: str, mode: str, tree: Path, home: Path, warmup: int) -> None:
        self.side, self.mode, self.home = side, mode, home
        home.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL", "PYTHONPATH")}
        env["PYTHONPATH"] = os.pathsep.join([str(tree), str(HERE)])
        env["PYTHONHASHSEED"] = "0"
        self.log_path = home / "stderr.log"
        self._log: IO[str] = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_revision_worker.py"), "--mode", mode,
             "--store", str(home / "store"), "--expect-tree", str(tree),
             "--warmup", str(warmup)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            cwd=home, env=env)

    def __str__(self) -> str:
        return f"{self.side} {self.mode} worker (pid {self.proc.pid})"

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._error("exited before the request") from None

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise self._error("exited without an answer")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            what = "THE GUARD HALTED A CALL: the numbers are void" if answer.get("halted") \
                else "failed"
            raise self._error(f"{what}: {answer['error']}\n{answer.get('traceback', '')}")
        return answer

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(request)
        return self.receive()

    def _error(self, what: str) -> WorkerError:
        self._log.flush()
        tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
        text = f"{self} {what}"
        if tail:
            text += "\n  stderr: " + "\n  stderr: ".join(tail)
        return WorkerError(text, self.side)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._log.close()


def _ask_all(workers: list[Worker], request: dict[str, Any]) -> list[dict[str, Any]]:
    """The same request to every worker at once (they work in parallel), then every answer."""
    for w in workers:
        w.send(request)
    return [w.receive() for w in workers]


def _references(tmp: Path) -> tuple[dict[str, Timed], Callable[[], None],
                                      Callable[[], dict[str, Any]]]:
    """OpenTelemetry and logging, timed by bench_hotpath's own set-up, in this process."""
    from bench_hotpath import _logging, _otel

    ot, ot_flush, ot_close, exporter = _otel()
    lg, _, lg_close = _logging(tmp / "events.jsonl")
    calls = [0]
    otel_event = ot["event"]

    def otel_span(n: int) -> int:
        calls[0] += n
        return otel_event(n)

    def close() -> dict[str, Any]:
        ot_flush()
        exported = exporter.spans
        ot_close()
        lg_close()
        return {"otel_spans_started": calls[0], "otel_spans_exported": exported}

    return {"otel span": otel_span, "logging json line": lg["event"]}, ot_flush, close


# -- one repeat ---------------------------------------------------------------------------------
def _one_repeat(trees: dict[str, Path], tmp: Path, rounds: int, batch: int,
                refs_on: bool) -> dict[str, Any]:
    workers: dict[tuple[str, str], Worker] = {}
    try:
        for side in SIDES:
            for mode in MODES:
                workers[side, mode] = Worker(side, mode, trees[side], tmp / f"{side}-{mode}",
                                             warmup=batch)
        ready = {f"{w.side} {w.mode}": w.receive() for w in workers.values()}
        refs, refs_flush, refs_close = _references(tmp) if refs_on else ({}, None, None)
        for timed in refs.values():
            timed(batch)  # warm up
        slots = [*CONTENDERS, *refs]
        samples = {name: {side: [] for side in SIDES} for name in CONTENDERS}
        ref_samples: dict[str, list[float]] = {name: [] for name in refs}
        for r in range(rounds):
            k = r % len(slots)
            for name in slots[k:] + slots[:k]:
                if name in refs:
                    ref_samples[name].append(refs[name](batch) / batch)
                    continue
                first = (r + slots.index(name)) % 2
                for side in (SIDES[first], SIDES[1 - first]):
                    w = workers[side, CONTENDERS[name][0]]
                    answer = w.ask({"op": "sample", "name": name, "n": batch})
                    samples[name][side].append(answer["ns"] / batch)
            _ask_all(list(workers.values()), {"op": "flush"})  # not timed: the writers catch up
            if refs_flush is not None:
                refs_flush()
        closed = dict(zip((f"{w.side} {w.mode}" for w in workers.values()),
                          _ask_all(list(workers.values()), {"op": "close"}), strict=True))
        ref_check = refs_close() if refs_close is not None else {}
    finally:
        for w in workers.values():
            w.stop()
    return {"samples": samples, "ref_samples": ref_samples, "ready": ready, "closed": closed,
            "ref_check": ref_check}


# -- statistics and the table -------------------------------------------------------------------
def _verdict(ratios: list[float], tolerance: float) -> str:
    lo, hi = min(ratios), max(ratios)
    if lo > 1 + tolerance:
        return "SLOWER"
    if hi < 1 - tolerance:
        return "faster"
    if lo >= 1 - tolerance and hi <= 1 + tolerance:
        return f"same (±{tolerance:.0%})"
    return "unclear (repeats disagree)"


def _results(repeats: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    contenders: dict[str, Any] = {}
    for name, (mode, label) in CONTENDERS.items():
        pooled = {side: [v for rep in repeats for v in rep["samples"][name][side]]
                  for side in SIDES}
        per_round = [h / b for rep in repeats
                     for b, h in zip(rep["samples"][name]["base"], rep["samples"][name]["head"],
                                     strict=True)]
        per_repeat = [statistics.median(rep["samples"][name]["head"])
                      / statistics.median(rep["samples"][name]["base"]) for rep in repeats]
        base, head = summary(pooled["base"]), summary(pooled["head"])
        contenders[name] = {
            "label": label, "mode": mode, "base": base, "head": head,
            "ratio": head["median"] / base["median"],
            "ratio_per_repeat": per_repeat,
            "ratio_per_round_median": statistics.median(per_round),
            "verdict": _verdict(per_repeat, tolerance),
        }
    refs = {name: summary([v for rep in repeats for v in rep["ref_samples"].get(name, [])])
            for name in REFERENCES if any(rep["ref_samples"].get(name) for rep in repeats)}
    return {"contenders": contenders, "references": refs}


def _fmt_ns(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def table(res: dict[str, Any]) -> str:
    """The results as Markdown tables (also what is printed)."""
    base, head = (_name(res["revisions"][side]) for side in SIDES)
    lines = [f"| contender (ns per call) | base: {base}, median (p90) | head: {head}, median "
             "(p90) | head/base | per repeat | per round | verdict |",
             "|---|---|---|---|---|---|---|"]
    for c in res["contenders"].values():
        reps = c["ratio_per_repeat"]
        spread = f"{min(reps):.2f}-{max(reps):.2f}" if len(reps) > 1 else f"{reps[0]:.2f}"
        lines.append(
            f"| {c['label']} | {_fmt_ns(c['base']['median'])} ({_fmt_ns(c['base']['p90'])}) "
            f"| {_fmt_ns(c['head']['median'])} ({_fmt_ns(c['head']['p90'])}) "
            f"| {c['ratio']:.2f}x | {spread} | {c['ratio_per_round_median']:.2f}x "
            f"| {c['verdict']} |")
    if res["references"]:
        lines += ["", "| reference (parent process, same rounds) | median (p90) |", "|---|---|"]
        for name, s in res["references"].items():
            lines.append(f"| {REFERENCES[name]} | {_fmt_ns(s['median'])} ({_fmt_ns(s['p90'])}) |")
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _machine() -> dict[str, Any]:
    """The machine facts of ``_common.machine()``, without importing tracekit here."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(), "cpu": cpu, "loadavg_start": os.getloadavg(),
        "platform": platform.platform(), "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in ("pyarrow", "pydantic",
                                                       "opentelemetry-sdk")},
    }


# -- the command --------------------------------------------------------------------------------
def bench_revisions(base: str = "322474f", head: str = WORKTREE, rounds: int = 200,
                    batch: int = 1000, repeats: int = 3, tolerance: float = 0.05,
                    workdir: Path | None = None, keep: bool = False,
                    references: bool = True) -> dict[str, Any]:
    """Both revisions' hot paths in the same rounds; the results (see the module docstring)."""
    res: dict[str, Any] = {"machine": _machine(),
                           "args": {"base": base, "head": head, "rounds": rounds, "batch": batch,
                                    "repeats": repeats, "tolerance": tolerance}}
    tmp = Path(tempfile.mkdtemp(prefix="bench-revisions-", dir=workdir))
    t_start = time.perf_counter()
    try:
        revisions = {"base": _export(base, tmp / "base"),
                     "head": _copy_worktree(tmp / "head") if head == WORKTREE
                     else _export(head, tmp / "head")}
        res["revisions"] = revisions
        trees = {side: Path(info["tree"]) for side, info in revisions.items()}
        for side in SIDES:
            print(f"{side}: {_name(revisions[side])}, tree digest {revisions[side]['digest']}",
                  flush=True)
        if revisions["base"]["digest"] == revisions["head"]["digest"]:
            print("the two trees are identical: an A/A run, the ratios show the method's noise",
                  flush=True)
        done = []
        for i in range(repeats):
            t0 = time.perf_counter()
            print(f"repeat {i + 1}/{repeats}: 4 workers, {rounds} rounds of {batch} calls ...",
                  flush=True)
            done.append(_one_repeat(trees, tmp / f"r{i}", rounds, batch, references))
            print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
        checks: list[dict[str, Any]] = []
        for i, rep in enumerate(done):
            for worker, closed in rep["closed"].items():
                checks.append({"repeat": i, "worker": worker, **closed,
                               "tracekit": rep["ready"][worker]["tracekit"]})
        res["checks"] = checks
        res["reference_checks"] = [rep["ref_check"] for rep in done]
        res.update(_results(done, tolerance))
        res["per_repeat"] = [{name: {side: round(statistics.median(v), 1)
                                     for side, v in rep["samples"][name].items()}
                              for name in CONTENDERS} for rep in done]
    finally:
        if keep:
            print(f"kept {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    res["wall_s"] = round(time.perf_counter() - t_start, 1)
    res["machine"]["loadavg_end"] = os.getloadavg()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="322474f", metavar="REV",
                    help="the revision to compare against (default 322474f)")
    ap.add_argument("--head", default=WORKTREE, metavar="WORKTREE|REV",
                    help="the work tree's tracekit/ (default) or a revision")
    ap.add_argument("--rounds", type=int, default=200, help="samples per contender per repeat")
    ap.add_argument("--batch", type=int, default=1000, help="calls per sample")
    ap.add_argument("--repeats", type=int, default=3,
                    help="fresh workers and stores this many times; samples pooled")
    ap.add_argument("--tolerance", type=float, default=0.05,
                    help="a ratio within 1 ± this is 'same' (default 0.05)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the temporary trees and stores go (default: the system's tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the trees and stores")
    ap.add_argument("--no-references", action="store_true",
                    help="leave out the OpenTelemetry and logging reference rows")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.batch < 1 or args.repeats < 1:
        ap.error("--rounds, --batch and --repeats must be at least 1")
    try:
        res = bench_revisions(args.base, args.head, args.rounds, args.batch, args.repeats,
                              args.tolerance, args.workdir, args.keep,
                              references=not args.no_references)
    except WorkerError as exc:
        print(f"bench_revisions: {exc}", file=sys.stderr)
        if args.head == WORKTREE and exc.side == "head":
            print("bench_revisions: the work tree may be mid-edit; retry, or measure a "
                  "committed state with --head HEAD", file=sys.stderr)
        return 2
    problems = [f"repeat {c['repeat'] + 1}, {c['worker']}: {p}"
                for c in res["checks"] for p in c["problems"]]
    refs = res["reference_checks"]
    problems += [f"OpenTelemetry exported {r['otel_spans_exported']} of "
                 f"{r['otel_spans_started']} spans" for r in refs
                 if r and r["otel_spans_exported"] < r["otel_spans_started"]]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=str))
    print()
    print(table(res))
    events = sum(sum(c["counts"].values()) for c in res["checks"])
    m = res["machine"]
    print(f"\n{res['wall_s']:.0f} s; nproc {m['nproc']}, load average "
          f"{m['loadavg_start'][0]:.1f} → {m['loadavg_end'][0]:.1f}; "
          f"{args.rounds} rounds x {args.repeats} repeats of {args.batch} calls per sample")
    if problems:
        print("CHECKS FAILED: the numbers are void\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"checks: {len(res['checks'])} workers, {events:,} events in their stores, every call "
          "recorded, no guard event, each run open until the end, no segment left")
    if args.json:
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
