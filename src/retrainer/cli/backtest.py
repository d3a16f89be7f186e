"""Backtest commands: backtest policies, and the demo (backtest, then the daemon)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from retrainer.cli.app import (
    ConfigOpt,
    JsonOpt,
    PipelineOpt,
    handle_errors,
    open_project,
    time_option,
)
from retrainer.cli.render import EventPrinter, PolicyBar, err, out, print_json, render_backtest
from retrainer.errors import ConfigError


def _fraction_or_text(value: str) -> float | str:
    """``--select-until`` as YAML would give it: a number, or the text (a date)."""
    try:
        return float(value)
    except ValueError:
        return value


@handle_errors
def backtest(
    ctx: typer.Context,
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

    `retrainer backtest rollout` replays a rollout (A/B, shadow, canary) instead: see its --help.
    """
    if ctx.invoked_subcommand is not None:
        return
    from retrainer.engine.backtest import run_backtest
    from retrainer.engine.backtest.run import load_checked

    cfg, file = load_checked(config)
    updates: dict[str, Any] = {}
    if select_until is not None:
        updates["select_until"] = _fraction_or_text(select_until)
    if no_cache:
        updates["cache"] = False
    if updates:
        cfg = cfg.with_options("the command line", **updates)
    with _policy_progress() as update:
        result = run_backtest(
            cfg, out_dir, file=file, progress=update, workers=workers, persist=persist
        )
    res = result.results
    if as_json:
        document = res.to_json()
        print_json(
            document
            | {
                "policies": [
                    {k: v for k, v in p.items() if k != "series"} for p in document["policies"]
                ]
            }
        )
        return
    render_backtest(res)
    rec = res.recommended
    out.print(f"\n[bold green]recommended:[/bold green] {escape(rec.name)}")
    out.print(f"  {escape(rec.reason)}", soft_wrap=True)
    out.print(
        f"\nreport  {result.report}\nresults {result.json_path}\nchart   {result.png}\n"
        f"config  {result.yaml_path}  [dim](retrainer daemon -c ... runs it as is)[/dim]\n"
        f"[dim]{res.seconds or 0:.1f} s, {len(res.policies)} policies"
        f"{f' ({len(res.failed_policies)} more failed)' if res.failed_policies else ''}"
        f"{f', {result.cached} from the cache' if result.cached else ''}[/dim]"
    )


class _PolicyLines:
    """The backtest's progress without a terminal (a log, CI): a line per finished policy, as
    it finishes, where a progress bar would print once, at the end."""

    def __init__(self) -> None:
        self.done = -1

    def __call__(self, done: int, total: int, name: str) -> None:
        if self.done < 0 and done > 0:
            err.print(f"policies {done}/{total} from the cache", soft_wrap=True)
        elif done > self.done and done > 0:
            err.print(f"policy {done}/{total} done: {escape(name)}", soft_wrap=True)
        elif done == self.done:
            err.print(f"{escape(name)} done", soft_wrap=True)
        self.done = done

    def __enter__(self) -> _PolicyLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _policy_progress() -> PolicyBar | _PolicyLines:
    """A progress bar on a terminal; else a line per finished policy."""
    return PolicyBar() if err.is_terminal else _PolicyLines()


def _train_window(text: str | None, start: datetime, option: str) -> Any:
    """``30d`` (the last 30 days before --start) or ``1996-05-07..1996-07-06``."""
    from retrainer.core.clock import check_time
    from retrainer.core.windows import parse_duration
    from retrainer.engine.backtest.rollout import TrainWindow

    if text is None:
        return None
    if ".." in text:
        a, b = (part.strip() for part in text.split("..", 1))
        try:
            lo = check_time(datetime.fromisoformat(a), option) if a else None
            hi = check_time(datetime.fromisoformat(b), option)
        except ValueError:
            raise ConfigError(
                f"{option}: {text!r} is not START..END with dates such as 1996-05-07"
            ) from None
        return TrainWindow(start=lo, end=hi)
    return TrainWindow(start=start - parse_duration(text), end=start)


