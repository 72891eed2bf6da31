"""Incident to test, timed: export, make-test and the generated test, for a 10k-event incident.

    python benchmarks/bench_incident.py [--steps 2500] [--out benchmarks/out/incident.json]

The demo's runaway, unguarded, with ``--steps`` refunds (four events a step: about 10k events),
is exported, turned into a test under the demo's bounds (policy replay, then agent replay with
``--entrypoint``), and the test is run by pytest in a fresh process. Each is timed end to end as
a user runs it (the CLI in a new process), median of 3. The generated test is timed twice: with
every pytest plugin installed here (hypothesis's alone takes about a second to import), and with
plugin autoload off and only tracekit's plugin. A new Python process that imports nothing is
timed too, as the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS_S = {"export": 1.0, "make-test": 1.0, "generated test": 2.0,
             "generated test, tracekit's plugin only": 2.0,
             "make-test --entrypoint": 1.0, "generated agent-replay test": 2.0,
             "generated agent-replay test, tracekit's plugin only": 2.0,
             "postmortem --run (HTML page)": 2.0,
             "python -c pass": None, "python -c 'import tracekit'": None}


def _timed(cmd: list[str], cwd: Path, **extra: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL")}
    env.update(extra)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "incident.json")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tracekit-bench-incident-"))
    tk = [sys.executable, "-m", "tracekit"]
    out = subprocess.run([*tk, "demo", "--no-guard", "--runaway-steps", str(args.steps)],
                         cwd=work, capture_output=True, text=True, check=True)
    runaway = re.search(r"The runaway: (run_\w+)", out.stdout)
    assert runaway is not None
    (work / "tests/incidents").mkdir(parents=True)
    (work / "tests/incidents/tracekit.toml").write_text(
        "[guard]\nmax_repeats = 3\nmax_steps = 25\n")
    import pyarrow.parquet as pq

    times: dict[str, list[float]] = {name: [] for name in TARGETS_S}
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/incidents"]
    alone = [*pytest, "-p", "tracekit.pytest_plugin"]
    no_autoload = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    agent = ["--entrypoint", "tracekit._demo:handle_ticket"]
    for _ in range(3):
        times["export"].append(_timed([*tk, "export", "--run", runaway.group(1), "--incident",
                                       "big", "--force"], work))
        times["make-test"].append(_timed([*tk, "make-test", "big", "--force"], work))
        times["generated test"].append(_timed(pytest, work))
        times["generated test, tracekit's plugin only"].append(
            _timed(alone, work, **no_autoload))
        times["make-test --entrypoint"].append(_timed([*tk, "make-test", "big", "--force",
                                                       *agent], work))
        times["generated agent-replay test"].append(_timed(pytest, work))
        times["generated agent-replay test, tracekit's plugin only"].append(
            _timed(alone, work, **no_autoload))
        times["postmortem --run (HTML page)"].append(_timed(
            [*tk, "postmortem", "--run", runaway.group(1), "--html", "pm.html"], work))
        times["python -c pass"].append(_timed([sys.executable, "-c", "pass"], work))
        times["python -c 'import tracekit'"].append(
            _timed([sys.executable, "-c", "import tracekit"], work))
    result_in = _in_process(work, runaway.group(1))
    events = pq.read_metadata(work / "fixtures/incidents/big/events.parquet").num_rows
    result = {"events": events, "date": time.strftime("%Y-%m-%d"),
              **{k: statistics.median(v) for k, v in times.items()},
              "in-process": result_in}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"| step ({events:,}-event incident, CLI in a new process) | median of 3 | target |")
    print("|---|---|---|")
    for name, target in TARGETS_S.items():
        if target is None:
            print(f"| {name} | {result[name]:.2f} s | |")
            continue
        verdict = "met" if result[name] < target else "MISSED"
        print(f"| {name} | {result[name]:.2f} s | < {target:g} s: {verdict} |")
    print("\nin-process (tracekit imported once), median of 3: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in result_in.items()))
    return 0


_IN_PROCESS = """
import json, statistics, sys, time
import tracekit
from tracekit._report.postmortem import build_postmortem, render_html
from tracekit._contain.settings import project_guard
run_id, guard = sys.argv[1], project_guard("tests/incidents")
jobs = {
    "export": lambda: tracekit.export_incident([run_id], "big", force=True),
    "policy replay": lambda: tracekit.replay("fixtures/incidents/big", guard=guard),
    "agent replay": lambda: tracekit.replay("fixtures/incidents/big", guard=guard,
                                            entrypoint="tracekit._demo:handle_ticket"),
    "postmortem page": lambda: render_html(build_postmortem(run_id)),
}
out = {}
for name, job in jobs.items():
    runs = []
    for _ in range(3):
        t0 = time.perf_counter(); job(); runs.append(time.perf_counter() - t0)
    out[name] = statistics.median(runs)
print(json.dumps(out))
"""


def _in_process(work: Path, run_id: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _IN_PROCESS, run_id], cwd=work, check=True,
                         capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.exit(main())
