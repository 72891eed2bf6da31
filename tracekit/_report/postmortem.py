"""The postmortem page: one run (and its sub-agents) or one incident, as self-contained HTML or
Markdown. No network, no external assets: styles inline, charts inline SVG.

Trace content is untrusted (model outputs, tool results fetched from the web): every value from
a trace goes through ``html.escape`` (HTML) or ``md`` (Markdown) on its way to the page.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .._base.vocab import EventKind, EventStatus, LedgerStatus
from .._contain.settings import Guard, project_guard
from .._replay.feed import decisions, first_halt
from .charts import bucket_count, bucketed, chart, choose_bucket, per_bucket

__all__ = ["Postmortem", "build_postmortem", "chart", "render_html", "render_markdown"]

_CLIP = 240
_BOUNDS_HINT = (
    "Run `tracekit suggest-bounds --incident NAME` for the settings that would have "
    "contained it and their false halts."
)
_SIGNATURE_GUARD = Guard(
    max_repeats=3,
    max_steps_without_progress=10,
    max_tool_calls_per_minute=60,
    max_writes_per_minute=10,
)


@dataclass
class Postmortem:
    title: str
    summary: str
    release: dict[str, str]
    timeline: list[dict[str, Any]]
    scope: list[dict[str, Any]]
    signature: list[dict[str, Any]]
    guard: dict[str, Any]
    charts: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    bounds: list[dict[str, Any]] = field(default_factory=list)
    bucket_s: int = 1  # the time bucket of the per-bucket charts (chosen from the run's length)
    halt: dict[str, Any] | None = None  # the guard's halt of the page's run: at_s, step, signal


def build_postmortem(
    run_id: str | None = None,
    incident: str | os.PathLike[str] | None = None,
    store: str | os.PathLike[str] | None = None,
) -> Postmortem:
    """Everything the page shows, from the store (``run_id`` and its sub-agents) or a bundle."""
    if (run_id is None) == (incident is None):
        raise ValueError("give one of --run RUN or --incident NAME")
    if incident is not None:
        from .._export.bundle import load_bundle

        manifest, events, ledger = load_bundle(incident)
        title, guard = f"incident {manifest['name']}", manifest.get("guard") or _guard_now()
    else:
        events, ledger, title = _from_store(str(run_id), store)
        guard = _guard_now()
    events = _clipped(events)
    rows = decisions(events)
    ledger_rows = ledger.to_pylist()
    page = _assemble(title, events.to_pylist(), ledger_rows, guard, _signature(rows))
    page.bounds = _bounds(rows, ledger_rows, store)
    return page


def _guard_now() -> dict[str, Any]:
    """The guard configured now (the process's, else the project's): its bounds on the charts."""
    from .._capture.state import PROCESS

    guard = PROCESS.settings().guard or project_guard()
    return guard.model_dump(mode="json") if guard is not None else {}


_BOUNDS_UP_TO = 3000  # decisions: beyond, the page points at `tracekit suggest-bounds`
_HEALTHY_ON_THE_PAGE = 200  # the store's latest other runs the page judges suggestions by


def _bounds(
    rows: list[dict[str, Any]], ledger: list[dict[str, Any]], store: str | os.PathLike[str] | None
) -> list[dict[str, Any]]:
    """The suggested setting of each bound (suggest-bounds' rules, over the store's latest
    other runs), or why none is suggested."""
    from .._replay.suggest import TUNABLES, healthy_decisions, suggest

    if len(rows) > _BOUNDS_UP_TO:
        return []
    fired = [r for r in ledger if r["status"] == LedgerStatus.FIRED]
    runs = {r["run_id"] for r in rows}
    healthy = healthy_decisions(store, runs, _HEALTHY_ON_THE_PAGE)
    found = []
    for tunable in TUNABLES:
        item = suggest(tunable, rows, fired, healthy)
        if item.tightest is None:
            continue
        trial = item.suggested
        found.append(
            {
                "bound": tunable.field,
                "value": None if trial is None else trial.value,
                "step": None if trial is None else trial.step,
                "effects": None if trial is None else trial.effects,
                "spend_usd": None if trial is None else trial.spend_usd,
                "healthy_runs": item.healthy_runs,
                "note": item.note or "",
            }
        )
    return found


def _clipped(events: pa.Table) -> pa.Table:
    """Prompts and outputs cut to what the page shows before they become Python strings (a
    prompt can be the whole conversation); tool-call arguments stay whole (the runaway
    signature compares them)."""
    import pyarrow.compute as pc

    calls = pc.fill_null(pc.equal(events["kind"], "tool_call"), False)
    for name in ("args", "output"):
        short = pc.utf8_slice_codeunits(events[name], 0, _CLIP + 1)
        column = pc.if_else(calls, events[name], short) if name == "args" else short
        events = events.set_column(events.schema.get_field_index(name), name, column)
    return events


def _from_store(
    run_id: str, store: str | os.PathLike[str] | None
) -> tuple[pa.Table, pa.Table, str]:
    from .._capture.state import PROCESS
    from .._query.views import connect, resolve_run

    root = store if store is not None else PROCESS.settings().store
    with connect(root) as con:
        full = resolve_run(con, run_id)
        where = "WHERE run_id = $r OR root_run_id = $r OR parent_run_id = $r"
        events = con.sql(  # a prompt can be the whole conversation: only its start is shown
            f"SELECT * REPLACE (CASE WHEN kind = 'tool_call' THEN args ELSE left(args, "
            f"{_CLIP + 1}) END AS args, left(output, {_CLIP + 1}) AS output) FROM events "
            f"{where}",
            params={"r": full},
        ).to_arrow_table()
        ledger = con.sql(
            f"SELECT * FROM ledger_history WHERE run_id IN (SELECT run_id FROM events {where})",
            params={"r": full},
        ).to_arrow_table()
    return events, ledger, f"run {full}"


def _assemble(
    title: str,
    events: list[dict[str, Any]],
    ledger: list[dict[str, Any]],
    guard: dict[str, Any],
    signature: list[dict[str, Any]],
) -> Postmortem:
    events.sort(key=lambda r: (r["ts"], r["run_id"], r["seq"]))
    ledger.sort(key=lambda r: (r["ts"], r["entry_id"]))
    by_call: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in ledger:
        by_call.setdefault((row["run_id"], row["call_id"]), []).append(row)
    first = events[0] if events else {}
    release = {
        k: str(first.get(k))
        for k in ("release_id", "model_version", "prompt_version", "tools_version")
    }
    timeline = [_line(e, by_call.get((e["run_id"], e["call_id"]), [])) for e in events]
    charts, bucket_s = _charts(events, ledger)
    return Postmortem(
        title,
        _summary(title, events, ledger),
        release,
        timeline,
        _scope(ledger),
        signature,
        guard,
        charts,
        bucket_s=bucket_s,
        halt=_halt(events),
    )


def _line(event: dict[str, Any], ledger: list[dict[str, Any]]) -> dict[str, Any]:
    text = (
        event["args"]
        if event["kind"] in (EventKind.PROMPT, EventKind.TOOL_CALL, EventKind.ENTRY)
        else (event["output"] or event["error"])
    )
    effects = (
        [f"{r['status']} {r['destination'] or ''} {r['amount'] or ''}".strip() for r in ledger]
        if event["kind"] == EventKind.TOOL_CALL
        else []
    )
    return {
        "ts": event["ts"],
        "run": event["run_id"],
        "step": event["step"],
        "kind": event["kind"],
        "name": event["name"] or "",
        "status": event["status"] or "",
        "text": _clip(text or ""),
        "cost": event["cost_usd"],
        "ledger": effects,
    }


def _clip(text: str) -> str:
    return text if len(text) <= _CLIP else text[: _CLIP - 1] + "…"


def _summary(title: str, events: list[dict[str, Any]], ledger: list[dict[str, Any]]) -> str:
    if not events:
        return f"{title}: nothing was recorded."
    runs = {e["run_id"] for e in events}
    calls = [e for e in events if e["kind"] == EventKind.TOOL_CALL]
    writes = sum('"writes":true' in (e["attrs"] or "") for e in calls)
    fired = [r for r in ledger if r["status"] == LedgerStatus.FIRED]
    halts = [
        e for e in events if e["kind"] == EventKind.GUARD and e["status"] == EventStatus.HALTED
    ]
    span = (events[-1]["ts"] - events[0]["ts"]).total_seconds()
    spend = sum(e["cost_usd"] or 0.0 for e in events)
    ending = (
        f"The guard halted it at step {halts[0]['step']} ({halts[0]['name']}: {halts[0]['error']})."
        if halts
        else "Nothing halted it."
    )
    destinations = sorted({str(r["destination"]) for r in fired if r["destination"]})
    return (
        f"{title} ({len(runs)} run(s), tenant {events[0]['tenant']}) went "
        f"{max(e['step'] or 0 for e in events)} steps in {span:.1f} s: {len(calls)} tool "
        f"call(s), {writes} of them writes; {len(fired)} side effect(s) fired"
        f"{' at ' + ', '.join(destinations) if destinations else ''}, "
        f"{sum(r['status'] == 'suppressed_duplicate' for r in ledger)} duplicate(s) "
        f"suppressed; ${spend:.4f} spent. {ending}"
    )


def _scope(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for row in ledger:
        latest[row["entry_id"]] = row
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in latest.values():
        key = (str(row["destination"] or ""), str(row["tool"]))
        item = out.setdefault(
            key,
            {
                "destination": key[0],
                "tool": key[1],
                "fired": 0,
                "may_have_fired": 0,
                "compensated": 0,
                "suppressed": 0,
                "reversible": bool(row["reversible"]),
            },
        )
        name = {
            "fired": "fired",
            "reserved": "may_have_fired",
            "compensated": "compensated",
            "suppressed_duplicate": "suppressed",
        }.get(row["status"])
        if name:
            item[name] += 1
    return list(out.values())


def _signature(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which detectors would have fired, and when: each bound of a reference guard alone."""
    from .._replay.suggest import TUNABLES

    found = []
    reference = _SIGNATURE_GUARD.model_dump(exclude_defaults=True)
    for bound in (t.field for t in TUNABLES if t.field in reference):  # the registry's order
        value = reference[bound]
        halt = first_halt(rows, Guard(**{bound: value}))
        if halt is not None:
            found.append(
                {
                    "detector": bound,
                    "threshold": value,
                    "step": halt[1]["step"],
                    "at": halt[1]["ts"],
                }
            )
    return found


