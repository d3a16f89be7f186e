"""Commands that drive or inspect the controller: daemon, events, db upgrade."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape

from retrainer.cli.app import (
    ConfigOpt,
    JsonOpt,
    PipelineOpt,
    handle_errors,
    open_project,
    time_option,
)
from retrainer.cli.render import (
    err,
    out,
    print_event,
    print_events,
    print_json,
    render_daemon_start,
    render_daemon_stop,
)
from retrainer.core.clock import as_utc
from retrainer.core.types import EVENT_KINDS
from retrainer.errors import ConfigError


@handle_errors
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
        time_option(
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

    from retrainer.engine.control.daemon import run_daemon

    # a simulated clock cannot step back, and a wall clock would spin: refuse before any work
    if tick is not None and not (math.isfinite(tick) and tick > 0):
        raise ConfigError(f"--tick: expected a number of seconds greater than 0, got {tick:g}")

    def on_signal(name: str) -> None:
        if not quiet:
            err.print(f"[yellow]{name}: stopping after this tick[/yellow]")

    with open_project(config) as project:
        summary = run_daemon(
            project,
            as_of=as_of,
            tick_s=tick,
            max_ticks=max_ticks,
            executor=executor,
            on_start=None if quiet else render_daemon_start,
            on_events=None if quiet else print_events,
            on_signal=on_signal,
            on_outage=lambda line: err.print(f"[yellow]warning:[/yellow] {escape(line)}"),
        )
    if not quiet:
        render_daemon_stop(summary)


@handle_errors
def events(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="Only these kinds (repeatable).", show_default=False)
    ] = None,
    since: Annotated[
        datetime | None,
        time_option(
            help="Only events at or after this time.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="The most recent N events.", min=1)] = 200,
    as_json: JsonOpt = False,
) -> None:
    """The audit trail: triggers with their evidence, runs, verdicts, promotions, alerts."""
    from retrainer.engine.runs.registry import event_view

    with open_project(config) as project:
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
        print_json([event_view(e) for e in found])
        return
    if not found:
        out.print("no events" + (" matching the filters" if kind or since or pipeline else ""))
    for event in found:
        print_event(event)


@handle_errors
def db_upgrade(config: ConfigOpt = None) -> None:
    """Upgrade the metadata database schema to this version of retrainer."""
    from retrainer.adapters.metadata.sql import upgrade_schema
    from retrainer.config import load_config, project_root
    from retrainer.engine.project import resolve_db_url

    cfg, file = load_config(config)
    url = resolve_db_url(cfg.storage.db_url, project_root(cfg, file))
    upgrade_schema(url)
    out.print(f"schema of {url} is up to date")
