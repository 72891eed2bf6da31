"""make-test: an incident becomes a deterministic pytest file in the eval gate."""

from __future__ import annotations

import ast
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracekit._gate.maketest import HandEdited, make_test

ROOT = Path(__file__).resolve().parents[2]
GUARD_TOML = "[guard]\nmax_repeats = 3\nmax_steps = 25\n"
DEMO_AGENT = "tracekit._demo:handle_ticket"
STATEMENTS = ["Expr", "Import", "Import", "ImportFrom", "Assign", "Assign", "Assign", "Assign",
              "Assign", "Assign", "FunctionDef"]


def tk(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACEKIT_HOME", "TRACEKIT_CONTROL")}
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def pytest_in(cwd: Path, *args: str, seed: str = "0",
              **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed, **env_extra}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "incident", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_the_committed_incident_regenerates_to_the_same_bytes(tmp_path: Path) -> None:
    committed = (ROOT / "tests/incidents/test_incident_42.py").read_bytes()
    shutil.copy(ROOT / "tests/incidents/tracekit.toml", tmp_path / "tracekit.toml")
    made = make_test("incident-42", ROOT / "fixtures/incidents", tmp_path, entrypoint=DEMO_AGENT)
    assert made.verdict.contained and made.verdict.signal == "repeats"
    assert made.verdict.mode == "agent"
    generated = made.path.read_text()
    # the bundle path is relative to the test: compare everything else byte for byte
    expected = committed.decode().replace("'../../fixtures/incidents/incident-42'",
                                          repr(os.path.relpath(ROOT / "fixtures/incidents/"
                                                               "incident-42", tmp_path)))
    body = lambda text: text.split("\n", 1)[1]  # noqa: E731 - the digest line covers the path
    assert body(generated) == body(expected)
    again = make_test("incident-42", ROOT / "fixtures/incidents", tmp_path, entrypoint=DEMO_AGENT)
    assert not again.changed and again.path.read_text() == generated


def test_demo_runaway_to_eval_gate_end_to_end(tmp_path: Path) -> None:
    out = tk(tmp_path, "demo", "--no-guard")
    runaway = re.search(r"The runaway: (run_\w+)", out.stdout)
    assert runaway, out.stdout + out.stderr
    assert tk(tmp_path, "export", "--run", runaway.group(1), "--incident", "inc-1").returncode == 0
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text(GUARD_TOML)
    made = tk(tmp_path, "make-test", "inc-1")
    assert made.returncode == 0 and "halt by step 5" in made.stdout, made.stdout + made.stderr
    for seed in ("0", "1", "123"):  # the same verdict whatever the hash seed
        run = pytest_in(tmp_path, "tests/incidents", seed=seed)
        assert run.returncode == 0, run.stdout
        assert "incidents: 1 contained, 0 not contained" in run.stdout
    # remove the bound that contains it: the gate fails
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_steps = 25\n")
    run = pytest_in(tmp_path, "tests/incidents")
    assert run.returncode == 1 and "incidents: 0 contained, 1 not contained" in run.stdout


def test_demo_runaway_agent_replay_end_to_end(tmp_path: Path) -> None:
    """The demo's own agent code replayed: contained under the bound, not without it."""
    out = tk(tmp_path, "demo", "--no-guard")
    runaway = re.search(r"The runaway: (run_\w+)", out.stdout)
    assert runaway, out.stdout + out.stderr
    assert tk(tmp_path, "export", "--run", runaway.group(1), "--incident", "inc-2").returncode == 0
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text(GUARD_TOML)
    hint = tk(tmp_path, "make-test", "inc-2", "--tests", "elsewhere")
    assert f"--entrypoint {DEMO_AGENT}" in hint.stdout  # the recorded entry point is offered
    made = tk(tmp_path, "make-test", "inc-2", "--entrypoint", DEMO_AGENT)
    assert made.returncode == 0 and "halt by step 5" in made.stdout, made.stdout + made.stderr
    generated = (tmp_path / "tests/incidents/test_inc_2.py").read_text()
    assert f"ENTRYPOINT = {DEMO_AGENT!r}" in generated
    run = pytest_in(tmp_path, "tests/incidents")
    assert run.returncode == 0, run.stdout
    assert "incidents: 1 contained, 0 not contained" in run.stdout
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_steps = 25\n")
    run = pytest_in(tmp_path, "tests/incidents")
    assert run.returncode == 1 and "incidents: 0 contained, 1 not contained" in run.stdout
    assert "halted at step 26" in run.stdout  # max_steps stops it, 21 steps too late


@pytest.mark.parametrize("bad", ["no_colon", "a:b; import os", "../x:y", ":f", "m:"])
def test_a_malformed_entrypoint_is_a_one_line_error(tmp_path: Path, bad: str) -> None:
    shutil.copytree(ROOT / "fixtures/incidents/incident-42", tmp_path / "fx/incident-42")
    out = tk(tmp_path, "make-test", "incident-42", "--fixtures", "fx", "--entrypoint", bad)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "module:function" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_an_entrypoint_that_cannot_be_imported_is_a_one_line_error(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "fixtures/incidents/incident-42", tmp_path / "fx/incident-42")
    out = tk(tmp_path, "replay", "incident-42", "--fixtures", "fx", "--entrypoint",
             "no_such_module:agent")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "cannot be loaded" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_an_uncontained_incident_is_said_plainly_and_still_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "fixtures/incidents/incident-42", tmp_path / "fx/incident-42")
    out = tk(tmp_path, "make-test", "incident-42", "--fixtures", "fx", "--tests", "t")
    assert out.returncode == 0 and "would NOT contain" in out.stdout
    assert (tmp_path / "t/test_incident_42.py").exists()
    run = pytest_in(tmp_path, "t")
    assert run.returncode == 1 and "not contained" in run.stdout