def _charts(
    events: list[dict[str, Any]], ledger: list[dict[str, Any]]
) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """The page's series (x: seconds from the run's start) and their time bucket, chosen from
    the run's length (``charts.choose_bucket``): tool calls and writes fired per bucket, every
    bucket drawn (an empty one as zero), and the cumulative spend at each priced decision."""
    if not events:
        return {}, 1
    start = events[0]["ts"]
    fired = [r for r in ledger if r["status"] == LedgerStatus.FIRED]
    span = max((r["ts"] - start).total_seconds() for r in [*events, *fired])
    width = choose_bucket(span)
    count = bucket_count(span, width)
    calls, spend, total = [], [], 0.0
    for e in events:
        offset = (e["ts"] - start).total_seconds()
        if e["kind"] == EventKind.TOOL_CALL:
            calls.append(offset)
        if e["cost_usd"]:
            total += e["cost_usd"]
            spend.append((offset, total))
    writes = [(r["ts"] - start).total_seconds() for r in fired]
    calls_name, writes_name = _per_bucket_names(width)
    return {
        calls_name: bucketed(calls, width, count),
        "cumulative spend (USD)": spend,
        writes_name: bucketed(writes, width, count),
    }, width


def _per_bucket_names(width_s: int) -> tuple[str, str]:
    """The per-bucket series' names: ``tool calls per 5 s``, ``writes fired per minute``."""
    per = per_bucket(width_s)
    return f"tool calls per {per}", f"writes fired per {per}"


