"""Crash safety: a writer SIGKILLed at any moment loses no acknowledged event and duplicates none.

A real child process (tests/crash_child.py) records events and prints what ``tracekit.flush()``
acknowledged; the parent kills it with SIGKILL at a random moment (seeded per trial), then reads
the store back with ``tracekit.connect`` before and after ``tracekit.recover``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pytest

import tracekit

CHILD = Path(__file__).resolve().parent.parent / "crash_child.py"
TRIALS = 32


class Child:
    """A crash_child.py process whose stdout lines are collected by a reader thread."""

    def __init__(self, store: Path, seed: int, mode: str, env: dict[str, str], cwd: Path):
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(store), str(seed), mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            env=env, cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            self.lines.append(line)
            if line in ("ready", "done"):
                self.ready.set()
        self.ready.set()  # EOF: the child is gone

    def kill_and_wait(self) -> str:
        """SIGKILL the child (if still alive), reap it, return its stderr."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        with self.proc.stderr:
            return self.proc.stderr.read()

    def acks(self) -> dict[str, int]:
        """run_id -> highest acknowledged seq."""
        acked: dict[str, int] = {}
        for line in self.lines:
            if line.startswith("ack "):
                _, run_id, seq = line.split()
                acked[run_id] = max(acked.get(run_id, -1), int(seq))
        return acked


