"""Child processes for tests/control/test_control.py and tests/contain/test_guard.py.

Usage (each mode prints one JSON line on stdout when it is done)::

    python agent.py add SPEC COUNTER N AMOUNT GOFILE
        open the control store SPEC, wait for GOFILE, then add AMOUNT to COUNTER N times
    python agent.py spend STORE TENANT N COST BOUND
        a guarded run of TENANT spends COST N times (tenant_spend_usd=BOUND), then waits until
        its spend is pushed to the shared control store
    python agent.py resume STORE RUN_ID GUARD_JSON COST STEPS
        resume RUN_ID under Guard(**GUARD_JSON): up to STEPS steps of a model output costing
        COST and a tool call, until the guard halts it
    python agent.py halt SPEC STORE KEY
        set the flag KEY in the control store SPEC; prints the wall time right after
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def _say(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def add(spec: str, counter: str, n: str, amount: str, gofile: str) -> None:
    from tracekit._control.backends import open_control

    control = open_control(spec, Path("."))
    go = Path(gofile)
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    for i in range(int(n)):
        control.add(counter, i % 3, float(amount))
    control.close()
    _say({"done": int(n)})


def _halt_attrs(halt: Any) -> dict[str, Any]:
    return {"type": type(halt).__name__, **halt.as_attrs()}


def spend(store: str, tenant: str, n: str, cost: str, bound: str) -> None:
    import tracekit
    from tracekit._capture.state import PROCESS

    tracekit.configure(store=store, guard=tracekit.Guard(
        tenant_spend_usd=float(bound), refresh_s=0.05, staleness_s=10.0))
    halted = None
    with tracekit.run(tenant=tenant) as run:
        for i in range(int(n)):
            try:
                run.model_output(f"spend {i}", cost_usd=float(cost))
            except tracekit.Halted as halt:
                halted = _halt_attrs(halt)
                break
        runtime = PROCESS.guard_runtime()
        deadline = time.monotonic() + 10
        # wait for the background sync to push this process's spend to the control store
        while (getattr(runtime, "_spent", None) or getattr(runtime, "_unsynced", None)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.01)
        time.sleep(0.2)
    tracekit.shutdown()
    _say({"halted": halted})


def resume(store: str, run_id: str, guard_json: str, cost: str, steps: str) -> None:
    import tracekit

    tracekit.configure(store=store, guard=tracekit.Guard(**json.loads(guard_json)))
    bodies: list[int] = []

    def lookup(i: int) -> int:
        bodies.append(i)
        return i

    start_step = None
    halted = None
    done = 0
    try:
        with tracekit.run(tenant="acme", run_id=run_id) as run:
            start_step = run.step
            for i in range(int(steps)):
                run.model_output(f"step {i}", cost_usd=float(cost))
                run.call_tool("lookup", lookup, i)
                done += 1
    except tracekit.Halted as halt:
        halted = _halt_attrs(halt)
    tracekit.shutdown()
    _say({"start_step": start_step, "halted": halted, "steps_done": done,
          "tool_bodies": len(bodies)})


def halt(spec: str, store: str, key: str) -> None:
    from tracekit._control.backends import open_control
    from tracekit._control.base import now_info

    control = open_control(spec, Path(store))
    control.set_flag(key, now_info("halted from another process", by="test"))
    at = time.time()
    control.close()
    _say({"set_at": at})


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"add": add, "spend": spend, "resume": resume, "halt": halt}[mode](*args)
