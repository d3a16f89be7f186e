"""Monitoring commands: monitor a window, log predictions and feedback."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from retrainer.cli.app import (
    AsOfOpt,
    ConfigOpt,
    JsonOpt,
    PipelineOpt,
    handle_errors,
    make_clock,
    open_project,
    time_option,
)
from retrainer.cli.render import out, print_json, render_monitor


@handle_errors
def monitor(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    as_of: AsOfOpt = None,
    start: Annotated[
        datetime | None,
        time_option(
            help="Window start (default: end minus monitor.window).",
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        time_option(
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
    from retrainer.engine.monitoring.monitor import run_monitor

    report: bool | Path = False if no_report else (out if out is not None else True)
    with open_project(config) as project:
        result = run_monitor(
            project, pipeline, clock=make_clock(as_of), start=start, end=end, report=report
        )
    if as_json:
        data = result.summary.to_json()
        del data["histograms"]  # the report's figures, not the command's answer
        data["report"] = str(result.report_path) if result.report_path else None
        print_json(data)
        return
    render_monitor(result)


@handle_errors
def log_predictions(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON-lines file of predictions.")],
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
) -> None:
    """Append predictions (id, timestamp, model_version, prediction, [score], features...)."""
    from retrainer.engine.monitoring.online import log_predictions as append

    with open_project(config) as project:
        name = project.config.pipeline(pipeline).name
        n = append(project.log_store(), file, name)
    out.print(escape(_logged(n, f"predictions of {name} from {file}")), soft_wrap=True)


@handle_errors
def log_feedback(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or JSON-lines file of feedback.")],
    config: ConfigOpt = None,
) -> None:
    """Append feedback (id, timestamp, outcome): labels or clicks that arrived."""
    from retrainer.engine.monitoring.online import log_feedback as append

    with open_project(config) as project:
        n = append(project.log_store(), file)
    out.print(escape(_logged(n, f"feedback rows from {file}")), soft_wrap=True)


def _logged(n: int, what: str) -> str:
    """'logged 2 <what>', or how many were new when some had been logged before."""
    from retrainer.adapters.logstore import Appended

    new = n.new if isinstance(n, Appended) else n
    if new == n:
        return f"logged {n} {what}"
    return f"logged {new} new {what} ({n - new} already logged)"
