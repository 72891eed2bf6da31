"""``export --force`` replaces a bundle without a moment where there is none: a process
SIGKILLed right after its first change to the bundle's folder leaves a bundle that loads."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tracekit
from tracekit._demo import run_demo
from tracekit._export.bundle import load_bundle, load_manifest

CHILD = textwrap.dedent('''
    import os, shutil, signal, sys
    from pathlib import Path
    import tracekit
    from tracekit._store import layout

    store, out, run_id, swap = sys.argv[1:5]
    target = Path(out) / "incident-x"

    def then_die(fn):
        """SIGKILL this process right after the first call that changes the bundle folder."""
        def wrapped(*args, **kwargs):
            result = fn(*args, **kwargs)
            if any(isinstance(a, (str, os.PathLike)) and Path(a) == target for a in args):
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return wrapped

    shutil.rmtree = then_die(shutil.rmtree)
    os.replace = then_die(os.replace)
    os.rename = then_die(os.rename)
    layout._exchange = then_die(layout._exchange) if swap == "exchange" else lambda a, b: False
    tracekit.configure(store=store, guard=False)
    tracekit.export_incident([run_id], "incident-x", out, store, force=True)
    print("not killed")
''')


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("swap")
    result = run_demo(root / "store", runaway_steps=6, guarded=False)
    healthy = result.runs[0]["run_id"]
    tracekit.configure(store=root / "elsewhere", guard=False)
    return root / "store", healthy, result.runaway["run_id"]


def _export_then_kill(tmp_path: Path, recorded: tuple[Path, str, str], swap: str) -> Path:
    store, first, second = recorded
    out = tmp_path / "fixtures"
    tracekit.export_incident([first], "incident-x", out, store)  # the bundle to replace
    proc = subprocess.run([sys.executable, "-c", CHILD, str(store), str(out), second, swap],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    return out / "incident-x"


def test_a_kill_during_the_swap_leaves_a_bundle(tmp_path: Path,
                                                recorded: tuple[Path, str, str]) -> None:
    _, first, second = recorded
    target = _export_then_kill(tmp_path, recorded, "exchange")
    manifest, events, _ = load_bundle(target)  # killed right after the swap: the new one
    assert second in manifest["runs"] and first not in manifest["runs"]
    assert events.num_rows > 0


def test_without_an_atomic_swap_the_old_bundle_is_kept_aside_and_named(
        tmp_path: Path, recorded: tuple[Path, str, str]) -> None:
    _, first, _ = recorded
    target = _export_then_kill(tmp_path, recorded, "aside")
    assert not target.exists()  # killed between moving the old aside and the new in
    with pytest.raises(ValueError, match="interrupted `tracekit export --force`") as info:
        load_manifest(target)
    aside = Path(str(info.value).split(" left the previous bundle at ")[1].split(";")[0])
    assert first in json.loads((aside / "manifest.json").read_text())["runs"]


def test_force_replaces_and_leaves_no_temporary(tmp_path: Path,
                                                recorded: tuple[Path, str, str]) -> None:
    store, first, second = recorded
    out = tmp_path / "fixtures"
    tracekit.export_incident([first], "incident-x", out, store)
    tracekit.export_incident([second], "incident-x", out, store, force=True)
    assert second in load_manifest(out / "incident-x")["runs"]
    assert sorted(p.name for p in out.iterdir()) == ["incident-x"]