def test_a_hand_edited_test_is_not_overwritten_without_force(tmp_path: Path) -> None:
    shutil.copy(ROOT / "tests/incidents/tracekit.toml", tmp_path / "tracekit.toml")
    made = make_test("incident-42", ROOT / "fixtures/incidents", tmp_path)
    edited = made.path.read_text().replace("MAX_EFFECTS = 1", "MAX_EFFECTS = 0")
    made.path.write_text(edited)
    with pytest.raises(HandEdited):
        make_test("incident-42", ROOT / "fixtures/incidents", tmp_path, halt_by=7)
    assert made.path.read_text() == edited
    forced = make_test("incident-42", ROOT / "fixtures/incidents", tmp_path, halt_by=7,
                       force=True)
    assert "HALT_BY_STEP = 7" in forced.path.read_text()


def test_options_set_the_constants_and_the_structure_is_the_templates(tmp_path: Path) -> None:
    made = make_test("incident-42", ROOT / "fixtures/incidents", tmp_path, halt_by=3,
                     max_effects=0, max_cost=0.01)
    tree = ast.parse(made.path.read_text())
    constants = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)}
    assert constants == {"INCIDENT": "incident-42", "HALT_BY_STEP": 3, "MAX_EFFECTS": 0,
                         "MAX_COST_USD": 0.01, "ENTRYPOINT": None}
    assert [type(n).__name__ for n in tree.body] == STATEMENTS


@pytest.mark.parametrize("name", ["x'; import os; '", 'a"""b', "{{ 1 }}", "a\nb", "../up", ""])
def test_hostile_incident_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        make_test(name, ROOT / "fixtures/incidents", tmp_path)
    assert not list(tmp_path.iterdir())


_PIECES = (*"'\"\\\n\r\t\x00{}%#$ aé😀", "'''", '"""', "{{", "}}", "{%", "%}", "\\x00")
HOSTILE = st.lists(st.sampled_from(_PIECES), min_size=1, max_size=20).map("".join)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tool=HOSTILE, tenant=HOSTILE, arg=HOSTILE, label=HOSTILE)
def test_hostile_trace_content_never_reaches_the_generated_source(
        tmp_path: Path, tool: str, tenant: str, arg: str, label: str) -> None:
    import tracekit

    case = tmp_path / f"case-{abs(hash((tool, tenant, arg, label)))}"
    tracekit.configure(store=case / "store")
    try:
        with tracekit.run(tenant=tenant) as run:
            run.model_output(label * 50, cost_usd=0.01)
            run.call_tool(tool, lambda **kw: kw, payload=arg * 100)
            run.progress(label)
        tracekit.flush()
        tracekit.export_incident([run.run_id], "hostile", case / "fx", case / "store")
    finally:
        tracekit.shutdown()
    made = make_test("hostile", case / "fx", case / "tests", max_effects=0)
    source = made.path.read_text()
    tree = ast.parse(source)  # valid Python whatever the trace held
    assert [type(n).__name__ for n in tree.body] == STATEMENTS
    for piece in (tool, tenant, arg, label):
        if len(piece.strip()) > 3 and piece.strip("a ") != "":  # distinctive enough to look for
            assert piece not in source