def _halt(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The guard's halt of the page's run: its first ``guard`` event with status ``halted``
    (a run whose parent is on the page is a sub-agent, not the page's run), with its signal."""
    if not events:
        return None
    runs = {e["run_id"] for e in events}
    halted = (
        e
        for e in events
        if e["kind"] == EventKind.GUARD
        and e["status"] == EventStatus.HALTED
        and e.get("parent_run_id") not in runs
    )
    first = next(halted, None)
    if first is None:
        return None
    return {
        "at_s": (first["ts"] - events[0]["ts"]).total_seconds(),
        "step": first["step"],
        "signal": _signal(first),
    }


def _signal(event: dict[str, Any]) -> str:
    """The signal a guard event names in its attributes (else the event's name)."""
    try:
        attrs = json.loads(event.get("attrs") or "{}")
    except ValueError:
        attrs = {}
    signal = attrs.get("signal") if isinstance(attrs, dict) else None
    return str(signal or event.get("name") or "halted")


# -- rendering -----------------------------------------------------------------------------------
_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:"
    "collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:"
    "top;text-align:left}code{white-space:pre-wrap;word-break:break-all}"
    "svg{border:1px solid #ddd;margin:4px}.k-guard{background:#fee}"
)


def render_html(pm: Postmortem) -> str:
    """The page: every trace value escaped, no script, no external reference."""
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(pm.title)} "
        f"postmortem</title><style>{_STYLE}</style></head><body>",
        f"<h1>Postmortem: {e(pm.title)}</h1><p>{e(pm.summary)}</p>",
        "<h2>Release</h2><p>"
        + ", ".join(f"{e(k)} <code>{e(v)}</code>" for k, v in pm.release.items())
        + "</p>",
        "<h2>Charts</h2>",
    ]
    parts += _charts_html(pm)
    parts.append(
        "<h2>Runaway signature</h2>"
        + _table(
            ["detector", "threshold", "would fire at step", "at"],
            [[s["detector"], s["threshold"], s["step"], s["at"]] for s in pm.signature],
        )
    )
    parts.append(
        "<h2>Bounds that would have contained it</h2>"
        + (
            _table(
                [
                    "bound",
                    "suggested setting",
                    "halts at step",
                    "effects before",
                    "spend before",
                    "healthy runs",
                    "note",
                ],
                [
                    [
                        b["bound"],
                        _or_not(b["value"]),
                        b["step"],
                        b["effects"],
                        "" if b["spend_usd"] is None else f"${b['spend_usd']:.4f}",
                        b["healthy_runs"],
                        b["note"],
                    ]
                    for b in pm.bounds
                ],
            )
            if pm.bounds
            else "<p>" + e(_BOUNDS_HINT) + "</p>"
        )
    )
    parts.append(
        "<h2>Side-effect scope</h2>"
        + _table(
            [
                "destination",
                "tool",
                "fired",
                "may have fired",
                "compensated",
                "duplicates suppressed",
                "reversible",
            ],
            [
                [
                    s["destination"],
                    s["tool"],
                    s["fired"],
                    s["may_have_fired"],
                    s["compensated"],
                    s["suppressed"],
                    s["reversible"],
                ]
                for s in pm.scope
            ],
        )
    )
    parts.append(
        "<h2>Timeline</h2>"
        + _table(
            ["time", "run", "step", "kind", "name", "status", "content", "ledger"],
            [
                [
                    t["ts"],
                    t["run"],
                    t["step"],
                    t["kind"],
                    t["name"],
                    t["status"],
                    t["text"],
                    "; ".join(t["ledger"]),
                ]
                for t in pm.timeline
            ],
            kinds=[t["kind"] for t in pm.timeline],
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _charts_html(pm: Postmortem) -> list[str]:
    """The page's charts, with the guard's bounds and the halt marker drawn on them."""
    halt = None if pm.halt is None else (float(pm.halt["at_s"]), str(pm.halt["signal"]))
    calls_name, writes_name = _per_bucket_names(pm.bucket_s)
    per_minute = {
        calls_name: pm.guard.get("max_tool_calls_per_minute"),
        writes_name: pm.guard.get("max_writes_per_minute"),
    }
    out = []
    for name, points in pm.charts.items():
        if name in per_minute:  # a count per bucket, against a bound per minute
            bound, label = _bound_per_bucket(per_minute[name], pm.bucket_s)
            out.append(
                chart(name, points, bound, bucket_s=pm.bucket_s, bound_label=label, halt=halt)
            )
        else:
            out.append(chart(name, points, pm.guard.get("max_cost_usd"), halt=halt))
    return out


def _bound_per_bucket(per_minute: float | None, bucket_s: int) -> tuple[float | None, str | None]:
    """A per-minute bound drawn on a per-bucket chart. The counts stay counts (what the
    timeline shows); the bound is scaled to the bucket instead (60/min is 5 per 5 s, 300 per
    5 min), so a bucket above the line ran faster than the bound allows on average. The label
    gives both: ``bound 60/min = 5 per 5 s``."""
    if not per_minute:
        return None, None
    scaled = per_minute * bucket_s / 60
    label = f"bound {per_minute:g}/min"
    return scaled, label if bucket_s == 60 else f"{label} = {scaled:.3g} per {per_bucket(bucket_s)}"


def _table(head: list[str], rows: list[list[Any]], kinds: list[str] | None = None) -> str:
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for index, row in enumerate(rows):
        css = f" class='k-{e(kinds[index])}'" if kinds else ""
        out.append(
            f"<tr{css}>" + "".join(f"<td><code>{e(_cell(v))}</code></td>" for v in row) + "</tr>"
        )
    return "".join(out) + "</table>"


def _or_not(value: Any) -> str:
    return "not suggested" if value is None else str(value)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%H:%M:%S.%f")[:-3]
    return "" if value is None else str(value)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]!|~])")  # links, images, code, emphasis, cells


