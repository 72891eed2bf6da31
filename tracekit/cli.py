"""The ``tracekit`` command: a thin mirror of the Python API for the on-call engineer.

Every command is one library call; user errors are one line (``click.ClickException``), never a
traceback. Set TRACEKIT_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

from . import _oncall as oncall
from ._base.vocab import LedgerStatus
from ._capture.state import configure, shutdown
from ._import import FORMATS as IMPORT_FORMATS
from ._query.format import FORMATS, render
from ._store.compaction import recover as compact_dead
from ._store.layout import Store, resolve_root
from ._version import __version__
from .errors import ControlError, Halted

if TYPE_CHECKING:
    import duckdb

__all__ = ["cli", "main"]

_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--store PATH``: the store root (default $TRACEKIT_HOME, else ./.tracekit)."""
    return click.option(
        "--store",
        "store",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Store root (default: $TRACEKIT_HOME, else ./.tracekit).",
    )(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json``: print JSON instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def fixtures_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--fixtures DIR``: where incident bundles live."""
    return click.option(
        "--fixtures",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("fixtures/incidents"),
        show_default=True,
        help="Where bundles live.",
    )(fn)


def format_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    )(fn)


def entrypoint_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--entrypoint module:function``: agent replay through that function."""
    return click.option(
        "--entrypoint",
        default=None,
        metavar="MODULE:FUNCTION",
        help="Agent replay: run this function (importable from the current folder) with the "
        "incident's recorded input, its model, tools, HTTP and clock served from the "
        "bundle.",
    )(fn)


def tests_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--tests DIR``: where the incident tests live (the project's guard is found from it up)."""
    return click.option(
        "--tests",
        "tests_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("tests/incidents"),
        show_default=True,
        help="Where the generated tests go (the project's guard is found from here up).",
    )(fn)


def _tests_folder(tests_dir: Path) -> Path:
    """The incident tests' folder, or here when it does not exist yet."""
    return tests_dir if tests_dir.is_dir() else Path.cwd()


def _existing_store(store: Path | None) -> Path:
    root = resolve_root(store)
    if not Store(root).exists():
        raise click.ClickException(
            f"no tracekit store at {root}: record a run first (try `tracekit demo`), "
            "or pass --store / set TRACEKIT_HOME"
        )
    return root


def _q() -> ModuleType:
    """The query module, imported by the commands that run SQL (DuckDB takes a while to load)."""
    from ._query import views as _query

    return _query


def _connect(store: Path | None) -> duckdb.DuckDBPyConnection:
    con: duckdb.DuckDBPyConnection = _q().connect(_existing_store(store))
    return con


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """``30m``, ``2h``, ``1d``, ``1w`` ago, or an ISO date/time (UTC unless it says otherwise)."""
    if value is None:
        return None
    now = now or datetime.now(UTC)
    match = _DURATION.match(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30m, 2h, 1d) nor an ISO time (2026-11-30T08:00)",
            param_hint="--since",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _echo_table(
    columns: list[str], rows: list[tuple[Any, ...]], fmt: str, width: int | None = 60
) -> None:
    if not rows and fmt == "table":
        click.echo("(no rows)")
        return
    click.echo(render(columns, rows, fmt, width))


def _sql_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn DuckDB and lookup errors into one-line messages."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import duckdb

        try:
            return fn(*args, **kwargs)
        except (_q().UnknownRun, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            views = ", ".join(_q().VIEWS)
            raise click.ClickException(
                f"query failed: {first} (views: {views}; see `tracekit query --help`)"
            ) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tracekit")
def cli() -> None:
    """tracekit: the flight recorder, circuit breaker and regression net for AI agents.

    Traces live in a store root: ./.tracekit by default, $TRACEKIT_HOME, or --store.
    """


@cli.command()
@store_option
@click.option("--tenant", help="Only this tenant's runs.")
@click.option("--status", help="Only runs with this status (ok, error, halted, running).")
@click.option("--since", help="Only runs started since: 30m, 2h, 1d, or an ISO time.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="At most this many runs, newest first.",
)
@format_option
@_sql_errors
def runs(
    store: Path | None,
    tenant: str | None,
    status: str | None,
    since: str | None,
    limit: int,
    fmt: str,
) -> None:
    """List runs, newest first, with steps, tool calls, cost and status."""
    with _connect(store) as con:
        columns, rows = _q().list_runs(con, tenant, parse_since(since), status, limit)
    _echo_table(columns, rows, fmt)


@cli.command()
@click.argument("run_id")
@store_option
@click.option("--full", is_flag=True, help="Do not clip long arguments and outputs.")
@format_option
@_sql_errors
def show(run_id: str, store: Path | None, full: bool, fmt: str) -> None:
    """Show one run's timeline: every decision in order.

    RUN_ID may be a unique prefix; an unknown id suggests the closest ones.
    """
    with _connect(store) as con:
        columns, rows = _q().timeline(con, run_id)
    _echo_table(columns, rows, fmt, None if full else 70)


@cli.command()
@click.argument("sql", required=False)
@click.option("--name", "name", metavar="NAME", help="Run a named postmortem query instead.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter of the named query (repeatable).",
)
@click.option("--list", "list_them", is_flag=True, help="List the named queries.")
@store_option
@format_option
@_sql_errors
def query(
    sql: str | None,
    name: str | None,
    params: tuple[str, ...],
    list_them: bool,
    store: Path | None,
    fmt: str,
) -> None:
    """Run SQL over the views events, runs, tool_calls, ledger and ledger_history (DuckDB
    dialect), or a named postmortem query.

    Examples: tracekit query "SELECT tenant, sum(cost_usd) FROM runs GROUP BY tenant";
    tracekit query --list; tracekit query --name repeated_calls --param min_repeats=5
    """
    if sum((sql is not None, name is not None, list_them)) != 1:
        raise click.ClickException(
            "give one of: SQL, --name NAME (with --param key=value), or --list"
        )
    if list_them:
        _list_named(fmt)
        return
    with _connect(store) as con:
        if name is not None:
            cursor = _run_named(con, name, params)
            columns = [d[0] for d in cursor.description or []]
            _echo_table(columns, cursor.fetchall(), fmt, None)
            return
        columns, rows = _q().run_query(con, sql)
    _echo_table(columns, rows, fmt, None)


def _list_named(fmt: str) -> None:
    from ._query.named import named_queries

    rows = [(q.name, q.description, q.signature() or "-") for q in named_queries().values()]
    _echo_table(["name", "answers", "parameters"], rows, fmt, None)


def _run_named(con: Any, name: str, params: tuple[str, ...]) -> Any:
    from ._query.named import run_named

    given: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.ClickException(f"--param {item!r} must look like key=value")
        given[key.strip()] = value
    if given.get("run_id"):  # a unique prefix works, as in `tracekit show`
        given["run_id"] = _q().resolve_run(con, given["run_id"])
    return run_named(con, name, **given)


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@json_option
@store_option
@_sql_errors
def diff(run_a: str, run_b: str, as_json: bool, store: Path | None) -> None:
    """Two runs side by side, step by step, and the first step where their decisions diverge
    (with what changed in it): yesterday's good run against today's bad one, or a run before
    and after a release. Run ids may be unique prefixes.
    """
    from dataclasses import asdict

    from ._query.rundiff import diff_runs

    with _connect(store) as con:
        result = diff_runs(con, run_a, run_b)
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2, default=str))
        return
    rows = [(step, a, b, "" if same else "<>") for step, a, b, same in result.rows]
    _echo_table(["step", "A: " + result.run_a, "B: " + result.run_b, ""], rows, "table", 60)
    for line in result.context:
        click.echo(f"A and B differ in {line}")
    click.echo(result.summary())
    for line in result.differences:
        click.echo(f"  {line}")


@cli.command()
@click.option("--run", "run_id", help="One run (a unique prefix works).")
@click.option("--tenant", help="One tenant's runs (with --since).")
@click.option("--release", help="One release id.")
@click.option("--since", help="With --tenant: since 30m, 2h, 1d, or an ISO time.")
@json_option
@store_option
@_sql_errors
def scope(
    run_id: str | None,
    tenant: str | None,
    release: str | None,
    since: str | None,
    as_json: bool,
    store: Path | None,
) -> None:
    """The side effects that landed: by destination and action, with counts, amounts,
    duplicates suppressed, may-have-fired, reversible and irreversible, and what still stands.
    """
    report = oncall.scope(run_id, tenant, release, parse_since(since), _existing_store(store))
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "columns": None}, indent=2, default=str))
        return
    if not report.rows:
        click.echo("no side effects recorded for that scope")
        return
    click.echo(render(report.columns, report.rows, "table", 40))
    standing = report.standing
    reversible = [s for s in standing if s["reversible"]]
    maybe = sum(s["status"] == LedgerStatus.RESERVED for s in standing)
    click.echo(
        f"\n{len(standing)} effects stand ({maybe} may have fired); "
        f"{len(reversible)} reversible, {len(standing) - len(reversible)} irreversible"
    )


