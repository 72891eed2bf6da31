"""Probe: where the writer thread and the compactor spend their time, per row.

Not a contender benchmark: a breakdown that explains step 2. It records ``rows`` events with the
benchmark payload into a list (a pinned ``MemorySink``: the recorder is bypassed), then times
each stage the writer and the compactor apply to them, calling tracekit's own internals (so it
follows the code as it is today, and reports "unavailable" for a stage whose internals were
renamed). Each stage is timed ``reps`` times; the median is reported in ns per row.

The last row times a cheaper alternative for the redaction pre-check, to size the gain of a fix
before anyone writes it.
"""

from __future__ import annotations

import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import PAYLOAD, PROGRESS_LABEL, TOOL_NAME


def _rows(n: int) -> list[tuple[Any, ...]]:
    import tracekit
    from tracekit._capture.state import PROCESS
    from tracekit.testing import MemorySink

    sink = MemorySink()  # the rows the recorder would be handed, kept in a list
    with PROCESS.pin(sink, None):
        k = 0
        while len(sink.rows) < n:
            with tracekit.run(tenant=f"tenant-{k % 50:02d}") as run:
                for _ in range(49):
                    run.event("tool_call", name=TOOL_NAME, args=PAYLOAD)
                    run.progress(PROGRESS_LABEL)
            k += 1
    return sink.rows


def probe_writer(rows: int = 200_000, reps: int = 3) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from tracekit._base.redact import _DEFAULT_HINTS, Redactor
    from tracekit._capture.rows import (
        _JSON_FIELDS,
        _ROW,
        _TEXT_FIELDS,
        _TYPES,
        _event_ids,
        _static_arrays,
        to_batch,
    )
    from tracekit._store import layout as _store
    from tracekit._store.compaction import write_partitions
    from tracekit._store.layout import Store
    from tracekit._store.segments import SegmentWriter, read_segment

    items = _rows(rows)
    n = len(items)
    tmp = Path(tempfile.mkdtemp(prefix="probe-writer-"))
    redactor = Redactor()  # the recorder's, as configured by default
    writer_id = "0123456789ab"
    out: dict[str, float | str] = {}

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        times, result = [], None
        try:
            for _ in range(reps):
                t0 = time.perf_counter()
                result = fn()
                times.append(time.perf_counter() - t0)
        except Exception as exc:  # internals changed: say so, keep going
            out[name] = f"unavailable ({type(exc).__name__})"
            return None
        out[name] = round(statistics.median(times) / n * 1e9)
        return result

    json_cols = [_ROW[name] for name in (*_JSON_FIELDS, *_TEXT_FIELDS)]
    cols = stage("writer: transpose rows (zip)", lambda: list(zip(*items, strict=True)))
    # what to_batch redacts: the columns by name, JSON and text ones scrubbed in place
    stage("writer: redaction pre-check (clean payload)", lambda: redactor.redact_columns(
        {name: cols[i] for name, i in _ROW.items()}, _JSON_FIELDS, _TEXT_FIELDS))
    stage("writer: static columns", lambda: _static_arrays(cols[0]))
    stage("writer: per-row columns to Arrow", lambda: [
        pa.array(cols[i], _TYPES[name]) for name, i in _ROW.items()])
    stage("writer: event ids", lambda: _event_ids(cols[_ROW["ts"]], writer_id, 0, n))
    batch = stage("writer: to_batch total",
                  lambda: to_batch(list(items), redactor, writer_id, 0))

    store = Store(tmp / "store")
    seg = SegmentWriter(store, "probe", 1)
    t0 = time.perf_counter()
    seg.append(batch)
    out["writer: segment append + fsync"] = round((time.perf_counter() - t0) / n * 1e9)
    seg.close_stream()  # the Arrow stream ended, the lock still held (as compaction does)
    seg_bytes = seg.path.stat().st_size
    table = stage("compact: read segment", lambda: read_segment(seg.path))
    s = stage("compact: sort by (run_id, seq)",
              lambda: table.sort_by([("run_id", "ascending"), ("seq", "ascending")]))
    split = getattr(_store, "split_by_day", None)
    if split is not None:  # what the package does now
        stage("compact: split by UTC day", lambda: split(s))
    else:  # the first versions: a date string per row, then a filter per date
        stage("compact: split by UTC day", lambda: [
            s.filter(pc.equal(d, day)) for d in [pc.strftime(s["ts"], format="%Y-%m-%d")]
            for day in pc.unique(d).to_pylist()])
    k = [0]

    def write_all() -> Any:
        k[0] += 1
        return write_partitions(store, table, f"probe-{k[0]}")

    stage("compact: write_partitions total (sort, split, Parquet, fsync)", write_all)
    seg.release()

    # a cheaper alternative for the redaction pre-check: one RE2 pass in Arrow, GIL released
    hints = "|".join(re.escape(h) for h in _DEFAULT_HINTS)
    arrays = [pa.array(cols[c], pa.string()) for c in json_cols]
    stage("alt: pre-check in Arrow (match_substring_regex, ignore_case)", lambda: [
        pc.any(pc.match_substring_regex(a, hints, ignore_case=True)).as_py() for a in arrays])
    # the redaction rules themselves, on payloads that contain a hint word ("key" in
    # "sort_key") but no secret: every such value goes through the regular expressions
    from tracekit import canonical_json

    hinted = [canonical_json({**PAYLOAD, "sort_key": "price", "page": i}) for i in range(5000)]
    t0 = time.perf_counter()
    for text in hinted:
        redactor.redact_json(text)
    out["redaction: redact_json per distinct payload with a hint word (per value)"] = round(
        (time.perf_counter() - t0) / len(hinted) * 1e9)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": n, "reps": reps, "segment_bytes_per_row": round(seg_bytes / n, 1),
            "arrow_batch_bytes_per_row": round(batch.nbytes / n, 1) if batch else None,
            "ns_per_row": out}


if __name__ == "__main__":
    import json

    print(json.dumps(probe_writer(), indent=2))
