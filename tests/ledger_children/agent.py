"""Child processes for tests/test_ledger.py.

Usage (each mode prints JSON lines on stdout)::

    python agent.py race STORE CONTROL KEY EFFECTS GOFILE HOLD_S
        prints {"ready": pid} once configured and its control store is open, waits for GOFILE,
        then calls a write tool keyed KEY once (its body appends one line to EFFECTS with
        O_APPEND and holds for HOLD_S seconds); prints the outcome: the result or the error type
    python agent.py crash STORE KEY EFFECTS
        a write tool keyed KEY whose body appends a line to EFFECTS and then SIGKILLs its own
        process (after the ``reserved`` ledger row is written, before the outcome)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def _say(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _append_line(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def race(store: str, control: str, key: str, effects: str, gofile: str, hold_s: str) -> None:
    import tracekit
    from tracekit._capture.state import PROCESS

    tracekit.configure(store=store, control=None if control == "sqlite" else control,
                       guard=False)
    PROCESS.ledger_control()  # opened before the start, so the race is on the reservation
    PROCESS.recorder()

    @tracekit.tool(writes=True, idempotency_key=key, destination="bank:acct-1", amount=25.0,
                   currency="USD", action="charge")
    def charge(customer: str, amount: float) -> dict[str, Any]:
        _append_line(effects, str(os.getpid()))
        time.sleep(float(hold_s))
        return {"charged_by": os.getpid(), "customer": customer, "amount": amount}

    _say({"ready": os.getpid()})
    go = Path(gofile)
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.0005)
    with tracekit.run(tenant="acme") as run:
        try:
            result = charge("cus_1", 25.0)
            outcome: dict[str, Any] = {"pid": os.getpid(), "run_id": run.run_id,
                                       "result": result}
        except Exception as exc:
            outcome = {"pid": os.getpid(), "run_id": run.run_id, "error": type(exc).__name__,
                       "message": str(exc)}
    tracekit.shutdown()
    _say(outcome)


def crash(store: str, key: str, effects: str) -> None:
    import tracekit

    tracekit.configure(store=store, guard=False)

    @tracekit.tool(writes=True, idempotency_key=key, destination="bank:acct-9", amount=99.0,
                   currency="EUR", action="wire", reversible=False)
    def wire(to: str, amount: float) -> dict[str, Any]:
        _append_line(effects, str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
        return {"wired": amount}  # never reached

    with tracekit.run(tenant="acme") as run:
        _say({"run_id": run.run_id})
        wire("acct-9", 99.0)


if __name__ == "__main__":
    modes = {"race": race, "crash": crash}
    modes[sys.argv[1]](*sys.argv[2:])
