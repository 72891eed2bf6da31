"""The CLI as the on-call engineer runs it: real subprocesses against a real store."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tracekit.cli import cli, parse_since

ROOT = Path(__file__).resolve().parent.parent
BUNDLE_COMMANDS = {"replay", "make-test"}


def tk(
    *args: str, store: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tracekit", *args]
    if store is not None:
        cmd += ["--store", str(store)]
    env = {k: v for k, v in os.environ.items() if k != "TRACEKIT_HOME"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    store = tmp_path_factory.mktemp("cli") / "store"
    result = tk("demo", "--no-guard", store=store)
    assert result.returncode == 0, result.stderr
    match = re.search(r"The runaway: (run_\w+) tried the same refund 40 times", result.stdout)
    assert match, result.stdout
    return store, match.group(1)


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, command in cli.commands.items():
        assert command.help and len(command.help.strip()) > 20, name
        assert f"tracekit {name}" in readme, f"`tracekit {name}` is missing from README.md"
        result = tk(name, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, name
        if name not in BUNDLE_COMMANDS:  # these read an incident bundle, not a store
            assert "--store" in result.stdout, f"{name} has no --store option"


def test_demo_records_healthy_runs_and_a_runaway(demo_store: tuple[Path, str]) -> None:
    store, runaway = demo_store
    out = tk("query", "SELECT tenant, steps, tool_calls, status FROM runs WHERE run_id = "
             f"'{runaway}'", "--format", "json", store=store)
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert row["tenant"] == "acme" and row["steps"] == 41 and row["tool_calls"] == 41
    refunds = tk("query", "SELECT count(*) AS n, count(DISTINCT args) AS d FROM tool_calls "
                 f"WHERE run_id = '{runaway}' AND tool = 'issue_refund'", "--format", "csv",
                 store=store)
    assert refunds.stdout.splitlines()[1] == "40,1"
    healthy = tk("runs", "--status", "ok", "--format", "json", "--limit", "100", store=store)
    runs = json.loads(healthy.stdout)
    assert len(runs) == 9  # 4 tickets, 4 sub-agents, the runaway
    assert sum(1 for r in runs if r["parent_run_id"]) == 4


def test_demo_never_writes_the_payment_key(demo_store: tuple[Path, str]) -> None:
    store, _ = demo_store
    out = tk("query", "SELECT count(*) FROM events WHERE args LIKE '%sk-demo%' OR "
             "output LIKE '%sk-demo%'", "--format", "csv", store=store)
    assert out.stdout.splitlines()[1] == "0"
    redacted = tk("query", "SELECT count(*) FROM events WHERE args LIKE '%[REDACTED]%' AND "
                  "json_extract(attrs, '$.redacted')::INT >= 1", "--format", "csv", store=store)
    assert int(redacted.stdout.splitlines()[1]) == 42  # every issue_refund call
    for path in store.rglob("*"):
        if path.is_file():
            assert b"sk-demo" not in path.read_bytes(), path


def test_show_prints_the_timeline_and_accepts_a_prefix(demo_store: tuple[Path, str]) -> None:
    store, runaway = demo_store
    out = tk("show", runaway[:-3], store=store)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["seq", "ts", "step", "kind"]
    assert "run_start" in lines[2] and "run_end" in lines[-1]
    assert sum("issue_refund" in line and "tool_call" in line for line in lines) == 40


def test_unknown_run_suggests_close_ids_in_one_line(demo_store: tuple[Path, str]) -> None:
    store, runaway = demo_store
    typo = runaway[:-1] + ("x" if runaway[-1] != "x" else "y")
    out = tk("show", typo, store=store)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert f"no run '{typo}'" in out.stderr and runaway in out.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("query", "SELECT * FROM nope"), "query failed: Catalog Error"),
        (("runs", "--since", "yesterday"), "neither a duration"),
        (("query", "SELECT 1", "--format", "xml"), "'xml' is not one of"),
        (("runs", "--limit", "0"), "--limit"),
    ],
)
def test_bad_input_is_one_line_naming_it(demo_store: tuple[Path, str], args: tuple[str, ...],
                                        expected: str) -> None:
    store, _ = demo_store
    out = tk(*args, store=store)
    assert out.returncode != 0
    assert expected in out.stderr and "Traceback" not in out.stderr


def test_missing_store_says_how_to_get_one(tmp_path: Path) -> None:
    out = tk("runs", store=tmp_path / "nothing-here")
    assert out.returncode == 1
    assert "no tracekit store at" in out.stderr and "tracekit demo" in out.stderr
    assert not (tmp_path / "nothing-here").exists()  # reading never creates a store


def test_query_formats(demo_store: tuple[Path, str]) -> None:
    store, _ = demo_store
    sql = "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY kind"
    table = tk("query", sql, store=store).stdout.splitlines()
    as_csv = tk("query", sql, "--format", "csv", store=store).stdout.splitlines()
    as_json = json.loads(tk("query", sql, "--format", "json", store=store).stdout)
    assert table[0].split() == ["kind", "n"] and set(table[1]) <= {"-", " "}
    assert as_csv[0] == "kind,n" and len(as_csv) == len(table) - 1 == len(as_json) + 1
    assert {r["kind"] for r in as_json} >= {"run_start", "prompt", "model_output", "tool_call"}


def test_store_from_environment(demo_store: tuple[Path, str], tmp_path: Path) -> None:
    store, runaway = demo_store
    env = {**os.environ, "TRACEKIT_HOME": str(store)}
    out = subprocess.run([sys.executable, "-m", "tracekit", "runs", "--tenant", "acme"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert out.returncode == 0 and runaway in out.stdout


def test_recover_compacts_a_dead_writers_segment(tmp_path: Path) -> None:
    store = tmp_path / "store"
    code = (
        "import os, tracekit\n"
        f"tracekit.configure(store={str(store)!r})\n"
        "with tracekit.run(tenant='acme') as r:\n"
        "    for i in range(25): r.progress(f'p{i}')\n"
        "assert tracekit.flush()\n"
        "os._exit(0)  # no clean shutdown: the segment stays behind\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert list((store / "segments").glob("*.arrows"))
    out = tk("recover", store=store)
    assert out.returncode == 0 and "recovered 27 events from 1 dead writer" in out.stdout
    assert not list((store / "segments").glob("*.arrows"))
    count = tk("query", "SELECT count(*) FROM events", "--format", "csv", store=store)
    assert count.stdout.splitlines()[1] == "27"


def test_parse_since() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2026-11-30T08:00", now) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert parse_since(None, now) is None


def test_guarded_demo_contains_the_runaway(tmp_path: Path) -> None:
    store = tmp_path / "store"
    out = tk("demo", store=store)
    assert out.returncode == 0, out.stderr
    match = re.search(r"The runaway: (run_\w+) kept re-issuing the same refund", out.stdout)
    assert match and "after 3 refund attempts" in out.stdout, out.stdout
    runaway = match.group(1)
    rows = json.loads(tk("query", "SELECT status FROM runs WHERE run_id = "
                         f"'{runaway}'", "--format", "json", store=store).stdout)
    assert rows == [{"status": "halted"}]
    fired = tk("query", "SELECT count(*) FROM tool_calls WHERE tool = 'issue_refund' AND "
               f"run_id = '{runaway}'", "--format", "csv", store=store)
    assert fired.stdout.splitlines()[1] == "3"  # the 4th identical refund never ran
    status = tk("status", store=store)
    assert f"halt:run:{runaway}" in status.stdout and "repeats" in status.stdout


def test_halt_unhalt_status_round_trip(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # a halt into a store no agent reads would be a false comfort: refused without --init
    wrong = tk("halt", "tenant", "acme", "--reason", "refund loop", store=store)
    assert wrong.returncode == 1 and "no control store at" in wrong.stderr
    assert "--init" in wrong.stderr and not (store / "control.db").exists()
    out = tk("halt", "tenant", "acme", "--reason", "refund loop", "--by", "oncall-ana",
             "--init", store=store)
    assert out.returncode == 0 and "halt:tenant:acme" in out.stdout, out.stderr
    assert str(store / "control.db") in out.stdout  # says where the halt went
    assert tk("halt", "tool", "issue_refund", "--reason", "frozen", store=store).returncode == 0
    report = json.loads(tk("status", "--json", store=store).stdout)
    keys = [h["key"] for h in report["halts"]]
    assert keys == ["halt:tenant:acme", "freeze:tool:issue_refund"]
    first = report["halts"][0]
    assert first["by"] == "oncall-ana" and first["reason"] == "refund loop"
    assert tk("unhalt", "tenant", "acme", store=store).returncode == 0
    again = tk("unhalt", "tenant", "acme", store=store)
    assert again.returncode == 1 and "is not halted" in again.stderr
    report = json.loads(tk("status", "--json", store=store).stdout)
    assert [h["key"] for h in report["halts"]] == ["freeze:tool:issue_refund"]


def test_unhalt_refuses_while_the_release_is_halted(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert tk("demo", store=store).returncode == 0  # records acme's release in the control store
    from tracekit._demo import DEMO_RELEASE

    release = DEMO_RELEASE.release_id
    assert tk("halt", "release", release, "--reason", "bad prompt", store=store).returncode == 0
    assert tk("halt", "tenant", "acme", "--reason", "loop", store=store).returncode == 0
    refused = tk("unhalt", "tenant", "acme", store=store)
    assert refused.returncode == 1 and "roll the release back first" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert tk("unhalt", "release", release, store=store).returncode == 0
    assert tk("unhalt", "tenant", "acme", store=store).returncode == 0


def test_halt_needs_a_reason_and_a_target(tmp_path: Path) -> None:
    assert tk("status", "--init", store=tmp_path / "s").returncode == 0
    no_reason = tk("halt", "tenant", "acme", "--reason", " ", store=tmp_path / "s")
    assert no_reason.returncode == 1 and "needs a reason" in no_reason.stderr
    no_target = tk("halt", "run", "--reason", "x", store=tmp_path / "s")
    assert no_target.returncode == 1 and "needs its name" in no_target.stderr


def test_scope_reports_what_landed(demo_store: tuple[Path, str]) -> None:
    store, runaway = demo_store
    out = tk("scope", "--run", runaway, "--json", store=store)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    [refunds] = [r for r in report["rows"] if r["action"] == "issue_refund"]
    assert refunds["fired"] == 1 and refunds["duplicates_suppressed"] == 39
    assert refunds["amount_fired"] == 120.0 and refunds["currency"] == "USD"
    assert refunds["reversible"] == 1 and refunds["may_have_fired"] == 0
    table = tk("scope", "--tenant", "globex", "--since", "1d", store=store)
    assert "customer-email" in table.stdout and "irreversible" in table.stdout
    missing = tk("scope", store=store)
    assert missing.returncode == 1 and "needs --run, --tenant or --release" in missing.stderr


def test_show_full_does_not_pad_every_row_to_the_widest_payload(
        demo_store: tuple[Path, str]) -> None:
    store, runaway = demo_store
    out = tk("show", runaway, "--full", store=store)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()[2:]
    widest = max(len(line) for line in lines)
    short = [line for line in lines if "run_start" in line or "progress" in line]
    assert widest > 500  # the prompts, whole
    assert short and all(len(line) < 200 for line in short), max(map(len, short))


def test_an_ambiguous_prefix_names_the_runs_it_could_be(demo_store: tuple[Path, str]) -> None:
    store, _ = demo_store
    out = tk("show", "run_", store=store)
    assert out.returncode == 1
    assert "is the start of more than 5 runs" in out.stderr or "is the start of" in out.stderr
    assert "give more of the id" in out.stderr and "no run" not in out.stderr
    assert out.stderr.count("\n") == 1
