"""A guarded worker for tests/control/test_damage.py: calls a tool every 20 ms for SECONDS
seconds and prints one line per call: ``<time> ok`` or ``<time> refused <level> <reason>``."""

from __future__ import annotations

import sys
import time

import tracekit


@tracekit.tool
def act(i: int) -> int:
    return i


def main(store: str, seconds: float) -> None:
    tracekit.configure(store=store, guard=tracekit.Guard(max_steps=10**6))
    with tracekit.run(tenant="acme") as run:
        print(f"{time.time():.3f} ready", flush=True)
        end, i = time.time() + seconds, 0
        while time.time() < end:
            i += 1
            try:
                act(i)
                print(f"{time.time():.3f} ok", flush=True)
            except tracekit.Halted as halt:
                print(f"{time.time():.3f} refused {halt.level} {halt.reason[:80]}", flush=True)
            time.sleep(0.02)
        run.flush()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
