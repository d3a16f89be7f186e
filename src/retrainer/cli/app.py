"""The Typer app: the shared options, error handling and the entry point.

Exit codes: 0 success; 1 the operation failed (a failed run, a refused promotion, a broken
artifact); 2 bad usage or configuration (one line per problem on stderr).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from retrainer.cli.render import err
from retrainer.core.clock import Clock, SimulatedClock, check_time
from retrainer.errors import ConfigError, RetrainerError, StorageError, is_storage_error

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
token_app = typer.Typer(
    help="API tokens for retrainer serve: create (the secret is shown once), list, revoke.",
    rich_markup_mode="markdown",
)
# `retrainer backtest` runs the policy backtest itself; `retrainer backtest rollout` replays a
# rollout (the group's callback is the backtest, so `retrainer backtest -c ...` is unchanged)
backtest_app = typer.Typer(rich_markup_mode="markdown")
app.add_typer(backtest_app, name="backtest")
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(log_app, name="log")
app.add_typer(token_app, name="token")
prefect_app = typer.Typer(
    help="Run the pipelines as Prefect flows (needs retrainer[prefect]).",
    rich_markup_mode="markdown",
)
app.add_typer(prefect_app, name="prefect")


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


def _in_range(param: typer.CallbackParam, value: datetime | None) -> datetime | None:
    """Refuse a time outside retrainer's range as bad usage (exit 2), before any work."""
    if value is None:
        return None
    try:
        return check_time(value, "")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix(": "), param=param) from None  # type: ignore[arg-type]


def time_option(*names: str, help: str) -> Any:
    """A date/time option: the shared formats, shown as TIME, no default shown, and a time
    in retrainer's range (:data:`~retrainer.core.clock.EARLIEST` .. ``LATEST``)."""
    return typer.Option(
        *names,
        help=help,
        formats=TIME_FORMATS,
        metavar="TIME",
        show_default=False,
        callback=_in_range,
    )


AsOfOpt = Annotated[
    datetime | None,
    time_option(
        "--as-of",
        help="Act as if it were this time: replays history on a simulated clock. Default: now. "
        "TIME is 1997-03-20, 1997-03-20T12:00:00 or 1997-03-20 12:00:00, UTC unless an offset "
        "follows (1997-03-20T12:00:00+0200).",
    ),
]


def handle_errors(fn: F) -> F:
    """Print retrainer's errors as ``error: ...`` lines with exit code 2 (usage, config) or 1.

    Permission and disk errors that no store turned into a
    :class:`~retrainer.errors.StorageError` (an ``OSError`` such as ``EACCES`` or ``ENOSPC``,
    a SQLite "readonly database") get one line naming the path too, never a traceback.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return _storage_errors_named(fn, args, kwargs)
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


def _storage_errors_named(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Call ``fn``; a permission or disk error it lets out becomes a StorageError."""
    try:
        return fn(*args, **kwargs)
    except RetrainerError:
        raise
    except Exception as exc:
        from retrainer.adapters.metadata.outage import unavailable

        if (reason := unavailable(exc)) is not None:
            raise StorageError(
                f"the metadata database went away ({reason}); what was done before is kept: "
                "run the command again once it is back (a run cut short is marked failed or "
                "retried by the next run or daemon tick)"
            ) from exc
        if not is_storage_error(exc):
            raise
        path = getattr(exc, "filename", None)
        where = "the database" if path is None and not isinstance(exc, OSError) else path
        raise StorageError.from_os_error(
            exc, doing="cannot use", path=str(where or "a file")
        ) from exc


def make_clock(as_of: datetime | None) -> Clock:
    """A simulated clock at ``--as-of`` (checked to be in range), else the wall clock."""
    if as_of is not None:
        return SimulatedClock(check_time(as_of, "--as-of"))
    from retrainer.adapters.clock import WallClock

    return WallClock()


def open_project(config: Path | None) -> Any:
    from retrainer.engine.project import Project

    return Project.open(config)


def main() -> None:
    """Console entry point."""
    app()
