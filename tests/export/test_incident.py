"""Export an incident bundle and replay it through today's guard (policy replay)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import tracekit
from tracekit._demo import DEMO_GUARD


def tk(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL")}
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An unguarded demo store in its own folder, and the runaway's run id."""
    cwd = tmp_path_factory.mktemp("incident")
    out = tk(cwd, "demo", "--no-guard")
    assert out.returncode == 0, out.stderr
    match = re.search(r"The runaway: (run_\w+)", out.stdout)
    assert match
    return cwd, match.group(1)


@pytest.fixture
def bundle(demo: tuple[Path, str]) -> Iterator[Path]:
    cwd, runaway = demo
    out = tk(cwd, "export", "--run", runaway, "--incident", "incident-42", "--force",
             "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    yield cwd / "fixtures" / "incidents" / "incident-42"


def test_export_writes_a_complete_bundle(bundle: Path, demo: tuple[Path, str]) -> None:
    _, runaway = demo
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["events.jsonl", "events.parquet", "ledger.jsonl", "ledger.parquet",
                     "manifest.json"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["name"] == "incident-42" and manifest["runs"] == [runaway]
    assert manifest["tenants"] == ["acme"] and manifest["bundle_version"] == 1
    assert manifest["release"]["release_id"] == tracekit._demo.DEMO_RELEASE.release_id
    summary = manifest["summary"]
    assert summary["effects_fired"] == 1 and summary["duplicates_suppressed"] == 39
    events = pq.read_table(bundle / "events.parquet")
    assert set(events["run_id"].to_pylist()) == {runaway}
    assert sorted(events["seq"].to_pylist()) == list(range(events.num_rows))
    # prompts come last, in row groups of their own: policy replay skips them unread
    kinds = events["kind"].to_pylist()
    assert kinds.index("prompt") == len(kinds) - kinds.count("prompt")
    meta = pq.read_metadata(bundle / "events.parquet")
    kind_column = events.schema.get_field_index("kind")
    stats = [meta.row_group(i).column(kind_column).statistics for i in range(meta.num_row_groups)]
    assert (stats[-1].min, stats[-1].max) == ("prompt", "prompt")
    ledger = pq.read_table(bundle / "ledger.parquet")
    assert ledger["status"].to_pylist().count("fired") == 1
    for path in bundle.iterdir():
        assert b"sk-demo" not in path.read_bytes()


def test_export_takes_the_sub_agents_along(demo: tuple[Path, str]) -> None:
    cwd, _ = demo
    con = tracekit.connect(cwd / ".tracekit")
    parent, child = con.execute("SELECT parent_run_id, run_id FROM runs WHERE parent_run_id "
                                "IS NOT NULL ORDER BY run_id LIMIT 1").fetchone()
    con.close()
    assert tk(cwd, "export", "--run", parent, "--incident", "with-sub", "--force").returncode == 0
    manifest = json.loads((cwd / "fixtures/incidents/with-sub/manifest.json").read_text())
    assert manifest["runs"] == sorted([parent, child])


def test_export_scrubs_secrets_again(tmp_path: Path) -> None:
    store = tmp_path / "store"
    tracekit.configure(store=store)
    with tracekit.run(tenant="acme") as run:
        run.progress("customer said: my pin is PIN-4242")
    tracekit.shutdown()
    tracekit.configure(store=store, redact={"patterns": [r"PIN-\d+"]})
    try:
        path = tracekit.export_incident([run.run_id], "pins", tmp_path / "out", store)
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "elsewhere")
    for file in path.iterdir():
        assert b"PIN-4242" not in file.read_bytes()


@pytest.mark.parametrize(("args", "expected"), [
    (("--run", "run_nope", "--incident", "x"), "no run 'run_nope'"),
    (("--run", "run_", "--incident", "bad name!"), "must match [A-Za-z0-9._-]+"),
    (("--run", "run_", "--incident", "../escape"), "must match [A-Za-z0-9._-]+"),
])
def test_export_bad_input_is_one_line(demo: tuple[Path, str], args: tuple[str, ...],
                                      expected: str) -> None:
    out = tk(demo[0], "export", *args)
    assert out.returncode == 1 and expected in out.stderr and "Traceback" not in out.stderr


def test_an_existing_bundle_needs_force(bundle: Path, demo: tuple[Path, str]) -> None:
    cwd, runaway = demo
    again = tk(cwd, "export", "--run", runaway, "--incident", "incident-42")
    assert again.returncode == 1 and "pass --force" in again.stderr


def test_policy_replay_under_the_demo_guard_halts_at_the_fourth_refund(bundle: Path) -> None:
    verdict = tracekit.replay(bundle, guard=DEMO_GUARD)
    assert verdict.contained and verdict.signal == "repeats" and verdict.step == 5
    assert [e["tool"] for e in verdict.effects] == ["issue_refund"]  # fired once before
    assert 0 < verdict.spend_usd < 0.01


def test_policy_replay_without_the_bound_does_not_contain_it(bundle: Path) -> None:
    verdict = tracekit.replay(bundle, guard=tracekit.Guard())
    assert not verdict.contained and verdict.spend_usd > 0.1
    assert "NOT contained" in verdict.describe()
    by_cost = tracekit.replay(bundle, guard=tracekit.Guard(max_cost_usd=0.05))
    assert by_cost.contained and by_cost.signal == "cost"


def test_replay_opens_no_socket(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("policy replay opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for _ in range(3):  # and the same verdict every time
        verdict = tracekit.replay(bundle, guard=DEMO_GUARD)
        assert (verdict.step, verdict.signal, len(verdict.effects)) == (5, "repeats", 1)


def test_replay_cli_verdict_and_exit_code(bundle: Path, demo: tuple[Path, str]) -> None:
    cwd, _ = demo
    out = tk(cwd, "replay", "incident-42")  # no project guard here: the bundle's (none)
    assert out.returncode == 1 and "NOT contained" in out.stdout
    (cwd / "tracekit.toml").write_text("[guard]\nmax_repeats = 3\n")
    try:
        contained = tk(cwd, "replay", "incident-42", "--json")
    finally:
        (cwd / "tracekit.toml").unlink()
    assert contained.returncode == 0, contained.stderr
    assert json.loads(contained.stdout)["signal"] == "repeats"
    missing = tk(cwd, "replay", "incident-404")
    assert missing.returncode == 1 and "is not an incident bundle" in missing.stderr