@cli.command()
@click.option("--run", "run_id", required=True, help="The run whose effects to undo.")
@click.option("--execute", is_flag=True, help="Run the compensators (default: show the plan).")
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="Import the module that defines the tools (registers their compensators).",
)
@store_option
@_sql_errors
def compensate(run_id: str, execute: bool, imports: tuple[str, ...], store: Path | None) -> None:
    """Undo a run's side effects: the plan by default; with --execute, each registered
    compensator runs once (idempotent: running it twice undoes nothing twice).
    """
    root = _existing_store(store)
    if execute:
        configure(store=root, guard=False)
    plan = oncall.compensate(run_id, root, execute, imports)
    if not plan:
        click.echo("nothing stands: no fired or may-have-fired effects for that run")
        return
    keys = ["entry_id", "tool", "destination", "status", "amount", "currency", "action"]
    if execute:
        keys.append("outcome")
    click.echo(render(keys, [[row.get(k) for k in keys] for row in plan], "table", 60))
    if execute:
        shutdown()


@cli.command()
@click.option(
    "--run",
    "runs",
    multiple=True,
    required=True,
    help="A run of the incident (repeatable); its sub-agents come along.",
)
@click.option("--incident", help="The bundle's name, e.g. incident-42 (bundle formats).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("fixtures/incidents"),
    show_default=True,
    help="Where bundles live.",
)
@click.option("--force", is_flag=True, help="Replace a bundle of the same name.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "jsonl", "otlp-json"]),
    default="parquet",
    show_default=True,
    help="jsonl also writes a human-readable copy; otlp-json writes one run as OTel GenAI spans.",
)
@click.option(
    "-o",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="otlp-json: the file to write (default: <run>.otlp.json).",
)
@store_option
@_sql_errors
def export(
    runs: tuple[str, ...],
    incident: str | None,
    out: Path,
    force: bool,
    fmt: str,
    output: Path | None,
    store: Path | None,
) -> None:
    """Export an incident's runs as a bundle: manifest.json, events.parquet, ledger.parquet
    (or, with --format otlp-json, one run as an OTLP/JSON document of OTel GenAI spans).

    Secrets are scrubbed again on the way out. Commit the bundle beside the test that
    `tracekit make-test` writes for it.
    """
    from ._export.bundle import BundleExists, export_incident

    root = _existing_store(store)
    if fmt == "otlp-json":
        _export_otlp(runs, output, root)
        return
    if incident is None:
        raise click.UsageError("--incident is required for --format parquet or jsonl")
    if output is not None:
        raise click.UsageError("-o is for --format otlp-json; bundles go under --out")
    try:
        path = export_incident(list(runs), incident, out, root, force, jsonl=fmt == "jsonl")
    except BundleExists as exc:
        raise click.ClickException(str(exc)) from None
    manifest = json.loads((path / "manifest.json").read_text())
    summary = manifest["summary"]
    click.echo(
        f"wrote {path}: {len(manifest['runs'])} run(s), {summary['steps']} steps, "
        f"{summary['effects_fired']} effect(s) fired, ${summary['cost_usd']:.4f}"
    )