@handle_errors
def rollout(
    start: Annotated[
        datetime,
        time_option("--start", help="When the rollout starts (data time), e.g. 1998-01-05."),
    ],
    end: Annotated[
        datetime | None,
        time_option("--end", help="End of the replay (default: --start + the max_duration)."),
    ] = None,
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    champion: Annotated[
        int | None,
        typer.Option(
            "--champion", help="Champion version (default: the champion alias).", show_default=False
        ),
    ] = None,
    candidate: Annotated[
        int | None,
        typer.Option(
            "--candidate",
            help="Candidate version (default: the challenger alias, else the newest blessed "
            "version after the champion). The champion's own version gives an A/A test.",
            show_default=False,
        ),
    ] = None,
    train_champion: Annotated[
        str | None,
        typer.Option(
            "--train-champion",
            help="Train the champion on the fly instead: `START..END` (1996-05-07..1996-07-06) "
            "or a duration (`30d`: the last 30 days before --start).",
            show_default=False,
        ),
    ] = None,
    train_candidate: Annotated[
        str | None,
        typer.Option(
            "--train-candidate",
            help="Train the candidate on the fly instead, as --train-champion "
            "(`30d`: retrained on the last 30 days before --start).",
            show_default=False,
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            help="ab, shadow or canary (default: the pipeline's rollout:).",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="The test's per-prediction metric (accuracy, log_loss, ...).",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        float | None,
        typer.Option("--split", help="ab: the candidate's share of the rows.", show_default=False),
    ] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", show_default=False)] = None,
    min_effect: Annotated[
        float | None,
        typer.Option(
            "--min-effect", help="Smallest improvement worth serving.", show_default=False
        ),
    ] = None,
    tau: Annotated[
        float | None,
        typer.Option(
            "--tau", help="The mixture's scale, in the metric's units.", show_default=False
        ),
    ] = None,
    min_samples: Annotated[int | None, typer.Option("--min-samples", show_default=False)] = None,
    max_duration: Annotated[
        str | None,
        typer.Option("--max-duration", help="The test's horizon (7d).", show_default=False),
    ] = None,
    max_output_drift: Annotated[
        str | None,
        typer.Option(
            "--max-output-drift",
            help="The output-drift guard's PSI limit, or `off`.",
            show_default=False,
        ),
    ] = None,
    tick: Annotated[
        str, typer.Option("--tick", help="Data time between two reads of the evidence.")
    ] = "1h",
    label_delay: Annotated[
        str, typer.Option("--label-delay", help="A row's label arrives this long after it.")
    ] = "0s",
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Column that routes a row (a user id; default: the row's position).",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for rollout.json and rollout.png.")
    ] = Path("rollout-out"),
    as_json: JsonOpt = False,
) -> None:
    """Replay a rollout on the pipeline's recorded rows: what would an A/B have decided, and when?

    The rows of [--start, --end) are the traffic, in time order: each is routed to the
    champion or the candidate as `retrainer serve` would (the same hash of its key), answered
    by that model, and its label is its feedback (after --label-delay). At every --tick the
    rollout's guards and sequential test read the rows so far, with the same policy objects and
    state machine as the daemon. The policy is the pipeline's `rollout:` with the options given
    on top. Prints the decision, when, on how many rows, and writes OUT/rollout.json (with the
    trajectory of the confidence sequence) and OUT/rollout.png.
    """
    import time as _time

    from retrainer.core.windows import parse_duration
    from retrainer.engine.backtest.rollout import (
        replay_project_rollout,
        rollout_policy_for_replay,
        write_rollout_chart,
    )
    from retrainer.engine.project import Project

    t0 = _time.perf_counter()
    overrides: dict[str, Any] = {
        "strategy": strategy,
        "metric": metric,
        "alpha": alpha,
        "min_effect": min_effect,
        "tau": tau,
        "min_samples": min_samples,
        "max_duration": max_duration,
    }
    if split is not None:
        overrides["split"] = split
    if max_output_drift is not None:
        limit = None if max_output_drift.lower() in ("off", "none", "null") else max_output_drift
        try:
            value = None if limit is None else float(limit)
        except ValueError:
            raise ConfigError(
                f"--max-output-drift must be a number or off; got {max_output_drift!r}"
            ) from None
        overrides["guards"] = {"max_output_drift": value}
    from retrainer.core.clock import as_utc

    begin = as_utc(start)
    with Project.open(config) as project:
        configured = project.pipeline(pipeline).config.rollout
        if "guards" in overrides:
            without = {k: v for k, v in overrides.items() if k != "guards"}
            base = rollout_policy_for_replay(configured, without)
            overrides["guards"] = {**base.to_spec().get("guards", {}), **overrides["guards"]}
        policy = rollout_policy_for_replay(configured, overrides)
        finish = as_utc(end) if end is not None else begin + policy.max_duration_()
        result = replay_project_rollout(
            project,
            pipeline,
            start=begin,
            end=finish,
            champion=_train_window(train_champion, begin, "--train-champion") or champion,
            candidate=_train_window(train_candidate, begin, "--train-candidate") or candidate,
            policy=policy.to_spec(),
            tick=parse_duration(tick),
            label_delay=parse_duration(label_delay),
            key=key,
        )
    seconds = _time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "rollout.json"
    from retrainer.adapters._atomic import write_file_atomically
    from retrainer.core.jsonsafe import dumps

    document = result.to_json() | {"wall_seconds": round(seconds, 2)}
    write_file_atomically(json_path, dumps(document, indent=1).encode())
    png = write_rollout_chart(result, out_dir / "rollout.png")
    if as_json:
        print_json(document | {"ticks": len(result.ticks)})
        return
    out.print(
        f"[bold]{escape(result.pipeline)}[/bold]: {escape(result.strategy)} rollout of "
        f"{escape(result.candidate)} against {escape(result.champion)}, "
        f"{result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M}, a tick every "
        f"{result.tick}, {result.rows:,} rows",
        soft_wrap=True,
    )
    out.print(f"[dim]policy: {escape(policy.describe())}[/dim]", soft_wrap=True)
    colour = {"promote": "green", "reject": "yellow", "rollback": "red"}.get(result.outcome, "cyan")
    out.print(f"\n[bold {colour}]{escape(result.summary())}[/bold {colour}]", soft_wrap=True)
    out.print(f"  {escape(result.reason)}", soft_wrap=True)
    last = result.ticks[-1] if result.ticks else None
    if last is not None and last.difference is not None:
        out.print(
            f"  {escape(result.metric or '')}: champion {last.mean_champion:.4f}, candidate "
            f"{last.mean_candidate:.4f}, difference {last.difference:+.4f} in "
            f"[{last.low if last.low is not None else float('-inf'):+.4f}, "
            f"{last.high if last.high is not None else float('inf'):+.4f}], "
            f"p = {last.p_value:.3g}",
            soft_wrap=True,
        )
    out.print(
        f"\nresults {json_path}\nchart   {png}\n[dim]{seconds:.1f} s ({len(result.ticks)} ticks; "
        f"the replay itself {result.seconds:.2f} s)[/dim]"
    )


@handle_errors
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
    rollout: Annotated[
        bool,
        typer.Option(
            "--rollout",
            help="Instead: an A/B rollout on live traffic decided by the daemon, then a "
            "broken candidate rolled back by a guard (about a minute).",
        ),
    ] = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then keep the project's dashboard up at the printed address, with a "
            "sign-in link (Ctrl-C stops it).",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option(help="The dashboard's port (with --serve).", min=1, max=65535)
    ] = 8000,
) -> None:
    """Backtest retraining policies on elec2, then run the daemon with the recommended one.

    Creates the elec2 example project in --dir, replays its history through a default grid
    of policies (never, cadences x windows, a metric trigger, a data-drift trigger, a
    concept-drift detector on a sliding window or since the change, online learning),
    recommends the cheapest policy within 0.5 points of the best on the first half, writes it
    into the project's retrainer.yaml, and runs the daemon's controller with it over the
    second half on a simulated clock, printing triggers, blessings and promotions.

    With --rollout: the elec2 project with an `ab` rollout; a retrain's blessed candidate is
    tried against a stale champion on a replayed stream of requests and feedback through the
    real server app, the daemon's sequential test promotes it, and a deliberately broken
    candidate is rolled back by the output-drift guard.
    """
    if serve:  # refuse a busy port before minutes of demo, not after
        from retrainer.cli.serve import _check_listen

        _check_listen("127.0.0.1", port)
    if rollout:
        _rollout_demo(directory)
    else:
        _policy_demo(directory, days)
    _dashboard(directory, serve=serve, port=port)


