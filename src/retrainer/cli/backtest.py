"""Backtest commands: backtest policies, and the demo (backtest, then the daemon)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from retrainer.cli.app import JsonOpt, handle_errors
from retrainer.cli.render import EventPrinter, PolicyBar, out, print_json, render_backtest


def _fraction_or_text(value: str) -> float | str:
    """``--select-until`` as YAML would give it: a number, or the text (a date)."""
    try:
        return float(value)
    except ValueError:
        return value


@handle_errors
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
    with PolicyBar() as update:
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
        f"{f', {result.cached} from the cache' if result.cached else ''}[/dim]"
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
    with PolicyBar() as update:
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
        "daily on a simulated clock with the project's stores (SQLite, artifacts, logs), each "
        "run blessed against the champion (with the fresh-process check) before promotion."
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
        f"\nreport   {result.report}\nresults  {result.json_path}\nchart    {result.png}\n"
        f"project  {directory}/ (retrainer.yaml now holds the recommended policy; try "
        f"`retrainer models list -c {directory}` or `retrainer events -c {directory}`)"
    )