def _export_otlp(runs: tuple[str, ...], output: Path | None, root: Path) -> None:
    from ._export.otlp import export_otlp

    if len(runs) != 1:
        raise click.UsageError("--format otlp-json exports exactly one --run")
    target = output or Path(f"{runs[0]}.otlp.json")
    path = export_otlp(runs[0], target, root)
    click.echo(f"wrote {path}: the run as OTLP/JSON GenAI spans")


@cli.command("import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(IMPORT_FORMATS),
    default="auto",
    show_default=True,
    help="The files' format; auto: found from each file (see README, Importing traces).",
)
@click.option(
    "--tenant",
    help="The tenant of every run (default: the trace's tenant attribute, else 'imported').",
)
@store_option
def import_(files: tuple[Path, ...], fmt: str, tenant: str | None, store: Path | None) -> None:
    """Import foreign traces (OTLP/JSON and the others --format names; gzipped or not) as runs.

    Each trace becomes a run (`otel-<trace id>` for OTLP), its events in their recorded order
    and time, secrets scrubbed; runs, show, query, export, make-test and replay then work on
    it. Importing the same trace again leaves the run as it is.
    """
    from ._base.progressbar import Progress
    from ._import.load import import_traces
    from .errors import ImportFormatError

    root = resolve_root(store)
    with Progress(len(files), "importing") as bar:
        try:
            report = import_traces(
                files, root, fmt=fmt, tenant=tenant,
                on_file=lambda p, n: bar.advance(f"{p.name}: {n} records"),
            )  # fmt: skip
        except (ImportFormatError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"imported {len(report.runs)} run(s), {report.events} events, from {report.spans} "
        f"{report.unit} in {report.files} file(s) into {root}"
    )
    if report.already:
        more = " ..." if len(report.already) > 5 else ""
        click.echo(f"{len(report.already)} run(s) already in the store, left as they are: "
                   + ", ".join(report.already[:5]) + more)  # fmt: skip
    if report.unknown_models:
        click.echo("no price for model(s) " + ", ".join(sorted(report.unknown_models))
                   + ": their calls have no cost")  # fmt: skip