def _program() -> str:
    """How to call retrainer again as it was called (``.venv/bin/retrainer`` under make)."""
    import sys

    called = Path(sys.argv[0])
    if called.name != "retrainer" or len(called.parts) == 1:
        return "retrainer"
    try:
        return str(called.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(called)


def _dashboard(directory: Path, *, serve: bool, port: int) -> None:
    """The demo's last lines: where its dashboard is; with ``serve``, serve it."""
    url = f"http://localhost:{port}/ui"
    if not serve:
        out.print(
            f"\n[bold]dashboard[/bold] {url} : start it with `{_program()} ui -c {directory} "
            f"--port {port}` (or run the demo with --serve)",
            soft_wrap=True,
        )
        return
    from retrainer.cli.serve import _need_server_packages, serve_dashboard

    _need_server_packages()
    out.print()
    with open_project(directory) as project:
        serve_dashboard(project, "127.0.0.1", port, sign_in="admin")


def _policy_demo(directory: Path, days: int) -> None:
    from retrainer.engine.demo import backtest_demo, backtest_on_days, run_daemon_demo

    out.rule("[bold]retrainer demo[/bold]: which retraining policy is worth its cost on elec2?")
    out.print(
        "[bold]1. backtest[/bold]: elec2 (NSW electricity prices, 1996-1998) replayed day by "
        "day through each policy with the daemon's controller; chosen on the first half, "
        "reported on the second."
    )
    with _policy_progress() as update:
        result = backtest_demo(directory, progress=update)
    res = result.results
    render_backtest(res)
    rec = res.recommended
    out.print(f"\n[bold green]recommended:[/bold green] {escape(rec.name)}")
    out.print(f"  {escape(rec.reason)}", soft_wrap=True)
    out.print("[dim]  written into retrainer.yaml:[/dim]")
    for line in rec.snippet.splitlines():
        out.print(f"    {escape(line)}", highlight=False)

    out.print()
    out.rule("[bold]2. the daemon[/bold] runs the recommended policy over the held-out part")
    out.print(
        "[dim]retrainer.yaml now holds the recommended policy; the daemon's controller ticks "
        "daily on a simulated clock with the project's stores (SQLite, artifacts, logs); each "
        "run's candidate goes through the policy's blessing gate and the fresh-process check "
        "before promotion."
        "[/dim]"
    )
    printer = EventPrinter()
    summary = run_daemon_demo(directory, days=days or None, on_events=printer)
    printer.flush()

    metric = res.metric
    by_name = {p.name: p for p in res.policies}

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
        ("its backtest, same days", rec.name),
        (f"backtest: always retrain ({res.oracle})", res.oracle),
        ("backtest: never retrain", "never retrain"),
    ):
        p = by_name.get(name or "")
        if p is not None:
            value, retrains = backtest_on_days(p.to_json(), metric, summary)
            table.add_row(escape(label), pct(value), str(retrains))
    out.print()
    out.print(table)
    out.print(
        f"daemon: {summary.runs} runs, {summary.blessed} blessed, {summary.rejected} rejected, "
        f"{summary.promoted} promotions, {summary.failed} failed, {summary.versions} versions "
        f"in the registry ({summary.seconds:.0f} s)"
    )
    out.print(
        f"[dim]monitor: {summary.monitored} results (drift per feature, online "
        f"performance); log: {summary.logged:,} served predictions, {summary.labelled:,} labels"
        "[/dim]"
    )
    out.print(
        f"\nreport   {result.report}\nresults  {result.json_path}\nchart    {result.png}\n"
        f"project  {directory}/ (retrainer.yaml now holds the recommended policy; try "
        f"`{_program()} models list -c {directory}` or `{_program()} events -c {directory}`)"
    )