def md(value: Any) -> str:
    """A trace value as Markdown text: punctuation escaped, angle brackets as entities, one
    line (so it cannot open a link, an image, a code block or raw HTML)."""
    text = _cell(value).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def render_markdown(pm: Postmortem) -> str:
    """The same page as Markdown, for a ticket."""
    lines = [
        f"# Postmortem: {md(pm.title)}",
        "",
        md(pm.summary),
        "",
        "Release: " + ", ".join(f"{md(k)} {md(v)}" for k, v in pm.release.items()),
        "",
        "## Runaway signature",
        "",
    ]
    lines += _md_table(
        ["detector", "threshold", "would fire at step"],
        [[s["detector"], s["threshold"], s["step"]] for s in pm.signature],
    )
    lines += ["", "## Bounds that would have contained it", ""]
    lines += (
        _md_table(
            ["bound", "suggested setting", "halts at step", "effects before", "note"],
            [
                [b["bound"], _or_not(b["value"]), b["step"], b["effects"], b["note"]]
                for b in pm.bounds
            ],
        )
        if pm.bounds
        else [md(_BOUNDS_HINT)]
    )
    lines += ["", "## Side-effect scope", ""]
    lines += _md_table(
        ["destination", "tool", "fired", "may have fired", "compensated"],
        [
            [s["destination"], s["tool"], s["fired"], s["may_have_fired"], s["compensated"]]
            for s in pm.scope
        ],
    )
    lines += ["", "## Timeline", ""]
    lines += _md_table(
        ["time", "step", "kind", "name", "status", "content", "ledger"],
        [
            [
                t["ts"],
                t["step"],
                t["kind"],
                t["name"],
                t["status"],
                t["text"],
                "; ".join(t["ledger"]),
            ]
            for t in pm.timeline
        ],
    )
    return "\n".join(lines) + "\n"


def _md_table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(md(v) for v in row) + " |" for row in rows]


def write_page(pm: Postmortem, html_path: Path | None, md_path: Path | None) -> list[Path]:
    """Write the pages asked for (atomically); returns their paths."""
    written = []
    for path, text in (
        (html_path, render_html(pm) if html_path else ""),
        (md_path, render_markdown(pm) if md_path else ""),
    ):
        if path is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