@cli.command()
@click.argument("incident")
@fixtures_option
@tests_option
@entrypoint_option
@json_option
def replay(
    incident: str, fixtures: Path, tests_dir: Path, entrypoint: str | None, as_json: bool
) -> None:
    """Replay an incident through today's guard on the recorded clock, and print the verdict.

    The guard, first found: the project's (tracekit.toml or [tool.tracekit.guard], searched
    from --tests up, as the generated test searches from its folder), else the one in force
    when the incident was recorded. Policy replay by default (the recorded decisions); with
    --entrypoint, agent replay (imported from the project's root).
    """
    from dataclasses import asdict

    from ._replay.policy import replay as run_replay
    from .errors import ReplayDivergence

    try:
        verdict = run_replay(
            fixtures / incident, entrypoint=entrypoint, project=_tests_folder(tests_dir)
        )
    except (ValueError, ReplayDivergence) as exc:
        raise click.ClickException(str(exc)) from None
    outcome, said = _judged(fixtures / incident, verdict)
    if as_json:
        click.echo(json.dumps({**asdict(verdict), "outcome": outcome}, indent=2, default=str))
    else:
        click.echo(f"guard: {verdict.guard_source}")
        click.echo(f"{incident}: {said}")
    if outcome == "not contained":
        sys.exit(1)


