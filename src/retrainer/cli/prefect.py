"""``retrainer prefect deploy``: serve a project's pipelines as Prefect deployments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrainer.cli.app import JsonOpt, PipelineOpt, handle_errors
from retrainer.cli.render import out, print_json


@handle_errors
def deploy(
    project: Annotated[
        Path,
        typer.Option(
            "--project",
            "--config",
            "-c",
            help="The project folder (or its retrainer.yaml).",
            envvar="RETRAINER_CONFIG",
        ),
    ] = Path(),
    pipeline: PipelineOpt = None,
    watch_every: Annotated[
        int, typer.Option(help="Seconds between two evaluations of the non-schedule triggers.")
    ] = 60,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the deployments it would serve; contact nothing."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Serve the pipelines as Prefect deployments (retrain on the schedule triggers' crons,
    watch the other triggers every --watch-every seconds); blocks like `prefect serve`."""
    from datetime import timedelta

    from retrainer.integrations import prefect

    every = timedelta(seconds=watch_every)
    plans = prefect.plan_deployments(project, pipeline, watch_every=every)
    if dry_run:
        if as_json:
            print_json([p.to_json() for p in plans])
            return
        for p in plans:
            out.print(f"{p.name}  flow={p.flow}  {p.schedule}  parameters={p.parameters}")
        if not plans:
            out.print("no deployment: the pipelines have no triggers")
        return
    prefect._prefect()  # a missing extra: its one line before anything else is printed
    for p in plans:
        out.print(f"serving {p.name}  flow={p.flow}  {p.schedule}")
    out.print("Ctrl-C stops; the Prefect API is PREFECT_API_URL's")
    prefect.serve(project, pipeline, watch_every=every)
