"""Without Prefect (the project's .venv): a one-line error naming the extra, and the
deployment plan (``deploy --dry-run``) still works, from the config alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.errors import ConfigError
from retrainer.integrations.prefect import pipeline_flow, plan_deployments
from tests.conftest import write_project


@pytest.mark.skipif(importlib.util.find_spec("prefect") is not None, reason="prefect installed")
def test_missing_prefect_names_the_extra(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pip install 'retrainer\[prefect\]'"):
        pipeline_flow(write_project(tmp_path))
    result = CliRunner().invoke(app, ["prefect", "deploy", "-c", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'retrainer[prefect]'" in result.output


def test_the_plan_needs_no_prefect(tmp_path: Path) -> None:
    folder = write_project(tmp_path, triggers=[{"schedule": "@daily"}, {"manual": {}}])
    plans = plan_deployments(folder, watch_every=__import__("datetime").timedelta(minutes=5))
    assert [(p.name, p.schedule) for p in plans] == [
        ("toy-schedule", "cron '@daily' (UTC)"),
        ("toy-watch", "every 300s"),
    ]
    assert plan_deployments(write_project(tmp_path / "none")) == []