def _judged(bundle: Path, verdict: Any) -> tuple[str, str]:
    """A verdict's outcome, and what to say: an agent that ended by itself is judged against
    the damage the incident did before it should have been stopped (make-test's defaults)."""
    from ._export.bundle import load_manifest
    from ._gate.maketest import harm_point
    from .testing import judge

    if verdict.contained or not verdict.ended_by_itself:
        return ("contained" if verdict.contained else "not contained"), verdict.describe()
    step, effects, cost = harm_point(bundle, load_manifest(bundle))
    try:
        judge(verdict, step, effects, cost)
    except AssertionError as broke:
        return "not contained", str(broke)
    return "resolved", (
        f"resolved: today's agent ended by itself at step {verdict.step}, within "
        f"the damage the incident did before it should have been stopped (step "
        f"{step}, {effects} effect(s), ${cost:.4f})"
    )


@cli.command()
@click.option("--run", "run_id", help="A run (with its sub-agents); a unique prefix works.")
@click.option("--incident", help="An incident bundle's name (in --fixtures).")
@fixtures_option
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the self-contained HTML page here.",
)
@click.option(
    "--md",
    "md_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Markdown page here (for a ticket).",
)
@store_option
@_sql_errors
def postmortem(
    run_id: str | None,
    incident: str | None,
    fixtures: Path,
    html_path: Path | None,
    md_path: Path | None,
    store: Path | None,
) -> None:
    """The postmortem of a run or an incident: what happened, the release, charts of calls,
    spend and writes against the guard's bounds, the runaway signature, the side-effect scope
    and the timeline of every decision. One self-contained page (no network, no external
    assets); without --html or --md, the Markdown is printed.
    """
    from ._report.postmortem import build_postmortem, render_markdown, write_page

    if (run_id is None) == (incident is None):
        raise click.ClickException("give one of --run RUN or --incident NAME")
    root = _existing_store(store) if run_id is not None else store
    page = build_postmortem(run_id, fixtures / incident if incident else None, root)
    written = write_page(page, html_path, md_path)
    if not written:
        click.echo(render_markdown(page), nl=False)
    for path in written:
        click.echo(f"wrote {path}")


@cli.command("suggest-bounds")
@click.option("--incident", required=True, help="The incident bundle's name.")
@fixtures_option
@click.option(
    "--healthy",
    "healthy_limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="How many of the store's latest other runs count as healthy (for false halts).",
)
@click.option(
    "--healthy-minimum",
    "min_healthy",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Suggest nothing unless at least this many healthy runs show what a setting costs.",
)
@tests_option
@json_option
@store_option
@_sql_errors
def suggest_bounds(
    incident: str,
    fixtures: Path,
    healthy_limit: int,
    min_healthy: int,
    tests_dir: Path,
    as_json: bool,
    store: Path | None,
) -> None:
    """The guard settings that would have contained an incident, by policy replay over
    candidate thresholds: per bound, the tightest (earliest halt) and the suggested one (no
    false halt among the store's healthy runs, with a margin over what they needed), as a
    [tool.tracekit.guard] table. Nothing is suggested on too few healthy runs.
    """
    from dataclasses import asdict

    from ._replay.suggest import suggest_bounds as suggest

    result = suggest(fixtures / incident, store, healthy_limit, min_healthy)
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2, default=str))
        return
    rows = [(b.bound, _trial(b.tightest), _trial(b.suggested), b.note or "") for b in result.bounds]
    _echo_table(["bound", "tightest", "suggested", "note"], rows, "table", None)
    click.echo(f"false halts: of the {result.healthy_runs} other run(s) in the store")
    from ._replay.policy import replay as run_replay

    today = run_replay(fixtures / incident, project=_tests_folder(tests_dir))
    click.echo(
        f"today's guard ({today.guard_source}): "
        + (
            f"contains it at step {today.step} ({today.signal})"
            if today.contained
            else "does not contain it"
        )
    )
    click.echo(result.toml())


def _trial(trial: Any) -> str:
    if trial is None:
        return "-"
    return (
        f"{trial.value:g}: halts at step {trial.step}, {trial.effects} effect(s), "
        f"${trial.spend_usd:.4f}, {trial.false_halts} false halt(s)"
    )


