"""``retrainer mlflow sync``: mirror runs, model versions and aliases to MLflow now."""

from __future__ import annotations

import dataclasses

import typer
from rich.markup import escape

from retrainer.cli.app import ConfigOpt, JsonOpt, handle_errors, open_project
from retrainer.cli.render import err, out, print_json

mlflow_app = typer.Typer(
    help="Mirror to an MLflow tracking server (the mlflow: section; docs/mlflow.md).",
    rich_markup_mode="markdown",
)


@mlflow_app.command("sync")
@handle_errors
def sync(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Mirror what is new since the last sync (runs, model versions, alias moves) to MLflow.

    Safe to repeat or to run beside the daemon: nothing is created twice. Exit 1 if a
    pipeline could not be mirrored (it is retried at the next sync).
    """
    from retrainer.integrations.mlflow import sync_mlflow

    with open_project(config) as project:
        report = sync_mlflow(project, project.clock.now())
    if as_json:
        print_json(dataclasses.asdict(report))
    else:
        for name in report.runs:
            out.print(
                f"{escape(name)}: {report.runs[name]} run(s), {report.versions[name]} "
                f"version(s), {report.aliases[name]} alias move(s) mirrored"
            )
        for name, why in report.failed.items():
            err.print(f"[red]error:[/red] {escape(name)}: {escape(why)}", soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)
