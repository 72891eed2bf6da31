"""tracekit compensate: the plan, and each registered compensator run once, even when run twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

TOOLS = textwrap.dedent('''
    import tracekit

    def undo_refund(order_id, amount):
        with open("undone.log", "a") as fh:
            fh.write(f"{order_id}\\n")
        return {"reversed": order_id}

    @tracekit.tool(writes=True, destination="payments", reversible=True, currency="USD",
                   amount=lambda order_id, amount: amount, compensate="shop_tools:undo_refund")
    def refund(order_id, amount):
        return {"refund_id": "R-" + order_id}

    @tracekit.tool(writes=True, destination="customer-email", reversible=False)
    def email(to):
        return "sent"
''')

AGENT = textwrap.dedent('''
    import tracekit, shop_tools
    tracekit.configure(store="store")
    with tracekit.run(tenant="acme", run_id="r-comp"):
        for _ in range(5):
            shop_tools.refund("O-1", 10.0)   # a loop: fires once
        shop_tools.refund("O-2", 20.0)
        shop_tools.email("a@example.com")
''')


def tk(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRACEKIT_HOME"}
    return subprocess.run([sys.executable, "-m", "tracekit", *args, "--store", "store"],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_compensation_plan_then_execute_once_even_when_run_twice(tmp_path: Path) -> None:
    (tmp_path / "shop_tools.py").write_text(TOOLS)
    subprocess.run([sys.executable, "-c", AGENT], cwd=tmp_path, check=True, timeout=120)

    plan = tk(tmp_path, "compensate", "--run", "r-comp", "--import", "shop_tools")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.count("compensate") >= 2 and "irreversible: needs a person" in plan.stdout
    assert not (tmp_path / "undone.log").exists()  # the plan runs nothing

    for _ in range(2):  # a second --execute undoes nothing twice
        done = tk(tmp_path, "compensate", "--run", "r-comp", "--import", "shop_tools",
                  "--execute")
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "undone.log").read_text().splitlines() == ["O-1", "O-2"]

    scope = json.loads(tk(tmp_path, "scope", "--run", "r-comp", "--json").stdout)
    by_action = {r["action"]: r for r in scope["rows"]}
    assert by_action["compensate"]["compensated"] == 2
    assert by_action["email"]["fired"] == 1 and by_action["email"]["irreversible"] == 1
    assert [s["tool"] for s in scope["standing"]] == ["email"]  # only the irreversible stands


def test_compensate_names_a_missing_module_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "shop_tools.py").write_text(TOOLS)
    subprocess.run([sys.executable, "-c", AGENT], cwd=tmp_path, check=True, timeout=120)
    out = tk(tmp_path, "compensate", "--run", "r-comp", "--import", "no_such_tools")
    assert out.returncode == 1 and "--import no_such_tools" in out.stderr
    assert "Traceback" not in out.stderr