@cli.command("make-test")
@click.argument("incident")
@fixtures_option
@tests_option
@click.option(
    "--halt-by",
    type=click.IntRange(min=0),
    help="Halt by this step (default: where today's guard halts the incident).",
)
@click.option("--max-effects", type=click.IntRange(min=0), help="At most this many effects fire.")
@click.option("--max-cost", type=click.FloatRange(min=0), help="At most this much is spent (USD).")
@click.option("--force", is_flag=True, help="Overwrite a test that was edited by hand.")
@entrypoint_option
def make_test(
    incident: str,
    fixtures: Path,
    tests_dir: Path,
    halt_by: int | None,
    max_effects: int | None,
    max_cost: float | None,
    force: bool,
    entrypoint: str | None,
) -> None:
    """Turn an incident bundle into a pytest regression test (tests/incidents/test_NAME.py).

    The expectations are plain constants at the top of the file. Same bundle, same options:
    the same bytes. `pytest -m incident` is the eval gate. With --entrypoint the test runs the
    real agent code against the recording (agent replay).
    """
    from ._gate.maketest import HandEdited
    from ._gate.maketest import make_test as write_test
    from .errors import ReplayDivergence

    try:
        made = write_test(
            incident, fixtures, tests_dir, halt_by, max_effects, max_cost, force, entrypoint
        )
    except (HandEdited, ValueError, ReplayDivergence) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{'wrote' if made.changed else 'unchanged:'} {made.path} "
        f"(halt by step {made.expectations['halt_by']}, at most "
        f"{made.expectations['max_effects']} effect(s), at most "
        f"${made.expectations['max_cost']})"
    )
    click.echo(f"guard: {made.verdict.guard_source}")
    outcome, said = _judged(fixtures / incident, made.verdict)
    if outcome == "resolved":
        click.echo(f"{said}: the test passes")
    elif not made.verdict.contained:
        click.echo(
            "today's guard would NOT contain this incident: the test fails until a bound "
            "that stops it is configured ([tool.tracekit.guard] or tracekit.toml)"
        )
    recorded = made.manifest.get("entrypoint")
    if entrypoint is None and recorded:
        click.echo(
            f"the incident recorded its entry point: add --entrypoint {recorded} to "
            "replay the agent code itself"
        )


@cli.command()
@store_option
def recover(store: Path | None) -> None:
    """Compact segments left by writers that died (crash, SIGKILL) into Parquet.

    Safe to run at any time: live writers' segments are left alone.
    """
    root = _existing_store(store)
    segments, rows = compact_dead(Store(root))
    click.echo(f"recovered {rows} events from {segments} dead writer segment(s) in {root}")


