"""Staged rows of whole runs into the store's rows, with Arrow's kernels: ordered by recorded
time, numbered, stamped and given ids.

Each run's events are ordered by their recorded time, then the start of the unit they came
from, their place in it (``part``) and the order they were read; ``seq`` counts them from 0
without gaps, ``step`` counts the run's model outputs up to and including each, the run's
release is stamped on every row and each event's id is its time, ``imp``, a digest of its run
and its seq (so importing the same trace again gives the same ids).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from .._base.schema import EVENT_SCHEMA
from .._base.vocab import EventKind

__all__ = ["RELEASE_COLUMNS", "ordered"]

#: the columns of the release table ``ordered`` stamps from (its first column: run_id)
RELEASE_COLUMNS = ("release_id", "model_version", "prompt_version", "tools_version")


def ordered(staged: pa.Table, releases: pa.Table) -> pa.Table:
    """``staged`` (whole runs, event columns plus ``_span_start`` and ``_part``) as store rows,
    sorted by run and seq; ``releases``: run_id and the ``RELEASE_COLUMNS`` of each run."""
    if staged.num_rows == 0:
        return EVENT_SCHEMA.empty_table()
    run = pc.index_in(staged["run_id"], value_set=releases["run_id"])
    keys = pa.table({"run": run, "ts": staged["ts"], "start": staged["_span_start"],
                     "part": staged["_part"], "n": staged["seq"]})  # fmt: skip
    order = pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in keys.column_names])
    rows = staged.take(order)
    runs = run.take(order).combine_chunks()
    seq, step = _numbered(runs, rows["kind"])
    columns = {name: rows[name] for name in EVENT_SCHEMA.names if name in rows.column_names}
    columns |= {name: releases[name].take(runs) for name in RELEASE_COLUMNS}
    columns |= {"seq": seq, "step": step, "event_id": _ids(rows["ts"], rows["run_id"], seq)}
    return pa.table([columns[f.name] for f in EVENT_SCHEMA], schema=EVENT_SCHEMA)


def _numbered(runs: pa.Array, kinds: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Each row's place in its run (``seq``) and the model outputs of its run up to it
    (``step``), for rows sorted by run."""
    n = len(runs)
    ones = pa.repeat(pa.scalar(1, pa.int64()), n)
    index = pc.subtract(pc.cumulative_sum(ones), 1)
    first = pc.fill_null(pc.not_equal(runs[1:], runs[:-1]), True) if n > 1 else pa.array([])
    starts = pa.concat_arrays([pa.array([True]), first]) if n > 1 else pa.array([True] * n)
    group = pc.subtract(pc.cumulative_sum(pc.cast(starts, pa.int64())), 1)
    firsts = pc.take(pc.indices_nonzero(starts), group)
    outputs = pc.cast(pc.equal(kinds.combine_chunks(), EventKind.MODEL_OUTPUT.value), pa.int64())
    counted = pc.cumulative_sum(outputs)
    before = pc.take(pc.subtract(counted, outputs), firsts)
    seq = pc.subtract(index, pc.cast(firsts, pa.int64()))
    return seq, pc.cast(pc.subtract(counted, before), pa.int32())


def _ids(ts: pa.ChunkedArray, run_id: pa.ChunkedArray, seq: pa.Array) -> pa.Array:
    """``<16-digit µs time>imp<10 hex digits of md5(run)><9-digit seq>``."""
    micros = pc.cast(ts.combine_chunks(), pa.int64())
    runs = run_id.combine_chunks().dictionary_encode()
    digests = pa.array([hashlib.md5(r.encode(), usedforsecurity=False).hexdigest()[:10]
                        for r in runs.dictionary.to_pylist()], pa.string())  # fmt: skip
    return pc.binary_join_element_wise(
        pc.utf8_lpad(pc.cast(micros, pa.string()), 16, "0"),
        "imp",
        digests.take(runs.indices),
        pc.utf8_lpad(pc.cast(seq, pa.string()), 9, "0"),
        "",
    )
