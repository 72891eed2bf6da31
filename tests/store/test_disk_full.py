"""A full disk: the ledger never tears, nothing acknowledged is lost, the guard is told.

The store lives on a real tmpfs of a few MiB (mounted by the test; skipped where it cannot
mount one), filled to the last byte by a filler file and freed by deleting it. Rows are made
larger than a page so that the slack in a file's last page cannot take them. The control store
lives elsewhere: this is the disk of the trace and the ledger filling up.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracekit
from tracekit._capture.state import PROCESS

BIG = "x" * 6000  # larger than a page: a full disk cannot take a row that carries it
FIRED: list[str] = []


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the disk says ENOSPC."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    with open(filler, "wb", buffering=0) as fh:
        chunk = b"\0" * 65536
        while True:
            try:
                fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (4096, 512, 1):  # the last pages too
            while True:
                try:
                    fh.write(b"\0" * size)
                except OSError:
                    break
    return filler


@tracekit.tool(writes=True, destination=lambda order_id: f"payments/{BIG}")
def refund(order_id: str) -> str:
    FIRED.append(order_id)
    return f"refunded {order_id}"


def ledger_rows(store: Path) -> list[tuple[str, str]]:
    con = tracekit.connect(store)
    rows = con.execute("SELECT call_id, status FROM ledger_history ORDER BY ts").fetchall()
    return [(str(a), str(b)) for a, b in rows]


def configure(disk: Path, tmp_path: Path, **guard: object) -> Path:
    store = disk / "store"
    control = f"sqlite:{tmp_path / 'control.db'}"
    tracekit.configure(store=store, control=control,
                       guard=tracekit.Guard(refresh_s=0.05, **guard) if guard else False)
    FIRED.clear()
    return store


def test_a_full_disk_refuses_the_write_before_it_fires_and_loses_no_later_row(
        disk: Path, tmp_path: Path) -> None:
    store = configure(disk, tmp_path)
    with tracekit.run(tenant="acme") as run:
        assert refund("o-1") == "refunded o-1"  # the segment is open and holds rows
        filler = fill(disk)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tracekit.TracekitWarning)
            with pytest.raises(tracekit.LedgerWriteFailed) as info:
                refund("o-2")
        assert "did not run" in str(info.value) and "No space left" in str(info.value)
        assert FIRED == ["o-1"]  # the effect did not run
        filler.unlink()  # space returns
        for i in range(3, 23):
            assert refund(f"o-{i}") == f"refunded o-{i}"
        assert refund("o-2") == "refunded o-2"  # the retry runs it: not DuplicateInFlight
        assert refund("o-2") == "refunded o-2"  # and only once
        run_id = run.run_id
    assert tracekit.shutdown()
    assert ["o-1", *(f"o-{i}" for i in range(3, 23)), "o-2"] == FIRED
    con = tracekit.connect(store)
    fired = con.execute(
        "SELECT count(*) FROM ledger_history WHERE run_id = ? AND status = 'fired'", [run_id]
    ).fetchone()
    assert fired == (22,)  # every acknowledged effect, after compaction
    dup = con.execute("SELECT count(*) FROM ledger_history WHERE status = "
                      "'suppressed_duplicate'").fetchone()
    assert dup == (1,)
    assert not list((store / "segments").glob("*")), "every segment compacted, none left"


def test_an_outcome_the_disk_cannot_take_is_kept_and_written_when_space_returns(
        disk: Path, tmp_path: Path) -> None:
    store = configure(disk, tmp_path)
    fillers: list[Path] = []

    @tracekit.tool(writes=True, destination=lambda order_id: f"payments/{BIG}")
    def refund_while_the_disk_fills(order_id: str) -> str:
        fillers.append(fill(disk))  # another process fills the disk while the effect runs
        return f"refunded {order_id}"

    with warnings.catch_warnings(), tracekit.run(tenant="acme") as run:
        warnings.simplefilter("ignore", tracekit.TracekitWarning)
        assert refund_while_the_disk_fills("o-1") == "refunded o-1"  # the agent is answered
        recorder = PROCESS.recorder()
        assert recorder.ledger.last_error is not None  # type: ignore[attr-defined]
        assert not tracekit.flush(0.5)  # the trace cannot be written either: flush says so
        fillers[0].unlink()
        assert tracekit.flush(10)  # recording resumes
        deadline = time.monotonic() + 10
        while recorder.ledger.last_error is not None and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        run_id = run.run_id
    assert tracekit.shutdown()
    statuses = [s for c, s in ledger_rows(store)]
    assert statuses == ["reserved", "fired"], statuses
    con = tracekit.connect(store)
    kinds = con.execute("SELECT kind FROM events WHERE run_id = ? ORDER BY seq",
                        [run_id]).fetchall()
    assert [k for (k,) in kinds][-2:] == ["tool_result", "run_end"]


def test_a_guarded_run_is_halted_while_its_trace_cannot_be_written_and_goes_on_after(
        disk: Path, tmp_path: Path) -> None:
    store = configure(disk, tmp_path, max_steps=1000)
    lookups: list[str] = []

    @tracekit.tool
    def lookup(text: str) -> int:
        lookups.append(text)
        return len(text)

    with warnings.catch_warnings(), tracekit.run(tenant="acme") as run:
        warnings.simplefilter("ignore", tracekit.TracekitWarning)
        lookup("before")
        filler = fill(disk)
        lookup(BIG)  # recorded in memory: the writer cannot write it
        assert not tracekit.flush(0.5)
        time.sleep(0.3)  # the guard's next refresh sees it
        with pytest.raises(tracekit.Halted) as info:
            lookup("while full")
        assert info.value.signal == "capture_failure" and info.value.level == "store"
        assert "No space left" in info.value.reason
        filler.unlink()
        assert tracekit.flush(10)
        time.sleep(0.3)
        lookup("after")
        run_id = run.run_id
    assert lookups == ["before", BIG, "after"]
    assert tracekit.shutdown()
    con = tracekit.connect(store)
    kinds = con.execute("SELECT kind, status, attrs FROM events WHERE run_id = ? AND kind IN "
                        "('tool_call', 'guard') ORDER BY seq", [run_id]).fetchall()
    # every call, and the refusal, recorded once space returned
    assert [(k, s) for k, s, _ in kinds] == [("tool_call", "started"), ("tool_call", "started"),
                                             ("guard", "halted"), ("tool_call", "started")]
    assert "capture_failure" in kinds[2][2]


def test_warn_lets_a_guarded_run_go_on_while_its_trace_waits_in_memory(
        disk: Path, tmp_path: Path) -> None:
    store = configure(disk, tmp_path, max_steps=1000, on_capture_failure="warn")

    @tracekit.tool
    def lookup(text: str) -> int:
        return len(text)

    with warnings.catch_warnings(), tracekit.run(tenant="acme") as run:
        warnings.simplefilter("ignore", tracekit.TracekitWarning)
        filler = fill(disk)
        lookup(BIG)
        assert not tracekit.flush(0.5)
        time.sleep(0.3)
        assert lookup("goes on") == 7
        filler.unlink()
        run_id = run.run_id
    assert tracekit.shutdown()
    con = tracekit.connect(store)
    n = con.execute("SELECT count(*) FROM events WHERE run_id = ? AND kind = 'tool_call'",
                    [run_id]).fetchone()
    assert n == (2,)


def test_on_capture_failure_is_validated_loudly() -> None:
    with pytest.raises(ValueError, match="'halt' or 'warn'"):
        tracekit.Guard(on_capture_failure="ignore")  # type: ignore[arg-type]