def _child_env(segment_rows: int, flush_interval: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TRACEKIT_HOME", None)
    env["TRACEKIT_SEGMENT_ROWS"] = str(segment_rows)
    env["TRACEKIT_FLUSH_INTERVAL"] = flush_interval
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _rows(store: Path) -> list[tuple[str, str, int, str, str | None, str | None]]:
    con = tracekit.connect(store)
    try:
        return con.execute(
            "SELECT event_id, run_id, seq, kind, name, args FROM events ORDER BY run_id, seq"
        ).fetchall()
    finally:
        con.close()


def _check_store(store: Path, acked: dict[str, int], context: str) -> int:
    """Every acknowledged event present once, each run's seqs gap-free from 0; returns rows."""
    rows = _rows(store)
    event_ids = [r[0] for r in rows]
    assert len(set(event_ids)) == len(event_ids), f"{context}: duplicate event_id"
    by_run: dict[str, list[int]] = {}
    for event_id, run_id, seq, kind, name, args in rows:
        by_run.setdefault(run_id, []).append(seq)
        if kind == "progress":
            assert name == f"s{seq}", f"{context}: row {event_id} seq {seq} is named {name}"
        elif kind == "tool_call":
            assert json.loads(args)["seq"] == seq, f"{context}: {event_id} {args[:80]}"
        elif seq == 0:
            assert kind == "run_start", f"{context}: run {run_id} seq 0 is {kind}"
    for run_id, seqs in by_run.items():
        assert len(set(seqs)) == len(seqs), f"{context}: run {run_id} has a seq twice"
        assert seqs == list(range(len(seqs))), (
            f"{context}: run {run_id} seqs have a gap: "
            f"{sorted(set(range(max(seqs) + 1)) - set(seqs))[:10]}"
        )
    for run_id, seq in acked.items():
        have = len(by_run.get(run_id, []))
        assert have > seq, (
            f"{context}: run {run_id} acknowledged up to seq {seq} but only {have} rows survive"
        )
    return len(rows)


def _kill_state(store: Path) -> str:
    """What the store looked like at the kill (for failure messages)."""
    segs = sorted(p.name for p in (store / "segments").glob("*.arrows"))
    parts = {p.name[5:-8] for p in (store / "events").glob("date=*/part-*.parquet")}
    tmp = list((store / "events").glob("date=*/.tmp-part-*"))
    mid = [s for s in segs if s[:-7] in parts]
    return f"segments={len(segs)} parts={len(parts)} tmp_parquet={len(tmp)} mid_compaction={mid}"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_loses_no_acknowledged_event(tmp_path: Path, trial: int) -> None:
    rng = random.Random(1000 + trial)
    store = tmp_path / "store"
    env = _child_env(rng.choice([200, 500, 800]), rng.choice(["0.002", "0.01", "0.05"]))
    child = Child(store, 1000 + trial, "loop", env, tmp_path)
    try:
        assert child.ready.wait(60), "child never became ready"
        assert child.proc.poll() is None, f"child exited early: {child.lines[-5:]}"
        # from just after the first ack to well into the run, across rotations and compactions
        time.sleep(rng.choice([rng.uniform(0.0, 0.05), rng.uniform(0.05, 1.2)]))
    finally:
        stderr = child.kill_and_wait()
    assert child.proc.returncode == -signal.SIGKILL, stderr
    assert "flush-failed" not in child.lines, stderr
    acked = child.acks()
    assert acked, "the child acknowledged nothing"
    state = _kill_state(store)
    context = f"trial {trial} ({state})"

    # the dead writer's segments are readable before recovery ...
    before = _check_store(store, acked, context + " before recover")
    segments_left = len(list((store / "segments").glob("*.arrows")))
    with warnings.catch_warnings():
        warnings.simplefilter("error", tracekit.TracekitWarning)
        recovered, _ = tracekit.recover(store)
    assert recovered == segments_left
    assert not list((store / "segments").glob("*.arrows")), "recover left a segment behind"
    # ... and after recovery everything is Parquet, with the same rows
    after = _check_store(store, acked, context + " after recover")
    assert after == before
    assert list((store / "events").glob("date=*/part-*.parquet"))
    # recovering again is a no-op
    assert tracekit.recover(store) == (0, 0)
    assert _check_store(store, acked, context + " second recover") == before


def _batch_ends(path: Path) -> tuple[list[int], list[int]]:
    """Byte offset where each record batch of a segment ends, and its row count."""
    ends, rows = [], []
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_stream(source)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            ends.append(source.tell())
            rows.append(batch.num_rows)
    return ends, rows


@pytest.mark.parametrize("seed", range(4))
def test_truncated_segment_keeps_every_complete_batch(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    source = tmp_path / "source"
    child = Child(source, seed, "batches", _child_env(1_000_000, "30"), tmp_path)
    assert child.ready.wait(60), "batches child never finished"
    stderr = child.kill_and_wait()
    assert child.proc.returncode == -signal.SIGKILL, stderr
    (segment,) = list((source / "segments").glob("*.arrows"))
    ends, rows = _batch_ends(segment)
    assert len(ends) == 6, f"expected one record batch per flush, got {rows}"
    acked = child.acks()
    (run_id,) = acked
    assert sum(rows) == acked[run_id] + 1

    data = segment.read_bytes()
    cut = rng.randint(ends[-2] + 1, ends[-1] - 1)  # inside the last batch
    store = tmp_path / "store"
    (store / "segments").mkdir(parents=True)
    cut_path = store / "segments" / segment.name
    cut_path.write_bytes(data[:cut])
    keep = sum(rows[:-1])

    with warnings.catch_warnings():
        warnings.simplefilter("error", tracekit.TracekitWarning)
        seqs = [r[2] for r in _rows(store)]
    assert seqs == list(range(keep)), f"cut at {cut} of {len(data)}: live view kept {len(seqs)}"

    assert tracekit.recover(store) == (1, keep)
    assert not cut_path.exists()
    seqs = [r[2] for r in _rows(store)]
    assert seqs == list(range(keep))
    parts = list((store / "events").glob("date=*/part-*.parquet"))
    assert parts and all(p.name == f"part-{segment.stem}.parquet" for p in parts)


GARBAGE = b"this is not an Arrow stream nor a Parquet file\n" * 40


def _good_store(tmp_path: Path) -> tuple[Path, int]:
    """A store with one compacted segment and one live-looking (dead writer's) segment."""
    store = tmp_path / "store"
    child = Child(store, 7, "batches", _child_env(1_000_000, "30"), tmp_path)
    assert child.ready.wait(60)
    child.kill_and_wait()
    (run_id,) = child.acks()
    total = child.acks()[run_id] + 1
    # a second dead writer whose segment gets compacted: both Parquet and segments are read
    other = tmp_path / "other"
    child = Child(other, 8, "batches", _child_env(1_000_000, "30"), tmp_path)
    assert child.ready.wait(60)
    child.kill_and_wait()
    (run_id,) = child.acks()
    total += child.acks()[run_id] + 1
    assert tracekit.recover(other)[0] == 1
    for part in (other / "events").glob("date=*/*.parquet"):
        dest = store / "events" / part.parent.name / part.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(part.read_bytes())
    return store, total


@pytest.mark.parametrize("where", ["segment", "parquet"])
def test_foreign_file_is_skipped_with_one_warning(tmp_path: Path, where: str) -> None:
    store, total = _good_store(tmp_path)
    if where == "segment":
        foreign = store / "segments" / "0000-not-ours.arrows"
    else:
        day = next((store / "events").glob("date=*")).name
        foreign = store / "events" / day / "part-x.parquet"
    foreign.write_bytes(GARBAGE)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        con = tracekit.connect(store)
        count, distinct = con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM events"
        ).fetchone()
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        con.close()
    assert (count, distinct, runs) == (total, total, 2)
    ours = [w for w in caught if issubclass(w.category, tracekit.TracekitWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert str(foreign) in str(ours[0].message)
    assert foreign.read_bytes() == GARBAGE, "the foreign file must be left on disk untouched"


def test_recover_leaves_a_foreign_segment_in_place(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "segments").mkdir(parents=True)
    foreign = store / "segments" / "0000-not-ours.arrows"
    foreign.write_bytes(GARBAGE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recovered = tracekit.recover(store)
    messages = [str(w.message) for w in caught if issubclass(w.category, tracekit.TracekitWarning)]
    assert len(messages) == 1 and str(foreign) in messages[0], messages
    assert foreign.exists(), f"recover() returned {recovered} and deleted {foreign}"
    assert foreign.read_bytes() == GARBAGE
