"""``retrainer prefect deploy --dry-run``: what would be served, without a server."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.integrations import require

prefect = require("prefect", "prefect")

from retrainer.cli import app  # noqa: E402
from tests.conftest import write_project  # noqa: E402


def test_deploy_dry_run_prints_the_deployments(tmp_path: Path) -> None:
    folder = write_project(tmp_path, triggers=[{"schedule": "0 2 * * MON"}, {"manual": {}}])
    result = CliRunner().invoke(app, ["prefect", "deploy", "--project", str(folder), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("toy-schedule  flow=retrain-toy  cron '0 2 * * MON' (UTC)")
    assert "parameters={'trigger': 'schedule'}" in lines[0]
    assert lines[1].startswith("toy-watch  flow=watch-toy  every 60s")


def test_deploy_dry_run_json(tmp_path: Path) -> None:
    folder = write_project(tmp_path, triggers=[{"schedule": "every 1d"}])
    result = CliRunner().invoke(
        app, ["prefect", "deploy", "-c", str(folder), "--dry-run", "--json", "--watch-every", "30"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {
            "name": "toy-schedule",
            "flow": "retrain-toy",
            "pipeline": "toy",
            "cron": None,
            "timezone": None,
            "interval_seconds": 86400.0,
            "parameters": {"trigger": "schedule"},
        }
    ]
