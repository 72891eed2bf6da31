"""Concurrency: many processes, threads and asyncio tasks recording into one store at once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit
from tracekit._capture.state import PROCESS

PROCESSES = 4
THREADS = 4
RUNS_PER_THREAD = 3
STEPS_PER_RUN = 150  # each step is a progress event or a tool call (two events)

# A worker process: THREADS threads each record RUNS_PER_THREAD runs with run ids known in
# advance, then the process exits normally (its exit path flushes and compacts). It prints
# "ready" once imported, waits for the go file so every process writes at the same time, and
# prints the number of events each run recorded.
WORKER = r"""
import json, os, random, sys, threading, time
from pathlib import Path
import tracekit

store, proc, threads, runs, steps = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
go = Path(sys.argv[6])
tracekit.configure(store=store)

@tracekit.tool
def fetch(owner, n, blob):
    return {"owner": owner, "n": n, "size": len(blob)}

counts = {}
barrier = threading.Barrier(threads)

def work(t):
    rng = random.Random(proc * 100 + t)
    barrier.wait()
    for r in range(runs):
        run_id = f"run-p{proc}-t{t}-r{r}"
        with tracekit.run(tenant=f"tenant-{proc}", run_id=run_id) as run:
            n = 1
            for i in range(steps):
                assert tracekit.current_run() is run
                if rng.random() < 0.4:
                    fetch(run_id, i, "y" * rng.randint(0, 300))
                    n += 2
                else:
                    run.progress(f"{run_id}/{i}")
                    n += 1
                if rng.random() < 0.05:
                    assert tracekit.flush(30.0)
                if rng.random() < 0.02:
                    time.sleep(0.001)
        counts[run_id] = n + 1

