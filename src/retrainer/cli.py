"""The ``retrainer`` command line: each command parses, calls one engine function, renders.

Exit codes: 0 success; 1 the operation failed (a failed run, a refused promotion, a broken
artifact); 2 bad usage or configuration (one line per problem on stderr).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from retrainer.adapters.report import json_safe
from retrainer.core.clock import Clock, SimulatedClock, as_utc
from retrainer.core.types import EVENT_KINDS
from retrainer.errors import ConfigError, RetrainerError

app = typer.Typer(
    name="retrainer",
    help="Continuous training: retrain, bless against the champion, promote, and record it all.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
models_app = typer.Typer(
    help="The model registry: versions, lineage, blessing evidence.", rich_markup_mode="markdown"
)
db_app = typer.Typer(help="The metadata database.", rich_markup_mode="markdown")
log_app = typer.Typer(
    help="Log predictions and feedback (labels, clicks) for monitoring.",
    rich_markup_mode="markdown",
)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(log_app, name="log")


def _console(stderr: bool = False) -> Console:
    # Rich wraps at 80 columns when not on a terminal; logs and pipes read better wider
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    return Console(stderr=stderr, highlight=False, width=width)


out = _console()
err = _console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="retrainer.yaml or its folder (default: ./retrainer.yaml).",
        envvar="RETRAINER_CONFIG",
        show_default=False,
    ),
]
PipelineOpt = Annotated[
    str | None,
    typer.Option(
        "--pipeline", "-p", help="Pipeline name (default: the only one).", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]
"""What every date/time option takes (UTC unless an offset is given)."""


def _time_option(*names: str, help: str) -> Any:
    """A date/time option: the shared formats, shown as TIME, no default shown."""
    return typer.Option(*names, help=help, formats=TIME_FORMATS, metavar="TIME", show_default=False)


AsOfOpt = Annotated[
    datetime | None,
    _time_option(
        "--as-of",
        help="Act as if it were this time: replays history on a simulated clock. Default: now. "
        "TIME is 1997-03-20, 1997-03-20T12:00:00 or 1997-03-20 12:00:00, UTC unless an offset "
        "follows (1997-03-20T12:00:00+0200).",
    ),
]


def _handle_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            head = str(exc).splitlines()[0] if str(exc) else ""
            if exc.problems != [str(exc)] and head.endswith(":"):  # "<file> has 2 problems:"
                err.print(f"[red]error:[/red] {escape(head)}", soft_wrap=True)
            for line in exc.problems:
                err.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True)
            raise typer.Exit(2) from None
        except RetrainerError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _clock(as_of: datetime | None) -> Clock:
    if as_of is not None:
        return SimulatedClock(as_utc(as_of))
    from retrainer.adapters.clock import WallClock

    return WallClock()


def _open(config: Path | None) -> Any:
    from retrainer.engine.project import Project

    return Project.open(config)


def _print_json(data: Any) -> None:
    text = json.dumps(json_safe(data), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value != value:
        return "NaN"
    return f"{value:.{digits}f}"


def _print_evidence(blessing: dict[str, Any], title: str = "blessing evidence") -> None:
    """The evidence table, then its notes as footnotes (they are too long for a column)."""
    rows = blessing["evidence"]
    has_slice = any(r.get("slice") for r in rows)
    table = Table(title=title, title_justify="left")
    cols = ["rule", "metric", *(["slice"] if has_slice else [])]
    cols += ["candidate", "champion", "delta", "threshold", "pass"]
    for col in cols:
        table.add_column(
            col, justify="right" if col in ("candidate", "champion", "delta") else "left"
        )
    notes = []
    for row in rows:
        mark = ""
        if row.get("note"):
            notes.append(row["note"])
            mark = f" [dim]({len(notes)})[/dim]"
        table.add_row(
            row["rule"] + mark,
            row["metric"],
            *([row.get("slice") or ""] if has_slice else []),
            _fmt(row["candidate"]),
            _fmt(row["champion"]),
            "-" if row["delta"] is None else f"{row['delta']:+.4f}",
            row["threshold"],
            "[green]yes[/green]" if row["passed"] else "[red]NO[/red]",
        )
    out.print(table)
    for i, note in enumerate(notes, 1):
        out.print(f"  [dim]({i})[/dim] {escape(note)}", soft_wrap=True)


@app.command()
@_handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    example: Annotated[str, typer.Option(help="Bundled example to start from.")] = "elec2",
    force: Annotated[bool, typer.Option(help="Overwrite an existing retrainer.yaml.")] = False,
) -> None:
    """Write a runnable project (retrainer.yaml + pipeline.py + data) from an example."""
    from retrainer.engine.scaffold import init_project

    files = init_project(directory, example, force=force)
    out.print(f"Created {directory} from the '{example}' example:")
    for f in files:
        out.print(f"  {f}")
    out.print(f"Next: cd {directory} && retrainer run --as-of 1997-01-06")


@app.command()
@_handle_errors
def run(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    as_of: AsOfOpt = None,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue", help="Ask the running daemon to do it (a manual trigger) and return."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Retrain now (a manual trigger): load the window, train, bless, promote if blessed."""
    from retrainer.engine.registry import run_view, version_view
    from retrainer.engine.run import execute_run

    if queue:
        from retrainer.engine.controller import request_run

        with _open(config) as project:
            name = project.config.pipeline(pipeline).name
            request = request_run(project, name, now=_clock(as_of).now(), by="retrainer run")
        if as_json:
            _print_json({"pipeline": name, "request": request})
        else:
            out.print(f"requested a run of {name} (request {request}); the daemon will queue it")
        return
    with _open(config) as project:
        result = execute_run(project, pipeline, clock=_clock(as_of))
        if as_json:
            data: dict[str, Any] = {
                "run": run_view(result.run),
                "promoted": result.promoted,
                "unlabelled_rows": result.unlabelled_rows,
            }
            if result.version is not None:
                aliases = ["champion"] if result.promoted else []
                data["version"] = version_view(result.version, aliases)
            _print_json(data)
        else:
            _render_run(result)
    if not result.ok:
        raise typer.Exit(1)


