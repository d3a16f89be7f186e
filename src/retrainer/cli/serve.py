"""Serving commands: run the prediction server, score a file with the champion."""

from __future__ import annotations

import errno
import os
import signal
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from retrainer.cli.app import ConfigOpt, PipelineOpt, handle_errors, open_project
from retrainer.cli.render import out
from retrainer.errors import ConfigError, RetrainerError
from retrainer.extras import EXTRAS, require


def _need_server_packages() -> None:
    for module in EXTRAS["serve"]:
        require(module, extra="serve", needed_for="retrainer serve")


HostOpt = Annotated[
    str | None,
    typer.Option(help="Address to listen on (default: serve.host, 127.0.0.1).", show_default=False),
]
PortOpt = Annotated[
    int | None,
    typer.Option(help="Port (default: serve.port, 8000).", min=0, max=65535, show_default=False),
]


@handle_errors
def serve(
    config: ConfigOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
) -> None:
    """Serve every pipeline's champion over HTTP: predict, feedback, health, metrics, /docs.

    Models follow the registry (a promotion or rollback is served within serve.poll_interval seconds, without a restart); predictions and feedback go to the project's log. SIGTERM or Ctrl-C stops it after flushing the log. Put a TLS-terminating reverse proxy in front of it (docs/serving.md).
    """  # noqa: E501
    _need_server_packages()
    import uvicorn

    from retrainer.server.app import create_app

    project, host, port = _open_at(config, host, port)
    names = ", ".join(p.name for p in project.config.pipelines)
    out.print(
        escape(f"serving {names} at http://{host}:{port} (API description: /docs)"),
        soft_wrap=True,
    )
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the handler
    # it found; with these no-op handlers the command ends with its own line and exit code 0
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if workers == 1:
            uvicorn.run(create_app(project), host=host, port=port, log_level="warning")
        else:
            project.close()  # each worker opens its own
            os.environ["RETRAINER_CONFIG"] = str(project.config_path)
            uvicorn.run(
                "retrainer.server.app:app_from_environment",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        project.close()
    out.print("stopped: the prediction log is flushed")


@handle_errors
def ui(
    config: ConfigOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    sign_in: Annotated[
        str,
        typer.Option(
            "--sign-in",
            help="Print a sign-in link with a token made for this session (revoked when the "
            "dashboard stops): 'admin' (look and act), 'read' (look), or 'none' (sign in with "
            "a token of your own).",
        ),
    ] = "admin",
) -> None:
    """Serve the dashboard alone (no predictions): the pipelines' health, history and
    decisions in a browser at /ui, on the project's stores.

    retrainer serve includes the same pages. Sign in with an API token (retrainer token create --scope read|admin), or open the link printed here. Ctrl-C stops it.
    """  # noqa: E501
    _need_server_packages()
    if sign_in not in ("admin", "read", "none"):
        raise ConfigError(f"--sign-in must be admin, read or none; got {sign_in!r}")
    project, host, port = _open_at(config, host, port)
    try:
        serve_dashboard(project, host, port, sign_in=None if sign_in == "none" else sign_in)
    finally:
        project.close()


def serve_dashboard(project: Any, host: str, port: int, *, sign_in: str | None) -> None:
    """Run the dashboard of ``project`` on ``host:port`` until Ctrl-C or SIGTERM, printing its
    address (with a sign-in link for a token of scope ``sign_in`` made for the session)."""
    import uvicorn

    from retrainer.engine.tokens import create_token, revoke_token
    from retrainer.server.dashboard import create_dashboard_app

    token = None
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    base = f"http://{shown}:{port}/ui"
    if sign_in is not None:
        token, secret = create_token(
            project, name=f"retrainer ui ({sign_in})", scopes=[sign_in], now=project.clock.now()
        )
        out.print(escape(f"dashboard at {base}; sign in with this link (valid while it runs):"))
        out.print(escape(f"  {base}/login?token={secret}"), soft_wrap=True)
    else:
        out.print(escape(f"dashboard at {base} (sign in with a read or admin token)"))
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.run(create_dashboard_app(project), host=host, port=port, log_level="warning")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if token is not None:
            revoke_token(project, token.id, now=project.clock.now())
    out.print("stopped")


def _open_at(config: Any, host: str | None, port: int | None) -> tuple[Any, str, int]:
    """The project, and the address to serve it on (``serve.host``/``serve.port`` unless
    given), checked free before anything starts (the project is closed if it is not)."""
    project = open_project(config)
    cfg = project.config.serve
    host = host if host is not None else cfg.host
    port = port if port is not None else cfg.port
    try:
        _check_listen(host, port)
    except RetrainerError:
        project.close()
        raise
    return project, host, port


def _check_listen(host: str, port: int) -> None:
    """Fail with one line, before anything is served, when ``host:port`` cannot be listened on
    (uvicorn would print its own error after our "serving" line and exit 3)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise RetrainerError(
            f"cannot listen on {host}:{port}: {exc.strerror}; check --host"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # as uvicorn binds: a port in TIME_WAIT after a restart is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            hint = "; choose another --port" if exc.errno == errno.EADDRINUSE else ""
            raise RetrainerError(f"cannot listen on {host}:{port}: {reason}{hint}") from None


def _stopped(signum: int, frame: object) -> None:
    """The signal uvicorn re-raises after its graceful stop: already handled."""


@handle_errors
def predict(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file of rows to score.")],
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Where to write the rows with their predictions (.csv or .parquet)."
        ),
    ],
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log the predictions.")] = False,
) -> None:
    """Score a file with the champion (batch scoring) and log the predictions as the server does.

    The output has the file's columns plus prediction_id, prediction, score and model_version.
    """
    from retrainer.engine.serving import score_file

    with open_project(config) as project:
        scored = score_file(project, file, out_file, pipeline=pipeline, log=not no_log)
    logged = f"; logged {scored.logged} predictions" if not no_log else ""
    out.print(
        escape(
            f"scored {scored.rows} rows of {file} with {scored.pipeline} v{scored.version} "
            f"-> {scored.out}{logged}"
        ),
        soft_wrap=True,
    )
