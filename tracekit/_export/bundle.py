"""Incident bundles: the frozen evidence of an incident, exported from the store.

``fixtures/incidents/<name>/`` holds ``manifest.json``, ``events.parquet`` and ``ledger.parquet``
for every run of the incident (sub-agents included), scrubbed of secrets once more, and
``cassette.yaml`` (vcrpy) when HTTP exchanges were recorded (``tracekit.http``). The bundle
is written to a temporary folder and renamed into place: a reader never sees half a bundle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._base.redact import Redactor
from .._base.schema import SCHEMA_VERSION
from .._base.vocab import EventKind
from .._capture.state import PROCESS
from .._store.layout import aside_name, replace_directory
from .._store.ledger import REDACTED
from .._version import __version__
from ..errors import BundleExists
from .cassette import CASSETTE, cassette_text

__all__ = ["BUNDLE_VERSION", "BundleExists", "export_incident", "load_bundle", "load_manifest"]

#: version of the bundle layout; a bundle of another version is refused loudly
BUNDLE_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_EVENT_TEXT = ("name", "error")
_PROMPT_GROUP_ROWS = 256
_EVENT_JSON = ("args", "output", "attrs")


def export_incident(
    runs: list[str],
    incident: str,
    out: str | os.PathLike[str] = "fixtures/incidents",
    store: str | os.PathLike[str] | None = None,
    force: bool = False,
    jsonl: bool = False,
) -> Path:
    """Write the bundle of ``runs`` (and their sub-agents) as ``out/incident``; returns it."""
    if not NAME_RE.match(incident or ""):
        raise ValueError(
            f"incident name {incident!r} must match [A-Za-z0-9._-]+ (e.g. incident-42)"
        )
    if not runs:
        raise ValueError("export needs at least one --run")
    target = Path(out) / incident
    if target.exists() and not force:
        raise BundleExists(f"{target} already exists: pass --force to replace it")
    from .._base.progressbar import Progress
    from .._query.views import connect

    root = store if store is not None else PROCESS.settings().store
    with Progress(4, f"exporting {incident}") as bar, connect(root) as con:
        ids = _incident_runs(con, runs)
        bar.advance(f"{len(ids)} run(s): reading events")
        events = _bundle_order(_rows(con, "events", "", ids))
        ledger = _rows(con, "ledger_history", "ORDER BY run_id, ts, entry_id", ids)
        summary = _summary(con, ids)
        bar.advance(f"{events.num_rows:,} events: scrubbing")
        redactor = PROCESS.settings().redactor
        if redactor.keys or redactor.patterns:  # the defaults already ran when it was recorded
            events = _scrub(events, redactor, _EVENT_JSON, _EVENT_TEXT)
            ledger = _scrub(ledger, redactor, REDACTED[:1], REDACTED[1:])
        known = _known_destinations(con, ids, summary["tenants"], redactor)
        bar.advance("writing the bundle")
        manifest = {**_manifest(incident, ids, events, summary), "known_destinations": known}
        _write_bundle(target, manifest, events, ledger, jsonl, cassette_text(events))
        bar.advance("done")
    return target


def _incident_runs(con: Any, runs: list[str]) -> list[str]:
    """The named runs and every run under them (sub-agents, at any depth)."""
    from .._query.views import resolve_run

    named = sorted({resolve_run(con, r) for r in runs})
    rows = con.execute(
        "SELECT DISTINCT run_id FROM runs WHERE run_id IN (SELECT unnest($1)) "
        "OR root_run_id IN (SELECT unnest($1)) OR parent_run_id IN (SELECT unnest($1)) "
        "ORDER BY run_id",
        [named],
    ).fetchall()
    return [r[0] for r in rows]


def _bundle_order(events: pa.Table) -> pa.Table:
    """Events by (run_id, seq), prompts last. Sorted here on the key columns alone: sorting in
    SQL drags every prompt (most of an incident's bytes) through the sort."""
    prompts = pc.fill_null(pc.equal(events["kind"], "prompt"), False)
    keys = pa.table({"prompt": prompts, "run_id": events["run_id"], "seq": events["seq"]})
    order = pc.sort_indices(
        keys, [("prompt", "ascending"), ("run_id", "ascending"), ("seq", "ascending")]
    )
    return events.take(order)


def _rows(con: Any, view: str, order: str, ids: list[str]) -> pa.Table:
    return con.sql(
        f"SELECT * FROM {view} WHERE run_id IN (SELECT unnest($ids)) {order}", params={"ids": ids}
    ).to_arrow_table()


_SUMMARY = """
SELECT count(*) AS runs, coalesce(sum(steps), 0)::BIGINT AS steps,
       coalesce(sum(tool_calls), 0)::BIGINT AS tool_calls,
       round(coalesce(sum(cost_usd), 0), 6)::DOUBLE AS cost_usd,
       list(DISTINCT status ORDER BY status) AS statuses,
       list(DISTINCT tenant ORDER BY tenant) AS tenants
FROM runs WHERE run_id IN (SELECT unnest($ids))
"""
_EFFECTS = """
SELECT count(*) FILTER (WHERE status = 'fired') AS effects_fired,
       count(*) FILTER (WHERE status = 'suppressed_duplicate') AS duplicates_suppressed,
       count(*) FILTER (WHERE status = 'reserved') AS may_have_fired
FROM ledger WHERE run_id IN (SELECT unnest($ids))
"""
_HALTS = """
SELECT DISTINCT name FROM events WHERE kind = 'guard' AND status = 'halted'
AND run_id IN (SELECT unnest($ids)) ORDER BY name
"""

#: the destinations each of the incident's tenants wrote to before it began (from the rest of
#: the store's ledger): policy replay's first-seen-destination check starts from them
_KNOWN_DESTINATIONS = """
SELECT tenant, list(DISTINCT destination ORDER BY destination) FROM ledger_history
WHERE tenant IN (SELECT unnest($tenants)) AND destination IS NOT NULL
  AND ts < (SELECT min(ts) FROM events WHERE run_id IN (SELECT unnest($ids)))
  AND run_id NOT IN (SELECT unnest($ids))
GROUP BY tenant ORDER BY tenant
"""


def _known_destinations(
    con: Any, ids: list[str], tenants: list[str], redactor: Redactor
) -> dict[str, list[str]]:
    rows = con.execute(_KNOWN_DESTINATIONS, {"ids": ids, "tenants": tenants}).fetchall()
    scrub = bool(redactor.keys or redactor.patterns)
    return {
        tenant: [redactor.redact_text(d)[0] if scrub else d for d in found]
        for tenant, found in rows
    }


def _summary(con: Any, ids: list[str]) -> dict[str, Any]:
    """The incident's counts for the manifest, by column name."""
    summary = {**_one_row(con, _SUMMARY, ids), **_one_row(con, _EFFECTS, ids)}
    halts = con.execute(_HALTS, {"ids": ids}).fetchall()
    return {**summary, "guard_halts": [h[0] for h in halts]}


def _one_row(con: Any, sql: str, ids: list[str]) -> dict[str, Any]:
    cursor = con.execute(sql, {"ids": ids})
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def _scrub(
    table: pa.Table,
    redactor: Redactor,
    json_columns: tuple[str, ...],
    text_columns: tuple[str, ...],
) -> pa.Table:
    """The table's secret-bearing columns through the redaction rules once more."""
    names = [n for n in (*json_columns, *text_columns) if n in table.column_names]
    columns = {n: table[n].to_pylist() for n in names}
    if not redactor.redact_columns(columns, json_columns, text_columns):
        return table
    for name in names:
        table = table.set_column(
            table.schema.get_field_index(name), name, pa.array(columns[name], pa.string())
        )
    return table


def _guard_in_force(events: pa.Table) -> dict[str, Any] | None:
    """The guard that watched the incident's first run, as its run_start recorded it (else the
    one configured for this export, for a trace recorded before runs said so)."""
    if events.num_rows:
        starts = events.filter(pc.equal(events["kind"], EventKind.RUN_START))
        for text in starts["output"].to_pylist():
            if text:
                found = json.loads(text)
                return found if isinstance(found, dict) else None
    guard = PROCESS.settings().guard
    return guard.model_dump(mode="json") if guard is not None else None


def _manifest(
    incident: str, ids: list[str], events: pa.Table, summary: dict[str, Any]
) -> dict[str, Any]:
    first = events.slice(0, 1).to_pylist()[0] if events.num_rows else {}
    ts = [v for v in pc.min_max(events["ts"]).values() if v.is_valid] if events.num_rows else []
    ts = [v.as_py() for v in ts]
    guard = _guard_in_force(events)
    return {
        "bundle_version": BUNDLE_VERSION,
        "name": incident,
        "runs": ids,
        "tenants": summary["tenants"],
        "release": {
            k: first.get(k)
            for k in ("release_id", "model_version", "prompt_version", "tools_version")
        },
        "span": {
            "start": min(ts).isoformat() if ts else None,
            "end": max(ts).isoformat() if ts else None,
        },
        "schema_version": SCHEMA_VERSION,
        "tracekit_version": __version__,
        "guard": guard,
        "summary": summary,
        **_replay_info(events),
    }


def _replay_info(events: pa.Table) -> dict[str, Any]:
    """What agent replay needs to know: the recorded entry point and the HTTP exchanges."""
    kinds = events["kind"] if events.num_rows else pa.array([], pa.string())
    entries = events.filter(pc.equal(kinds, "entry")) if events.num_rows else events
    return {
        "entrypoint": entries["name"][0].as_py() if entries.num_rows else None,
        "http_exchanges": _answered_http(events),
    }


def _answered_http(events: pa.Table) -> int:
    """HTTP exchanges that got a response: the cassette's interactions."""
    if not events.num_rows:
        return 0
    http = pc.and_(pc.equal(events["kind"], "http"), pc.is_valid(events["output"]))
    return int(pc.sum(pc.fill_null(http, False)).as_py() or 0)


def _write_bundle(
    target: Path,
    manifest: dict[str, Any],
    events: pa.Table,
    ledger: pa.Table,
    jsonl: bool,
    cassette: str | None,
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _write_events(events, tmp / "events.parquet")
    pq.write_table(ledger, tmp / "ledger.parquet", compression="zstd")
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if cassette is not None:
        (tmp / CASSETTE).write_text(cassette)
    if jsonl:
        for name, table in (("events", events), ("ledger", ledger)):
            lines = [json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist()]
            (tmp / f"{name}.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    replace_directory(tmp, target)


def _write_events(events: pa.Table, path: Path) -> None:
    """Prompts (last, in bundle order) in row groups of their own: a reader that needs no
    prompt (policy replay) skips them by the row groups' statistics, and a prompt can be the
    whole conversation (most of an incident's bytes)."""
    rest = events.num_rows - int(pc.sum(pc.equal(events["kind"], "prompt")).as_py() or 0)
    small = [n for n in events.schema.names if n not in _EVENT_JSON]  # not the big texts:
    with pq.ParquetWriter(
        path, events.schema, compression="zstd", use_dictionary=small, write_statistics=small
    ) as writer:  # no min/max of prompts either
        if rest or not events.num_rows:
            writer.write_table(events.slice(0, rest))
        if rest < events.num_rows:  # small groups: agent replay reads the ones it reaches
            writer.write_table(events.slice(rest), row_group_size=_PROMPT_GROUP_ROWS)


def load_bundle(
    path: str | os.PathLike[str],
    prompts: bool = True,
) -> tuple[dict[str, Any], pa.Table, pa.Table]:
    """(manifest, events, ledger) of a bundle (without the prompt events unless ``prompts``);
    a missing or unknown bundle is a ValueError."""
    folder = Path(path)
    manifest = load_manifest(folder)
    skip = None if prompts else [("kind", "!=", "prompt")]
    return (
        manifest,
        pq.read_table(folder / "events.parquet", filters=skip),
        pq.read_table(folder / "ledger.parquet"),
    )


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A bundle's manifest; a missing or unknown bundle is a ValueError."""
    folder = Path(path)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        aside = aside_name(folder)
        if not folder.exists() and (aside / "manifest.json").is_file():
            raise ValueError(
                f"{folder} is missing: an interrupted `tracekit export --force` left the "
                f"previous bundle at {aside}; move it back (mv {aside} {folder}) or export again"
            ) from None
        raise ValueError(
            f"{folder} is not an incident bundle ({exc}); create one with "
            "`tracekit export --run RUN --incident NAME`"
        ) from None
    if manifest.get("bundle_version") != BUNDLE_VERSION:
        raise ValueError(
            f"{folder} is bundle version {manifest.get('bundle_version')}; this "
            f"tracekit reads version {BUNDLE_VERSION}: upgrade tracekit"
        )
    return manifest  # type: ignore[no-any-return]