def _render_run(result: Any) -> None:
    from retrainer.engine.registry import version_view

    run = result.run
    if not result.ok:
        err.print(
            f"[red]run {run.id} of {run.pipeline} failed:[/red] {escape(run.error or '')}",
            soft_wrap=True,
        )
        return
    mv = result.version
    view = version_view(mv, [])
    snap = view["lineage"]["snapshot"]
    waiting = (
        f"; {result.unlabelled_rows} rows without a label yet left out"
        if result.unlabelled_rows
        else ""
    )
    steps = sum(v for k, v in run.timings.items() if k != "train_cpu")  # wall seconds
    out.print(
        f"run {run.id} of [bold]{run.pipeline}[/bold]: trained v{mv.version} on "
        f"{snap['rows']} rows ({snap['min_time'][:16]} .. {snap['max_time'][:16]}{waiting}) "
        f"in {steps:.2f}s"
    )
    _print_evidence(view["blessing"])
    if result.promoted:
        was = f" (was v{result.previous_champion})" if result.previous_champion else ""
        out.print(f"[green]v{mv.version} blessed and promoted to champion{was}[/green]")
    elif mv.blessing.passed:
        out.print(f"[yellow]v{mv.version} blessed but not promoted (the champion changed)[/yellow]")
    else:
        champ = result.previous_champion
        out.print(
            f"[yellow]v{mv.version} not blessed: {escape(mv.blessing.reason)}; "
            f"champion stays {'v' + str(champ) if champ else 'unset'}[/yellow]"
        )


