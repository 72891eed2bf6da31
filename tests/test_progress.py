"""Long operations show a progress bar on a terminal and stay quiet otherwise."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tracekit._base.progressbar import Progress
from tracekit._demo import run_demo


def test_quiet_when_the_output_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACEKIT_PROGRESS", raising=False)
    out = io.StringIO()
    with Progress(3, "working", out) as bar:
        for _ in range(3):
            bar.advance("step")
    assert out.getvalue() == ""


def test_drawn_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACEKIT_PROGRESS", "1")
    out = io.StringIO()
    with Progress(4, "working", out) as bar:
        for _ in range(4):
            bar.advance("step")
    text = out.getvalue()
    assert "working [" in text and "4/4" in text and "#" * 24 in text
    assert text.endswith("\r\x1b[2K")  # the line is cleared for the command's own output


def _export(store: Path, run_id: str, name: str, tty: bool) -> str:
    cmd = [sys.executable, "-m", "tracekit", "export", "--run", run_id, "--incident", name,
           "--store", str(store), "--out", str(store.parent / "fx")]
    env = {k: v for k, v in os.environ.items() if k != "TRACEKIT_PROGRESS"}
    if not tty:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr
    main, secondary = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_export_draws_its_bar_on_a_terminal_only(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "store", runaway_steps=3, guarded=False)
    runaway = result.runaway["run_id"]
    on_terminal = _export(tmp_path / "store", runaway, "on-tty", tty=True)
    assert "exporting on-tty [" in on_terminal and "4/4" in on_terminal
    piped = _export(tmp_path / "store", runaway, "piped", tty=False)
    assert "[" not in piped and "\r" not in piped and "wrote" in piped