def _rollout_demo(directory: Path) -> None:
    import time

    from retrainer.engine.demo_rollout import run_rollout_demo

    out.rule("[bold]retrainer demo --rollout[/bold]: an A/B test on live traffic, then a guard")
    out.print(
        "elec2 with [bold]rollout: {strategy: ab, split: 0.5, metric: accuracy}[/bold]; each "
        "half hour of 1998 is a request (from one of 500 users) to the server app, its label "
        "comes back as feedback, and the daemon's controller ticks every 6 hours of data.\n"
    )
    t0 = time.perf_counter()
    result = run_rollout_demo(directory, say=lambda line: out.print(escape(line), soft_wrap=True))
    out.print()
    for o in result.outcomes:
        n = f"{o['n_candidate']} vs {o['n_champion']} labelled; " if o["n_candidate"] else ""
        out.print(
            f"[bold]v{o['candidate']} against v{o['champion']}[/bold]: {o['status']} on "
            f"{o['decided_at'][:16]} ({n}started {o['started_at'][:16]})"
        )
    out.print(
        f"[dim]{result.requests} requests and {result.feedback} feedback rows served, "
        f"{result.ticks} ticks, {time.perf_counter() - t0:.0f} s. The project is in {directory}: "
        f"`retrainer status -c {directory}` shows the last rollout, `retrainer events -c "
        f"{directory}` every decision.[/dim]"
    )