def control_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--control``: the control store (default: the project's, else SQLite in the store)."""
    return click.option(
        "--control",
        default=None,
        envvar="TRACEKIT_CONTROL",
        help="Control store: sqlite (control.db in the store) or redis://host:port/db "
        "(default: [tool.tracekit] control, else sqlite).",
    )(fn)


_LEVEL = click.Choice(["global", "tenant", "release", "run", "tool"])


def _control_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Control store and argument errors as one line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ControlError, ValueError, LookupError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@cli.command()
@click.argument("level", type=_LEVEL)
@click.argument("target", required=False)
@click.option("--reason", required=True, help="Why: the next on-call reads it in `status`.")
@click.option("--by", help="Who halts (default: $TRACEKIT_OPERATOR, else $USER).")
@store_option
@control_option
@click.option(
    "--init",
    is_flag=True,
    help="Create the control store if there is none yet (otherwise refused).",
)
@_control_errors
def halt(
    level: str,
    target: str | None,
    reason: str,
    by: str | None,
    store: Path | None,
    control: str | None,
    init: bool,
) -> None:
    """Halt the fleet, a tenant, a release or a run, or freeze a tool.

    \b
      tracekit halt global --reason "..."
      tracekit halt tenant acme --reason "refund loop"
      tracekit halt release 3f9a1c2b7d4e --reason "bad prompt v14"
      tracekit halt run run_01j... --reason "..."
      tracekit halt tool issue_refund --reason "..."   (freezes one tool; reads still flow)

    Every guarded call of a halted run is refused before it runs, in every process.
    """
    key, url = oncall.halt(
        level, target, reason=reason, by=by, store=store, control=control, init=init
    )
    click.echo(f"halted: {key} ({reason}) in {url}")


@cli.command()
@click.argument("level", type=_LEVEL)
@click.argument("target", required=False)
@store_option
@control_option
@_control_errors
def unhalt(level: str, target: str | None, store: Path | None, control: str | None) -> None:
    """Lift a halt or unfreeze a tool.

    A tenant's or run's halt is not lifted while its release is halted: roll the release back
    first, then unhalt the release.
    """
    key, url = oncall.unhalt(level, target, store=store, control=control)
    click.echo(f"lifted: {key} in {url}")


@cli.command()
@store_option
@control_option
@click.option(
    "--trips",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many recent detector trips to show.",
)
@json_option
@click.option(
    "--init",
    is_flag=True,
    help="Create the control store, or re-initialise a Redis that came back empty.",
)
@_control_errors
def status(store: Path | None, control: str | None, trips: int, as_json: bool, init: bool) -> None:
    """Every active halt and frozen tool (when, by whom, why) and the last detector trips."""
    report = oncall.status(store=store, control=control, trips=trips, init=init)
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2, default=str))
        return
    click.echo(f"control store: {report.control}")
    _echo_flags(report.halts)
    _echo_trips(report.trips)


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _echo_flags(flags: list[dict[str, Any]]) -> None:
    if not flags:
        click.echo("no active halts or frozen tools")
        return
    rows = [(f["key"], _when(f.get("at")), f.get("by", ""), f.get("reason", "")) for f in flags]
    click.echo(render(["halt", "since (UTC)", "by", "reason"], rows, "table", 80))


def _echo_trips(trips: list[dict[str, Any]]) -> None:
    if not trips:
        return
    click.echo("\nrecent detector trips:")
    rows = [
        (
            _when(t.get("at")),
            t.get("signal", ""),
            t.get("key", ""),
            f"{t.get('value')} > {t.get('threshold')}",
            t.get("reason", ""),
        )
        for t in trips
    ]
    click.echo(render(["when (UTC)", "signal", "halt", "value", "reason"], rows, "table", 70))


@cli.command()
@store_option
@click.option(
    "--runaway-steps",
    type=click.IntRange(min=1, max=100_000),
    default=40,
    show_default=True,
    help="How many times the runaway tries to re-issue its refund.",
)
@click.option("--no-guard", is_flag=True, help="Run without the guard: watch the runaway run on.")
def demo(store: Path | None, runaway_steps: int, no_guard: bool) -> None:
    """Record a simulated support agent: healthy runs and one runaway. No network, no key.

    The runaway issues the same refund again and again; the guard (on by default) halts it.
    """
    from ._demo import DEMO_GUARD, DEMO_RELEASE, run_demo
    from ._gate.templates import render_template

    try:
        result = run_demo(store, runaway_steps=runaway_steps, guarded=not no_guard)
    except Halted as halt:
        where = f" {halt.target}" if halt.target else ""
        raise click.ClickException(
            f"the demo's runs are {halt}: see `tracekit status`, lift it with "
            f"`tracekit unhalt {halt.level}{where}`"
        ) from None
    flag = f" --store {store}" if store is not None else ""
    click.echo(
        render_template(
            "demo_summary.txt.j2",
            store=result.store,
            runs=result.runs,
            runaway=result.runaway,
            release=DEMO_RELEASE,
            store_flag=flag,
            guard=None if no_guard else DEMO_GUARD,
        ),
        nl=False,
    )


def _one_line_warnings(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    click.echo(f"tracekit: warning: {message}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, never a traceback (unless TRACEKIT_DEBUG=1)."""
    warnings.showwarning = _one_line_warnings
    try:
        cli.main(args=argv, prog_name="tracekit", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("tracekit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("TRACEKIT_DEBUG"):
            raise
        click.echo(
            f"tracekit: error: {type(exc).__name__}: {exc} "
            "(set TRACEKIT_DEBUG=1 for the traceback)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