def test_generated_tests_give_the_same_verdicts_in_any_order_and_hash_seed(tmp_path: Path) -> None:
    """Twenty runs, each in a new process with its own PYTHONHASHSEED and file order: agent
    replay, a contained policy replay and a failing one always give the same verdicts."""
    for name in ("incident-42", "incident-43", "incident-44"):
        shutil.copytree(ROOT / "fixtures/incidents/incident-42", tmp_path / "fx" / name)
    (tmp_path / "t").mkdir()
    (tmp_path / "t/tracekit.toml").write_text(GUARD_TOML)
    make_test("incident-42", tmp_path / "fx", tmp_path / "t", entrypoint=DEMO_AGENT)
    make_test("incident-43", tmp_path / "fx", tmp_path / "t", max_effects=0)  # fails: 1 > 0
    make_test("incident-44", tmp_path / "fx", tmp_path / "t")
    files = [f"t/test_incident_{n}.py" for n in (42, 43, 44)]
    orders = list(itertools.permutations(files))
    outcomes = set()
    for run_number in range(20):
        order = orders[run_number % len(orders)]
        run = pytest_in(tmp_path, "-rA", "-p", "tracekit.pytest_plugin", *order,
                        seed=str(run_number * 7919), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        lines = sorted(line.split(" - ")[0] for line in run.stdout.splitlines()
                       if line.startswith(("PASSED", "FAILED")))
        outcomes.add((run.returncode, tuple(lines)))
    assert len(outcomes) == 1, outcomes
    [(code, lines)] = outcomes
    assert code == 1 and lines == ("FAILED t/test_incident_43.py::test_incident_43_is_contained",
                                   "PASSED t/test_incident_42.py::test_incident_42_is_contained",
                                   "PASSED t/test_incident_44.py::test_incident_44_is_contained")


def test_an_uncontained_incident_gets_its_expectations_from_the_incident(
        tmp_path: Path) -> None:
    """Not contained when made: the expectations are where the incident should have been
    stopped (before its first suppressed duplicate), so adding a bound later turns the same
    generated test green without regenerating it."""
    out = tk(tmp_path, "demo", "--no-guard")
    runaway = re.search(r"The runaway: (run_\w+)", out.stdout)
    assert runaway, out.stdout + out.stderr
    assert tk(tmp_path, "export", "--run", runaway.group(1), "--incident", "loop").returncode == 0
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_steps = 100\n")
    made = make_test("loop", tmp_path / "fixtures/incidents", tmp_path / "tests/incidents")
    assert not made.verdict.contained
    # the demo's refund loop: looked up, refunded once (fired), then the same refund again
    assert made.expectations["max_effects"] == 1
    assert 2 <= made.expectations["halt_by"] < 10
    assert 0 < made.expectations["max_cost"] < made.verdict.spend_usd
    assert pytest_in(tmp_path, "tests/incidents").returncode == 1  # no bound stops it yet
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_repeats = 1\n")
    run = pytest_in(tmp_path, "tests/incidents")  # the same file, not regenerated
    assert run.returncode == 0, run.stdout
    assert "incidents: 1 contained, 0 not contained" in run.stdout


def test_the_first_write_to_a_destination_the_tenant_never_used_is_the_harm_point(
        tmp_path: Path) -> None:
    """acme has paid through payments/stripe before; in the incident it pays stripe twice,
    then starts paying an account it never paid: the expectations stop before that write,
    and new_destination = "halt" added later turns the same test green."""
    import tracekit

    @tracekit.tool(writes=True, destination=lambda to, amount: f"payments/{to}")
    def pay(to: str, amount: int) -> str:
        return f"paid {amount}"

    def agent(payees: list[str]) -> str:
        with tracekit.run(tenant="acme") as run:
            for i, to in enumerate(payees):
                run.model_output(f"pay {to}", cost_usd=0.01)
                pay(to, i)
            return run.run_id

    store = tmp_path / "store"
    tracekit.configure(store=store, guard=False)
    try:
        agent(["stripe"])
        incident = agent(["stripe", "stripe", "attacker", "attacker-2", "attacker-3"])
        assert tracekit.flush(30)
        tracekit.export_incident([incident], "exfil", out=tmp_path / "fixtures/incidents",
                                 store=store)
    finally:
        tracekit.shutdown()
        tracekit.configure(store=tmp_path / "after", guard=False)
    (tmp_path / "tests/incidents").mkdir(parents=True)
    (tmp_path / "tests/incidents/tracekit.toml").write_text("[guard]\nmax_steps = 100\n")
    made = make_test("exfil", tmp_path / "fixtures/incidents", tmp_path / "tests/incidents")
    assert not made.verdict.contained
    assert made.expectations["max_effects"] == 2  # the two payments through stripe
    assert made.expectations["halt_by"] == 3  # the step that paid the attacker
    assert pytest_in(tmp_path, "tests/incidents").returncode == 1
    (tmp_path / "tests/incidents/tracekit.toml").write_text(
        '[guard]\nnew_destination = "halt"\n')
    run = pytest_in(tmp_path, "tests/incidents")
    assert run.returncode == 0, run.stdout