print("ready", flush=True)
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.005)
workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
assert len(counts) == threads * runs, counts
print("counts " + json.dumps(counts), flush=True)
"""


def _check_runs(store: Path, expected: dict[str, int]) -> None:
    """Exactly the expected runs and events; no duplicate; each run's seqs 0..n-1."""
    con = tracekit.connect(store)
    try:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM events"
        ).fetchone()
        per_run = con.execute(
            "SELECT run_id, count(*), count(DISTINCT seq), min(seq), max(seq), "
            "arg_min(kind, seq), arg_max(kind, seq), arg_max(status, seq) "
            "FROM events GROUP BY run_id"
        ).fetchall()
        misattributed = con.execute(
            "SELECT run_id, kind, name, args FROM events WHERE "
            "(kind = 'tool_call' AND json_extract_string(args, '$.owner') <> run_id) OR "
            "(kind = 'progress' AND NOT starts_with(name, run_id || '/'))"
        ).fetchall()
    finally:
        con.close()
    assert total == sum(expected.values()), (total, sum(expected.values()))
    assert distinct == total, f"{total - distinct} duplicate event ids"
    assert not misattributed, misattributed[:5]
    got = {row[0]: row[1:] for row in per_run}
    assert set(got) == set(expected)
    for run_id, n in expected.items():
        assert got[run_id] == (n, n, 0, n - 1, "run_start", "run_end", "ok"), (run_id, n)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_processes_and_threads_share_one_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    go = tmp_path / "go"
    env = dict(os.environ)
    env.pop("TRACEKIT_HOME", None)
    env["TRACEKIT_SEGMENT_ROWS"] = "300"  # rotate and compact while the others write
    env["TRACEKIT_FLUSH_INTERVAL"] = "0.01"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(store), str(p), str(THREADS),
             str(RUNS_PER_THREAD), str(STEPS_PER_RUN), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        )
        for p in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.touch()
        # meanwhile, a recovering process must never take a live writer's segment
        recovered = 0
        while any(proc.poll() is None for proc in procs):
            recovered += tracekit.recover(store)[0]
            time.sleep(0.01)
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    expected: dict[str, int] = {}
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "Warning" not in err, err
        line = out.strip().splitlines()[-1]
        assert line.startswith("counts "), out
        expected.update(json.loads(line[len("counts "):]))
    assert recovered == 0, "recover() took a segment from a live writer"
    assert len(expected) == PROCESSES * THREADS * RUNS_PER_THREAD

    # clean exits leave no segment (nor temporary file): everything is compacted Parquet
    assert sorted(os.listdir(store / "segments")) == []
    parts = list((store / "events").glob("date=*/part-*.parquet"))
    assert len(parts) >= PROCESSES
    assert not [p for p in (store / "events").rglob(".tmp*")]
    writers = {p.name[len("part-"):].rsplit("-", 1)[0] for p in parts}
    assert len(writers) == PROCESSES  # one writer id per process
    _check_runs(store, expected)


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Configure this process to record into tmp_path; restore the process settings after."""
    monkeypatch.setattr(PROCESS, "_settings", PROCESS._settings)
    monkeypatch.delenv("TRACEKIT_SEGMENT_ROWS", raising=False)
    monkeypatch.delenv("TRACEKIT_FLUSH_INTERVAL", raising=False)
    store = tmp_path / "store"
    tracekit.configure(store=store)
    try:
        yield store
    finally:
        tracekit.shutdown()


@tracekit.tool
def lookup(owner: str, n: int) -> dict[str, object]:
    return {"owner": owner, "n": n}


@tracekit.tool
async def afetch(owner: str, n: int) -> dict[str, object]:
    await asyncio.sleep(0)
    return {"owner": owner, "n": n}


def test_threads_in_one_process(local_store: Path) -> None:
    threads, runs, steps = 8, 2, 200
    barrier = threading.Barrier(threads)
    counts: dict[str, int] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        rng = random.Random(t)
        try:
            barrier.wait()
            for r in range(runs):
                run_id = f"thread-{t}-{r}"
                with tracekit.run(tenant="threads", run_id=run_id) as run:
                    n = 1
                    for i in range(steps):
                        assert tracekit.current_run() is run
                        if i % 3 == 0:
                            assert lookup(run_id, i) == {"owner": run_id, "n": i}
                            n += 2
                        else:
                            run.progress(f"{run_id}/{i}")
                            n += 1
                        if rng.random() < 0.03:
                            assert tracekit.flush(30.0)
                counts[run_id] = n + 1
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors, errors
    assert len(counts) == threads * runs
    assert tracekit.flush(30.0)
    _check_runs(local_store, counts)  # live segment view, before compaction
    with warnings.catch_warnings():
        warnings.simplefilter("error", tracekit.TracekitWarning)
        assert tracekit.shutdown()
    assert not list((local_store / "segments").glob("*.arrows"))
    assert list((local_store / "events").glob("date=*/part-*.parquet"))
    _check_runs(local_store, counts)


def test_asyncio_tasks_keep_their_own_run(local_store: Path) -> None:
    tasks, steps = 12, 40
    seen: dict[str, int] = {}

    async def agent(k: int) -> None:
        rng = random.Random(k)
        run_id = f"task-{k}"
        assert tracekit.current_run() is None
        async with tracekit.run(tenant="async", run_id=run_id) as run:
            n = 1
            for i in range(steps):
                await asyncio.sleep(rng.uniform(0, 0.003))
                assert tracekit.current_run() is run
                if i % 4 == 0:
                    assert await afetch(run_id, i) == {"owner": run_id, "n": i}
                    n += 2
                elif i == steps // 2 + 1:
                    # a sub-agent in the same task: its events are its own, then ours again
                    async with tracekit.run(tenant="async", run_id=f"{run_id}-sub",
                                            parent=run) as sub:
                        await asyncio.sleep(0)
                        assert tracekit.current_run() is sub
                        sub.progress(f"{run_id}-sub/0")
                        assert lookup(f"{run_id}-sub", 1)["owner"] == f"{run_id}-sub"
                    seen[f"{run_id}-sub"] = 5
                    assert tracekit.current_run() is run
                    run.progress(f"{run_id}/{i}")
                    n += 1
                else:
                    run.progress(f"{run_id}/{i}")
                    n += 1
        assert tracekit.current_run() is None
        seen[run_id] = n + 1

    async def main() -> None:
        await asyncio.gather(*(agent(k) for k in range(tasks)))

    asyncio.run(main())
    assert tracekit.shutdown()
    _check_runs(local_store, seen)
    con = tracekit.connect(local_store)
    try:
        lineage = con.execute(
            "SELECT run_id, parent_run_id, root_run_id FROM runs WHERE parent_run_id IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    assert sorted(lineage) == sorted(
        (f"task-{k}-sub", f"task-{k}", f"task-{k}") for k in range(tasks)
    )


LIVE_WRITER = r"""
import sys, time, tracekit
tracekit.configure(store=sys.argv[1])
print("ready", flush=True)
deadline = time.monotonic() + float(sys.argv[2])
with tracekit.run(tenant="live") as run:
    i = 0
    while time.monotonic() < deadline:
        run.progress(f"s{i}")
        i += 1
        if i % 50 == 0:
            tracekit.flush()
"""


@pytest.mark.timeout(60)
def test_live_reader_never_sees_a_row_twice(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = dict(os.environ)
    env.pop("TRACEKIT_HOME", None)
    env["TRACEKIT_SEGMENT_ROWS"] = "300"
    env["TRACEKIT_FLUSH_INTERVAL"] = "0.005"
    procs = [
        subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(store), "4"],
                         stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        for _ in range(2)
    ]
    problems: list[str] = []
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        while any(proc.poll() is None for proc in procs):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                con = tracekit.connect(store)
                total, distinct = con.execute(
                    "SELECT count(*), count(DISTINCT event_id) FROM events"
                ).fetchone()
                con.close()
            if total != distinct:
                problems.append(f"{total - distinct} rows seen twice")
            problems.extend(str(w.message) for w in caught)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    assert all(proc.returncode == 0 for proc in procs)
    assert not problems, problems[:5]
