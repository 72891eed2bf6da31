"""Child process for tests/store/test_crash.py: records events until it is killed.

Usage::

    python crash_child.py STORE SEED loop      record runs forever, acknowledging each flush
    python crash_child.py STORE SEED batches   write a few flushed batches, then SIGKILL itself

Protocol on stdout (one line each, flushed as it is written):

    ack RUN_ID SEQ   every event of RUN_ID up to SEQ was acknowledged durable by tracekit.flush()
    ready            the first acknowledgement has been printed (imports and setup are done)
    done             (batches mode) every batch is flushed; the process kills itself next

Every progress event of a run is named ``s<seq>`` and every tool call carries its seq in its
arguments, so the parent can check that each row it reads back is the row that was written.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import tracekit


@tracekit.tool
def lookup(seq: int, blob: str) -> dict[str, int]:
    return {"seq": seq, "size": len(blob)}


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def loop(rng: random.Random) -> None:
    """Record runs of random length, flushing every few events, until killed (or 60 s)."""
    ready = False
    deadline = time.monotonic() + 60.0
    run_no = 0
    while time.monotonic() < deadline:
        run_no += 1
        length = rng.randint(150, 2500)
        with tracekit.run(tenant="crash", attempt=run_no) as run:
            seq = 0  # run_start
            next_flush = rng.randint(1, 60)
            while seq < length:
                if rng.random() < 0.3:
                    lookup(seq + 1, "x" * rng.randint(0, 1500))  # tool_call + tool_result
                    seq += 2
                else:
                    seq += 1
                    run.progress(f"s{seq}")
                if seq >= next_flush:
                    next_flush = seq + rng.randint(1, 60)
                    if not tracekit.flush(10.0):
                        _say("flush-failed")
                        continue
                    _say(f"ack {run.run_id} {seq}")
                    if not ready:
                        ready = True
                        _say("ready")
        seq += 1  # run_end
        if tracekit.flush(10.0):
            _say(f"ack {run.run_id} {seq}")


def batches(rng: random.Random) -> None:
    """Write 6 batches (one flush each) into one segment, then die without compacting."""
    with tracekit.run(tenant="batches") as run:
        seq = 0
        for _ in range(6):
            for _ in range(rng.randint(5, 40)):
                seq += 1
                run.progress(f"s{seq}")
            if not tracekit.flush(10.0):
                _say("flush-failed")
                sys.exit(3)
            _say(f"ack {run.run_id} {seq}")
        _say("done")
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    store, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tracekit.configure(store=store)
    rng = random.Random(seed)
    {"loop": loop, "batches": batches}[mode](rng)


if __name__ == "__main__":
    main()