@app.command()
@_handle_errors
def status(config: ConfigOpt = None, as_of: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Pipelines: champion, versions, next scheduled fire, last triggers, runs in flight."""
    from retrainer.engine.registry import status as status_of

    with _open(config) as project:
        data = status_of(project, _clock(as_of).now())
    if as_json:
        _print_json(data)
        return
    table = Table(title="pipelines", title_justify="left")
    for col in (
        "pipeline",
        "champion",
        "metrics",
        "versions",
        "last run",
        "in flight",
        "next fire",
    ):
        table.add_column(col)
    for p in data:
        last = p["last_runs"][0] if p["last_runs"] else None
        last_text = (
            f"#{last['id']} {last['status']}"
            + (f" ({last['outcome']})" if last.get("outcome") else "")
            + f" {last['created_at'][:16]}"
            if last
            else "-"
        )
        table.add_row(
            p["pipeline"],
            f"v{p['champion']}" if p["champion"] else "-",
            ", ".join(f"{k}={_fmt(v)}" for k, v in p["champion_metrics"].items()) or "-",
            str(p["versions"]),
            last_text,
            f"{len(p['running'])} running, {len(p['queued'])} queued",
            (p["next_fire"] or "-")[:16],
        )
    out.print(table)
    for p in data:
        for e in reversed(p["last_triggers"]):
            out.print(f"{e['at'][:16]} {escape(e['message'])}", soft_wrap=True)


@models_app.command("list")
@_handle_errors
def models_list(
    config: ConfigOpt = None, pipeline: PipelineOpt = None, as_json: JsonOpt = False
) -> None:
    """Every model version with aliases, metrics, data window and blessing."""
    from retrainer.engine.registry import list_models

    with _open(config) as project:
        data = list_models(project, pipeline)
    if as_json:
        _print_json(data)
        return
    if not data:
        out.print("no model versions yet: train one with 'retrainer run'")
        return
    _render_models(data)


def _render_models(data: list[dict[str, Any]]) -> None:
    metric_names = list(dict.fromkeys(m for v in data for m in v["metrics"]))
    table = Table(title="model versions", title_justify="left")
    for col in ("version", "aliases", "created", *metric_names, "rows", "data", "blessed"):
        table.add_column(col, justify="right" if col in metric_names else "left")
    for v in data:
        snap = v["lineage"]["snapshot"]
        table.add_row(
            f"v{v['version']}",
            ", ".join(v["aliases"]) or "",
            v["created_at"][:16].replace("T", " "),
            *(_fmt(v["metrics"].get(m)) for m in metric_names),
            str(snap["rows"]),
            f"{(snap['min_time'] or '')[:10]} .. {(snap['max_time'] or '')[:10]}",
            "[green]yes[/green]" if v["blessing"]["passed"] else "[red]no[/red]",
        )
    out.print(table)


@models_app.command("show")
@_handle_errors
def models_show(
    version: Annotated[int, typer.Argument(help="Version number.")],
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One version: lineage (data, code, environment, artifact) and blessing evidence."""
    from retrainer.engine.registry import show_model

    with _open(config) as project:
        data = show_model(project, version, pipeline)
    if as_json:
        _print_json(data)
        return
    _render_version(data)


def _render_version(v: dict[str, Any]) -> None:
    lin = v["lineage"]
    snap, code, art = lin["snapshot"], lin["code"], lin["artifact"]
    aliases = escape(f" [{', '.join(v['aliases'])}]") if v["aliases"] else ""
    out.print(f"[bold]{v['pipeline']} v{v['version']}{aliases}[/bold]  created {v['created_at']}")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("metrics", ", ".join(f"{k}={_fmt(x)}" for k, x in v["metrics"].items()))
    table.add_row("run", str(lin["run_id"]))
    table.add_row("data", escape(snap["source"]))
    table.add_row("window", f"{snap['window_start'] or '(start)'} .. {snap['window_end']}")
    table.add_row("rows", f"{snap['rows']} ({snap['min_time']} .. {snap['max_time']})")
    table.add_row("fingerprint", snap["fingerprint"])
    dirty = " (dirty)" if code["git_dirty"] else ""
    table.add_row("git", f"{code['git_commit'] or '(not in a git repository)'}{dirty}")
    table.add_row("pipeline hash", code["pipeline_hash"])
    table.add_row("artifact", f"sha256:{art['sha256']} ({art['size']} bytes, {art['format']})")
    table.add_row("environment", ", ".join(f"{k} {x}" for k, x in lin["environment"].items()))
    table.add_row("params", escape(json.dumps(v["params"], default=str)))
    out.print(table)
    b = v["blessing"]
    verdict = "[green]blessed[/green]" if b["passed"] else "[red]rejected[/red]"
    vs = f" vs champion v{b['champion_version']}" if b["champion_version"] else " (no champion)"
    out.print(f"blessing: {verdict}{vs}: {escape(b['reason'])}")
    _print_evidence(b)
    moves = v.get("alias_history") or []
    if moves:
        out.print("alias history:")
    for m in moves:
        was = f"v{m['previous']}" if m["previous"] is not None else "-"
        now = f"v{m['version']}" if m["version"] is not None else "(cleared)"
        out.print(
            f"  {m['at'][:16].replace('T', ' ')}  {escape(m['alias'])}: {was} -> {now}  "
            f"{escape(m['reason'])} ({escape(m['actor'])})"
        )


@app.command()
@_handle_errors
def promote(
    version: Annotated[int, typer.Argument(help="A blessed version to promote.")],
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
) -> None:
    """Point an alias (champion by default) at a blessed version."""
    from retrainer.engine.registry import promote as promote_version

    with _open(config) as project:
        move = promote_version(project, version, clock=_clock(None), pipeline=pipeline, alias=alias)
    was = f" (was v{move.previous})" if move.previous else ""
    out.print(f"{move.pipeline} {move.alias} -> v{move.version}{was}")


@app.command()
@_handle_errors
def rollback(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    to: Annotated[
        int | None,
        typer.Option(
            help="Version to roll back to (default: the previous champion).", show_default=False
        ),
    ] = None,
) -> None:
    """Move the champion back to an earlier blessed version."""
    from retrainer.engine.registry import rollback as rollback_champion

    with _open(config) as project:
        move = rollback_champion(project, clock=_clock(None), pipeline=pipeline, to=to)
    out.print(f"{move.pipeline} {move.alias} rolled back: v{move.previous} -> v{move.version}")


@app.command()
@_handle_errors
def monitor(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    as_of: AsOfOpt = None,
    start: Annotated[
        datetime | None,
        _time_option(
            help="Window start (default: end minus monitor.window).",
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        _time_option(
            help="Window end (default: now).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Report path (default: under storage.reports_dir).", show_default=False),
    ] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a window: drift, data quality, performance and concept drift, with a report.

    The window (default: the last monitor.window) is compared with the reference profile of the model that was champion at its end; the figures are stored, events emitted, and a self-contained HTML report written.
    """  # noqa: E501
    from retrainer.engine.monitor import run_monitor

    report: bool | Path = False if no_report else (out if out is not None else True)
    with _open(config) as project:
        result = run_monitor(
            project, pipeline, clock=_clock(as_of), start=start, end=end, report=report
        )
    if as_json:
        data = dict(result.summary)
        data.pop("histograms", None)
        data["report"] = str(result.report_path) if result.report_path else None
        _print_json(data)
        return
    _render_monitor(result)


def _render_monitor(result: Any) -> None:
    s = result.summary
    w = s["window"]
    out.print(
        f"[bold]{s['pipeline']}[/bold] v{s['version']}: {s['rows']} rows in "
        f"{w['start'][:16]} .. {w['end'][:16]} ({s['data']})"
    )
    drift = result.drift
    if drift is not None:
        table = Table(title="drift", title_justify="left")
        for col in ("column", "role", "method", "statistic", "p adj.", "JS dist.", "drifted"):
            table.add_column(
                col, justify="right" if col in ("statistic", "p adj.", "JS dist.") else "left"
            )
        rows = sorted(drift.rows, key=lambda r: (not r.drifted, r.role != "feature", r.feature))
        for r in rows:
            table.add_row(
                escape(r.feature),
                r.role,
                r.method,
                _fmt(r.statistic),
                "-" if r.adjusted_p_value is None else f"{r.adjusted_p_value:.2g}",
                _fmt(r.distance),
                "[red]yes[/red]" if r.drifted else ("no" if r.tested else f"- ({escape(r.note)})"),
            )
        out.print(table)
        verdict = "[red]dataset drift[/red]" if drift.drifted else "[green]no dataset drift[/green]"
        out.print(
            f"{verdict}: {drift.n_drifted} of {drift.n_tested} features drifted "
            f"(threshold {drift.drift_share:.0%} of features, {drift.correction} correction)"
        )
    for f in s["findings"]:
        where = f" ({escape(f['column'])})" if f.get("column") else ""
        out.print(
            f"[yellow]finding[/yellow] {f['kind']}{where}: {escape(f['message'])}", soft_wrap=True
        )
    if s["performance"]:
        table = Table(title="performance", title_justify="left")
        names = [m["name"] for m in s["performance"][0]["metrics"]]
        for col in ("window", "rows", "labelled", *names):
            table.add_column(col, justify="left" if col == "window" else "right")
        for p in s["performance"]:
            table.add_row(
                p["start"][:16],
                str(p["n_rows"]),
                str(p["n_labelled"]),
                *(
                    _fmt(m["value"])
                    if m["status"] == "ok"
                    else f"[dim]{m['status'].replace('_data', '')} (n={m['n']})[/dim]"
                    for m in p["metrics"]
                ),
            )
        out.print(table)
    concept = s.get("concept_drift")
    if concept:
        found = (
            f"[red]detected[/red] at {', '.join(concept['detections'][:3])}"
            if concept["drift_detected"]
            else "[green]none[/green]"
        )
        out.print(f"concept drift ({concept['method']}, {concept['rows_fed']} new rows): {found}")
    if result.report_path:
        out.print(f"report: {result.report_path}")


@log_app.command("predictions")
@_handle_errors
def log_predictions(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON-lines file of predictions.")],
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
) -> None:
    """Append predictions (id, timestamp, model_version, prediction, [score], features...)."""
    from retrainer.engine.online import log_predictions as append

    with _open(config) as project:
        name = project.config.pipeline(pipeline).name
        n = append(project.log_store(), file, name)
    out.print(escape(_logged(n, f"predictions of {name} from {file}")), soft_wrap=True)


@log_app.command("feedback")
@_handle_errors
def log_feedback(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON-lines file of feedback.")],
    config: ConfigOpt = None,
) -> None:
    """Append feedback (id, timestamp, outcome): labels or clicks that arrived."""
    from retrainer.engine.online import log_feedback as append

    with _open(config) as project:
        n = append(project.log_store(), file)
    out.print(escape(_logged(n, f"feedback rows from {file}")), soft_wrap=True)


def _logged(n: int, what: str) -> str:
    """'logged 2 <what>', or how many were new when some had been logged before."""
    from retrainer.adapters.logstore import Appended

    new = n.new if isinstance(n, Appended) else n
    if new == n:
        return f"logged {n} {what}"
    return f"logged {new} new {what} ({n - new} already logged)"


@app.command()
@_handle_errors
def daemon(
    config: ConfigOpt = None,
    tick: Annotated[
        float | None,
        typer.Option(help="Seconds between ticks (default: controller.tick).", show_default=False),
    ] = None,
    max_ticks: Annotated[
        int | None,
        typer.Option(help="Stop after N ticks (scripted use).", min=1, show_default=False),
    ] = None,
    as_of: Annotated[
        datetime | None,
        _time_option(
            "--as-of",
            help="Run on a simulated clock starting at this time; each tick advances it by "
            "--tick seconds instead of sleeping (replays history; pair with --max-ticks).",
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            help="inline, process or dask (default: controller.executor.kind).", show_default=False
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Print nothing per tick.")] = False,
) -> None:
    """Run the controller in the foreground: evaluate triggers, retrain, bless, promote.

    SIGTERM or Ctrl-C stops it cleanly: the tick in progress ends, runs in hand get controller.shutdown_grace seconds to finish, and the rest are released to be retried.
    """  # noqa: E501
    import math
    import signal
    import threading

    from retrainer.engine.daemon import start_controller

    # a simulated clock cannot step back, and a wall clock would spin: refuse before any work
    if tick is not None and not (math.isfinite(tick) and tick > 0):
        raise ConfigError(f"--tick: expected a number of seconds greater than 0, got {tick:g}")
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        if not quiet:
            err.print(f"[yellow]{signal.Signals(signum).name}: stopping after this tick[/yellow]")
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with _open(config) as project:
        simulated = SimulatedClock(as_utc(as_of)) if as_of is not None else None
        controller = start_controller(project, clock=simulated, executor=executor)
        tick_s = tick if tick is not None else project.config.controller.tick
        advance = None
        if simulated is not None:
            step = timedelta(seconds=tick_s)

            def advance() -> None:
                simulated.advance(step)

        last_seen = max((e.id or 0 for e in project.store.list_events(limit=1)), default=0)
        seen = {"id": last_seen}

        def on_tick(report: Any) -> None:
            if quiet:
                return
            for event in project.store.list_events(limit=500):
                if (event.id or 0) > seen["id"]:
                    seen["id"] = event.id or 0
                    _print_event(event)

        if not quiet:
            where = (
                f"simulated from {simulated.now():%Y-%m-%d %H:%M}" if simulated else "wall clock"
            )
            out.print(
                f"retrainer daemon: {len(project.config.pipelines)} pipeline(s), tick {tick_s:g}s "
                f"({where}), executor {type(controller.executor).__name__}"
            )
        try:
            ticks = controller.run(
                tick_s=tick_s, max_ticks=max_ticks, stop=stop, on_tick=on_tick, advance=advance
            )
        finally:
            released = controller.shutdown(project.config.controller.shutdown_grace)
            on_tick(None)
        if not quiet:
            out.print(
                f"stopped after {ticks} tick(s)"
                + (f"; released {len(released)} run(s) to be retried" if released else "")
            )


_EVENT_STYLE = {
    "trigger.fired": "cyan",
    "run.failed": "red",
    "blessing.rejected": "yellow",
    "blessing.passed": "green",
    "model.promoted": "bold green",
    "model.rolled_back": "yellow",
    "drift.detected": "magenta",
    "concept_drift.detected": "magenta",
    "alert.failed": "red",
}


def _print_event(event: Any) -> None:
    style = _EVENT_STYLE.get(
        event.kind, "dim" if event.kind.startswith(("alert.", "monitor.")) else ""
    )
    padded = f"{event.kind:<22}"
    kind = f"[{style}]{padded}[/{style}]" if style else padded
    out.print(f"{event.at:%Y-%m-%d %H:%M} {kind} {escape(event.message)}", soft_wrap=True)


@app.command()
@_handle_errors
def events(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="Only these kinds (repeatable).", show_default=False)
    ] = None,
    since: Annotated[
        datetime | None,
        _time_option(
            help="Only events at or after this time.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="The most recent N events.", min=1)] = 200,
    as_json: JsonOpt = False,
) -> None:
    """The audit trail: triggers with their evidence, runs, verdicts, promotions, alerts."""
    from retrainer.engine.registry import event_view

    with _open(config) as project:
        # a misspelt kind would match nothing; a kind of the project's own (events written
        # through the Python API) is one the store holds
        unknown = [
            k
            for k in dict.fromkeys(kind or [])
            if k not in EVENT_KINDS and not project.store.list_events(kinds=[k], limit=1)
        ]
        if unknown:
            raise ConfigError(
                f"--kind: unknown event kind{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; known kinds: {', '.join(EVENT_KINDS)}"
            )
        name = project.config.pipeline(pipeline).name if pipeline else None
        found = project.store.list_events(
            name, since=as_utc(since) if since else None, kinds=kind or None, limit=limit
        )
    if as_json:
        _print_json([event_view(e) for e in found])
        return
    if not found:
        out.print("no events" + (" matching the filters" if kind or since or pipeline else ""))
    for event in found:
        _print_event(event)


@db_app.command("upgrade")
@_handle_errors
def db_upgrade(config: ConfigOpt = None) -> None:
    """Upgrade the metadata database schema to this version of retrainer."""
    from retrainer.adapters.metadata.sql import upgrade_schema
    from retrainer.config import load_config, project_root
    from retrainer.engine.project import resolve_db_url

    cfg, file = load_config(config)
    url = resolve_db_url(cfg.storage.db_url, project_root(cfg, file))
    upgrade_schema(url)
    out.print(f"schema of {url} is up to date")


class _PolicyBar:
    """The backtest's progress bar, shown from its first update: a config error found before
    any policy starts prints alone, without an empty bar above it."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]policies[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=err,
            transient=False,
        )
        self.task: Any = None

    def __call__(self, done: int, total: int, name: str) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("", total=total)
        self.bar.update(self.task, completed=done, total=total, description=escape(name))

    def __enter__(self) -> _PolicyBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.bar.stop()


def _render_backtest(results: dict[str, Any], top: int = 20) -> None:
    metric = results["metric"]
    greater = results["greater_is_better"]
    pct = metric in ("accuracy", "balanced_accuracy", "roc_auc", "f1", "precision", "recall")

    def show(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v * 100:.2f}" if pct else f"{v:.4f}"

    rec = results["recommended"]["name"]
    oracle = results.get("oracle")
    rows = sorted(
        results["policies"],
        key=lambda p: (
            p["held_out"][metric] is None,
            -(p["held_out"][metric] or 0) * (1 if greater else -1),
        ),
    )
    delay = results["dataset"].get("label_delay")
    late = f", labels {delay} late" if delay not in (None, "", "0") else ""
    table = Table(
        title=f"{results['title']}: {metric}{' %' if pct else ''} on the held-out part "
        f"(after {results['dataset']['select_until'][:10]}{late})",
        title_justify="left",
        caption="retrains and train CPU s: in the held-out part (the recommendation below "
        "quotes the selection part)",
        caption_justify="left",
    )
    for col in ("policy", "held out", "selection", "retrains", "train CPU s", ""):
        table.add_column(col, justify="left" if col in ("policy", "") else "right")
    for p in rows[:top] + [p for p in rows[top:] if p["name"] in (rec, oracle)]:
        tags = []
        if p["name"] == rec:
            tags.append("[green]recommended[/green]")
        if p["name"] == oracle:
            tags.append("oracle")
        if p.get("pareto"):
            tags.append("[dim]pareto[/dim]")
        if p.get("excluded"):
            tags.append(f"[dim]{escape(p['excluded'])}[/dim]")
        table.add_row(
            ("[bold]" + escape(p["name"]) + "[/bold]") if p["name"] == rec else escape(p["name"]),
            show(p["held_out"][metric]),
            show(p["selection"][metric]),
            str(p["retrains_held_out"]),
            f"{p['train_cpu_s_held_out']:.2f}",
            " ".join(tags),
        )
    out.print(table)
    if len(rows) > top:
        more = len(rows) - top
        out.print(
            f"[dim]... {more} more {'policy' if more == 1 else 'policies'} in the report[/dim]"
        )
    for failed in results.get("failed_policies", []):
        out.print(
            f"[yellow]not run:[/yellow] {escape(failed['name'])}: {escape(failed['error'])}",
            soft_wrap=True,
        )


def _fraction_or_text(value: str) -> float | str:
    """``--select-until`` as YAML would give it: a number, or the text (a date)."""
    try:
        return float(value)
    except ValueError:
        return value


@app.command()
@_handle_errors
def backtest(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            help="backtest.yaml (or its folder): the project to replay, the batch, the label "
            "delay, the policies or grid to compare, the cost model.",
        ),
    ] = Path("backtest.yaml"),
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for report.html, results.json, PNG, YAML.")
    ] = Path("backtest-out"),
    select_until: Annotated[
        str | None,
        typer.Option(
            "--select-until",
            help="End of the selection part: a fraction of the replay (0.5) or a date. The "
            "policy is chosen on the part before and reported on the part after.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", help="Processes (default: one per core).", min=1),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Recompute every policy (ignore OUT/.cache).")
    ] = False,
    persist: Annotated[
        bool,
        typer.Option(
            "--persist",
            help="Keep each policy's stores (SQLite + artifacts) in `OUT/persist/<policy>/` "
            "instead of memory: `retrainer models list -c OUT/persist/<policy>` shows them.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Replay history through candidate retraining policies; recommend the one worth its cost.

    Every policy runs through the same controller as `retrainer daemon`, on a simulated clock:
    triggers, windows, the blessing gate and promotion unchanged. Each model is scored on the
    batches it served. The recommendation is chosen on the selection part and reported on the
    held-out part; it is written as OUT/recommended.yaml, which `retrainer daemon` runs as is.
    """
    from retrainer.config import load_backtest_config
    from retrainer.engine.backtest import run_backtest

    cfg, file = load_backtest_config(config)
    updates: dict[str, Any] = {}
    if select_until is not None:
        updates["select_until"] = _fraction_or_text(select_until)
    if no_cache:
        updates["cache"] = False
    if updates:
        cfg = cfg.with_options("the command line", **updates)
    with _PolicyBar() as update:
        result = run_backtest(
            cfg, out_dir, file=file, progress=update, workers=workers, persist=persist
        )
    res = result.results
    if as_json:
        _print_json(
            res
            | {"policies": [{k: v for k, v in p.items() if k != "series"} for p in res["policies"]]}
        )
        return
    _render_backtest(res)
    rec = res["recommended"]
    out.print(f"\n[bold green]recommended:[/bold green] {escape(rec['name'])}")
    out.print(f"  {escape(rec['reason'])}", soft_wrap=True)
    out.print(
        f"\nreport  {result.report}\nresults {result.json_path}\nchart   {result.png}\n"
        f"config  {result.yaml_path}  [dim](retrainer daemon -c ... runs it as is)[/dim]\n"
        f"[dim]{res['seconds']:.1f} s, {len(res['policies'])} policies"
        f"{f', {result.cached} from the cache' if result.cached else ''}[/dim]"
    )


class _EventPrinter:
    """Prints the daemon's events as they happen; a busy month is condensed to a summary."""

    STYLE = {
        "trigger.fired": "yellow",
        "blessing.passed": "green",
        "blessing.rejected": "red",
        "model.promoted": "bold green",
        "run.failed": "bold red",
    }

    def __init__(self, detail: int = 8) -> None:
        self.detail = detail
        self.month: str | None = None
        self.events: list[Any] = []

    def __call__(self, events: list[Any]) -> None:
        for event in events:
            month = f"{event.at:%Y-%m}"
            if month != self.month:
                self.flush()
                self.month = month
            self.events.append(event)

    def _line(self, event: Any) -> str:
        style = self.STYLE.get(event.kind, "")
        return f"  {event.at:%Y-%m-%d}  [{style}]{event.kind:<17}[/{style}] {escape(event.message)}"

    def flush(self) -> None:
        if not self.events:
            return
        if len(self.events) <= self.detail:
            for event in self.events:
                out.print(self._line(event), soft_wrap=True)
        else:
            for event in self.events[:3]:
                out.print(self._line(event), soft_wrap=True)
            kinds = [e.kind for e in self.events[3:]]
            counts = ", ".join(
                f"{kinds.count(k)} {k.split('.')[-1]}" for k in self.STYLE if kinds.count(k)
            )
            out.print(f"  [dim]{self.month}: and {len(kinds)} more events ({counts})[/dim]")
        self.events = []


@app.command()
@_handle_errors
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder for the demo project (recreated each time).")
    ] = Path("retrainer-demo"),
    days: Annotated[
        int,
        typer.Option(
            "--days",
            help="Days of the held-out part the daemon replays (0: all of it, ~14 months).",
            min=0,
        ),
    ] = 120,
) -> None:
    """Backtest retraining policies on elec2, then run the daemon with the recommended one.

    Creates the elec2 example project in --dir, replays its history through a default grid
    of policies (never, cadences x windows, a metric trigger, a data-drift trigger, a
    concept-drift detector on a sliding window or since the change, online learning),
    recommends the cheapest policy within 0.5 points of the best on the first half, writes it
    into the project's retrainer.yaml, and runs the daemon's controller with it over the
    second half on a simulated clock, printing triggers, blessings and promotions.
    """
    from retrainer.engine.demo import backtest_demo, backtest_on_days, run_daemon_demo

    out.rule("[bold]retrainer demo[/bold]: which retraining policy is worth its cost on elec2?")
    out.print(
        "[bold]1. backtest[/bold]: elec2 (NSW electricity prices, 1996-1998) replayed day by "
        "day through each policy with the daemon's controller; chosen on the first half, "
        "reported on the second."
    )
    with _PolicyBar() as update:
        result = backtest_demo(directory, progress=update)
    res = result.results
    _render_backtest(res)
    rec = res["recommended"]
    out.print(f"\n[bold green]recommended:[/bold green] {escape(rec['name'])}")
    out.print(f"  {escape(rec['reason'])}", soft_wrap=True)
    out.print("[dim]  written into retrainer.yaml:[/dim]")
    for line in rec["snippet"].splitlines():
        out.print(f"    {escape(line)}", highlight=False)

    out.print()
    out.rule("[bold]2. the daemon[/bold] runs the recommended policy over the held-out part")
    out.print(
        "[dim]retrainer.yaml now holds the recommended policy; the daemon's controller ticks "
        "daily on a simulated clock with the project's stores (SQLite, artifacts, logs), each "
        "run blessed against the champion (with the fresh-process check) before promotion."
        "[/dim]"
    )
    printer = _EventPrinter()
    summary = run_daemon_demo(directory, days=days or None, on_events=printer)
    printer.flush()

    metric = res["metric"]
    by_name = {p["name"]: p for p in res["policies"]}

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.2f}%"

    nd = summary.days
    table = Table(
        title=f"{summary.start[:10]} .. {summary.end[:10]} ({nd} days of the held-out part)",
        title_justify="left",
    )
    table.add_column("")
    table.add_column(metric, justify="right")
    table.add_column("retrains", justify="right")
    table.add_row(
        "the daemon with the recommended policy (what its champions served)",
        pct(summary.served.get(metric)),
        f"{summary.runs - 1} (+ the first model)",
    )
    for label, name in (
        ("its backtest, same days", rec["name"]),
        (f"backtest: always retrain ({res.get('oracle')})", res.get("oracle")),
        ("backtest: never retrain", "never retrain"),
    ):
        p = by_name.get(name or "")
        if p is not None:
            value, retrains = backtest_on_days(p, metric, summary)
            table.add_row(escape(label), pct(value), str(retrains))
    out.print()
    out.print(table)
    out.print(
        f"daemon: {summary.runs} runs, {summary.blessed} blessed, {summary.rejected} rejected, "
        f"{summary.promoted} promotions, {summary.failed} failed, {summary.versions} versions "
        f"in the registry ({summary.seconds:.0f} s)"
    )
    out.print(
        f"\nreport   {result.report}\nresults  {result.json_path}\nchart    {result.png}\n"
        f"project  {directory}/ (retrainer.yaml now holds the recommended policy; try "
        f"`retrainer models list -c {directory}` or `retrainer events -c {directory}`)"
    )


@app.command("config-schema")
def config_schema() -> None:
    """Print the JSON schema of retrainer.yaml."""
    from retrainer.config import json_schema

    _print_json(json_schema())


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
