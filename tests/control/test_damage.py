"""A damaged control store fails closed, and a halt still reaches every worker.

Real damage to the SQLite file under a running guarded worker (another process): truncated to
0 bytes, its pages overwritten with garbage, an empty SQLite database written over it (same
inode). Every guarded call is refused within the staleness bound, a new guard refuses to start
on it, and `tracekit halt` writes the break-glass file instead and says so.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tracekit

WORKER = Path(__file__).with_name("damage_worker.py")


def _store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    tracekit.configure(store=store, guard=tracekit.Guard())
    with tracekit.run(tenant="setup"):
        pass
    tracekit.shutdown()
    tracekit.configure(store=tmp_path / "elsewhere", guard=False)
    return store


def _worker(store: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(WORKER), str(store), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().split()[1] == "ready"
    return proc


def _lines(proc: subprocess.Popen[str]) -> list[tuple[float, str]]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return [(float(line.split()[0]), line.split(" ", 1)[1]) for line in out.splitlines()]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL")}
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def _damage(path: Path, how: str, tmp_path: Path) -> None:
    if how == "truncated":
        os.truncate(path, 0)
    elif how == "garbage":
        with open(path, "r+b") as fh:
            fh.write(os.urandom(os.path.getsize(path)))
    elif how == "garbage pages":  # the header kept: only the pages behind it
        with open(path, "r+b") as fh:
            fh.seek(100)
            fh.write(os.urandom(os.path.getsize(path) - 100))
    else:  # an empty SQLite database over it, in place (the same inode)
        empty = tmp_path / "empty.db"
        con = sqlite3.connect(empty)
        con.execute("CREATE TABLE t (x)")
        con.commit()
        con.close()
        with open(path, "r+b") as fh:
            fh.write(empty.read_bytes())
            fh.truncate()


@pytest.mark.parametrize("how", ["truncated", "garbage", "garbage pages", "empty database"])
def test_a_damaged_store_refuses_every_call_and_the_halt_still_lands(
        tmp_path: Path, how: str) -> None:
    store = _store(tmp_path)
    worker = _worker(store, 3.0)
    time.sleep(0.5)
    inode = os.stat(store / "control.db").st_ino
    damaged_at = time.time()
    _damage(store / "control.db", how, tmp_path)
    assert os.stat(store / "control.db").st_ino == inode
    time.sleep(0.5)
    halted = _cli("halt", "tenant", "acme", "--reason", "refund loop", "--store", str(store))
    lines = _lines(worker)
    after = [what for when, what in lines if when > damaged_at + 1.0]  # the staleness bound
    assert after and all(what.startswith("refused store") for what in after), after[:3]
    assert any(what == "ok" for when, what in lines if when < damaged_at)
    assert halted.returncode == 0, halted.stderr
    assert "break-glass file" in halted.stdout and "damaged" in halted.stdout
    status = _cli("status", "--store", str(store))
    assert status.returncode == 0 and "UNAVAILABLE" in status.stdout
    assert "halt:tenant:acme" in status.stdout
    # a guard that starts now refuses too: it never initialises over the damaged file
    tracekit.configure(store=store, guard=tracekit.Guard())
    try:
        with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="other"):
            pass
        assert info.value.level == "store" and "damaged" in info.value.reason
    finally:
        tracekit.configure(store=tmp_path / "elsewhere", guard=False)
    assert (store / "control.db").stat().st_size < 10**6  # left as it was, for inspection


def test_a_halt_the_store_cannot_take_reaches_every_worker_through_the_break_glass_file(
        tmp_path: Path) -> None:
    store = _store(tmp_path)
    worker = _worker(store, 3.0)
    holder = sqlite3.connect(store / "control.db", timeout=5)
    holder.execute("BEGIN EXCLUSIVE")  # the store cannot take a write: locked
    try:
        halted = _cli("halt", "tenant", "acme", "--reason", "refund loop", "--store",
                      str(store))
        written_at = time.time()
    finally:
        holder.rollback()
        holder.close()
    assert halted.returncode == 0, halted.stderr
    assert "break-glass file" in halted.stdout and "locked" in halted.stdout
    lines = _lines(worker)
    after = [what for when, what in lines if when > written_at + 1.0]
    assert after and all(what.startswith("refused tenant refund loop") for what in after), after
    lifted = _cli("unhalt", "tenant", "acme", "--store", str(store))
    assert lifted.returncode == 0 and "break-glass" in lifted.stdout, lifted.stderr
    assert not (store / "control.halts.json").exists()


def test_init_never_overwrites_a_damaged_store_and_the_repair_in_the_readme_works(
        tmp_path: Path) -> None:
    store = _store(tmp_path)
    _damage(store / "control.db", "garbage", tmp_path)
    refused = _cli("status", "--init", "--store", str(store))
    assert refused.returncode != 0 and "damaged" in refused.stderr, refused
    assert "Traceback" not in refused.stderr
    for name in ("control.db", "control.db-wal", "control.db-shm"):  # moved aside
        if (store / name).exists():
            (store / name).rename(store / f"{name}.damaged")
    assert _cli("status", "--init", "--store", str(store)).returncode == 0
    halted = _cli("halt", "tenant", "acme", "--reason", "refund loop", "--store", str(store))
    assert halted.returncode == 0 and "break-glass" not in halted.stdout, halted
    tracekit.configure(store=store, guard=tracekit.Guard())
    try:
        with pytest.raises(tracekit.Halted) as info, tracekit.run(tenant="acme"):
            pass
        assert info.value.level == "tenant"
    finally:
        tracekit.configure(store=tmp_path / "elsewhere", guard=False)
