"""Commands on runs and the registry: run, status, models list/show, promote, rollback, gc."""

from __future__ import annotations

from typing import Annotated

import typer

from retrainer.cli.app import (
    AsOfOpt,
    ConfigOpt,
    JsonOpt,
    PipelineOpt,
    handle_errors,
    make_clock,
    open_project,
)
from retrainer.cli.render import (
    out,
    print_json,
    render_gc,
    render_models,
    render_run,
    render_status,
    render_version,
)

TABLE_LIMIT = 100
"""Versions ``models list`` shows in its table unless ``--limit`` says otherwise."""


@handle_errors
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
    from retrainer.engine.runs.run import execute_run

    if queue:
        from retrainer.engine.control.controller import request_run

        with open_project(config) as project:
            name = project.config.pipeline(pipeline).name
            request = request_run(project, name, now=make_clock(as_of).now(), by="retrainer run")
        if as_json:
            print_json({"pipeline": name, "request": request})
        else:
            out.print(f"requested a run of {name} (request {request}); the daemon will queue it")
        return
    with open_project(config) as project:
        result = execute_run(project, pipeline, clock=make_clock(as_of))
        if as_json:
            print_json(result.to_json())
        else:
            render_run(result)
    if not result.ok:
        raise typer.Exit(1)


@handle_errors
def status(config: ConfigOpt = None, as_of: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Pipelines: champion, versions, next scheduled fire, last triggers, runs in flight."""
    from retrainer.engine.runs.registry import status as status_of

    with open_project(config) as project:
        data = status_of(project, make_clock(as_of).now())
    if as_json:
        print_json([p.to_json() for p in data])
        return
    render_status(data)


@handle_errors
def models_list(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Only the N most recent versions, and those an alias points at (0: all). "
            "Default: 100 in the table, all with --json.",
            min=0,
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every model version with aliases, metrics, data window and blessing."""
    from retrainer.engine.runs.registry import list_models

    with open_project(config) as project:
        data = list_models(project, pipeline)
    if limit is None and not as_json:
        limit = TABLE_LIMIT  # a terminal shows this many rows at once, and Rich draws them fast
    shown = [v for i, v in enumerate(data) if not limit or i >= len(data) - limit or v["aliases"]]
    if as_json:
        print_json(shown)
        return
    if not data:
        out.print("no model versions yet: train one with 'retrainer run'")
        return
    render_models(shown, hidden=len(data) - len(shown))


@handle_errors
def models_show(
    version: Annotated[int, typer.Argument(help="Version number.")],
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One version: lineage (data, code, environment, artifact) and blessing evidence."""
    from retrainer.engine.runs.registry import show_model

    with open_project(config) as project:
        data = show_model(project, version, pipeline)
    if as_json:
        print_json(data)
        return
    render_version(data)


@handle_errors
def promote(
    version: Annotated[int, typer.Argument(help="A blessed version to promote.")],
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
) -> None:
    """Point an alias (champion by default) at a blessed version."""
    from retrainer.engine.runs.registry import promote as promote_version

    with open_project(config) as project:
        move = promote_version(
            project, version, clock=make_clock(None), pipeline=pipeline, alias=alias
        )
    was = f" (was v{move.previous})" if move.previous else ""
    out.print(f"{move.pipeline} {move.alias} -> v{move.version}{was}")


@handle_errors
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
    from retrainer.engine.runs.registry import rollback as rollback_champion

    with open_project(config) as project:
        move = rollback_champion(project, clock=make_clock(None), pipeline=pipeline, to=to)
    out.print(f"{move.pipeline} {move.alias} rolled back: v{move.previous} -> v{move.version}")


@handle_errors
def gc(
    config: ConfigOpt = None,
    grace: Annotated[
        str,
        typer.Option(
            help="Only remove files older than this (e.g. 24h, 7d, 30m), on the wall clock."
        ),
    ] = "24h",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove artifact blobs no version references, and leftovers of interrupted writes.

    Only files older than --grace and than every run in flight go; safe beside a daemon and
    to interrupt (run it again to finish).
    """
    from retrainer.adapters.clock import WallClock
    from retrainer.core.windows import parse_duration
    from retrainer.engine.gc import collect_garbage

    span = parse_duration(grace)
    with open_project(config) as project:
        report = collect_garbage(project, clock=WallClock(), grace=span, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
        return
    render_gc(report)
