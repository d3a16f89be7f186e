"""The ``retrainer`` command line: each command parses, calls one engine function, renders.

`app` holds the Typer app and the shared options, `render` everything printed; the commands
live in one module per use case and are registered here, in the order ``--help`` lists them.

Exit codes: 0 success; 1 the operation failed (a failed run, a refused promotion, a broken
artifact); 2 bad usage or configuration (one line per problem on stderr).
"""

from __future__ import annotations

from retrainer.cli import backtest, control, monitoring, prefect, project, runs, serve, tokens
from retrainer.cli.app import (
    app,
    backtest_app,
    db_app,
    log_app,
    main,
    models_app,
    prefect_app,
    token_app,
)
from retrainer.cli.mlflow import mlflow_app

app.add_typer(mlflow_app, name="mlflow")

app.command()(project.init)
app.command()(runs.run)
app.command()(runs.status)
app.command()(runs.promote)
app.command()(runs.rollback)
app.command()(runs.gc)
app.command()(monitoring.monitor)
app.command()(serve.serve)
app.command()(serve.predict)
app.command()(serve.ui)
app.command()(control.daemon)
app.command()(control.events)
app.command()(backtest.demo)
app.command("config-schema")(project.config_schema)
models_app.command("list")(runs.models_list)
models_app.command("show")(runs.models_show)
log_app.command("predictions")(monitoring.log_predictions)
log_app.command("feedback")(monitoring.log_feedback)
db_app.command("upgrade")(control.db_upgrade)
token_app.command("create")(tokens.create)
token_app.command("list")(tokens.list_)
token_app.command("revoke")(tokens.revoke)
backtest_app.callback(invoke_without_command=True)(backtest.backtest)
backtest_app.command("rollout")(backtest.rollout)
prefect_app.command("deploy")(prefect.deploy)

__all__ = ["app", "main"]
