"""The MLflow integration without MLflow (the project's .venv): its config is validated, and a
missing extra is one line naming what to install. Against a real MLflow: tests/integrations/mlflow."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.config import parse_config
from retrainer.engine.project import Project
from retrainer.errors import ConfigError
from retrainer.integrations.mlflow import MlflowTemplate, sync_mlflow
from retrainer.testing import pipeline_spec
from tests.conftest import write_project

INSTALL = "pip install 'retrainer[mlflow]'"


@pytest.fixture
def no_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import mlflow`` fails, whether or not this venv has it."""
    monkeypatch.setitem(sys.modules, "mlflow", None)


def _with_mlflow(folder: Path, section: dict[str, object]) -> Path:
    data = yaml.safe_load((folder / "retrainer.yaml").read_text())
    data["mlflow"] = section
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(data))
    return folder


@pytest.mark.usefixtures("no_mlflow")
def test_the_missing_extra_is_one_line_naming_it(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        MlflowTemplate("models:/churn@champion")()
    assert len(str(info.value).splitlines()) == 1
    assert INSTALL in str(info.value)

    folder = _with_mlflow(write_project(tmp_path / "p"), {"tracking_uri": "sqlite:///m.db"})
    with Project.open(folder) as project, pytest.raises(ConfigError, match="retrainer\\[mlflow\\]"):
        sync_mlflow(project, datetime(2024, 1, 1, tzinfo=UTC))
    result = CliRunner().invoke(app, ["mlflow", "sync", "-c", str(folder)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and INSTALL in lines[0], result.stderr


def test_sync_without_an_mlflow_section_names_it(tmp_path: Path):
    with (
        Project.open(write_project(tmp_path / "p")) as project,
        pytest.raises(ConfigError, match="no 'mlflow:' section"),
    ):
        sync_mlflow(project, datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (
            {"mlflow": "churn"},
            "pipelines[0].model.mlflow: got 'churn'; must be an MLflow model URI",
        ),
        ({"mlflow": "models:/churn"}, "pipelines[0].model.mlflow: got 'models:/churn'"),
        (
            {"mlflow": "models:/a@b", "estimator": "sklearn.linear_model:LogisticRegression"},
            "pipelines[0].model: ",
        ),
        ({"params": {"C": 1}}, "give exactly one of 'estimator' (module:Class) or 'mlflow'"),
    ],
)
def test_a_bad_model_mlflow_key_is_named(model: dict[str, object], problem: str):
    with pytest.raises(ConfigError) as info:
        parse_config({"pipelines": [pipeline_spec(model=model)]})
    assert any(p.startswith(problem) or problem in p for p in info.value.problems), (
        info.value.problems
    )


@pytest.mark.parametrize(
    "uri", ["models:/churn@champion", "models:/churn/3", "runs:/abc123/model", "s3://b/m"]
)
def test_model_uris_mlflow_loads_are_accepted(uri: str):
    cfg = parse_config({"pipelines": [pipeline_spec(model={"mlflow": uri})]})
    assert cfg.pipeline().model is not None and cfg.pipeline().model.mlflow == uri


def test_the_mlflow_section_is_validated_and_never_echoes_a_secret():
    cfg = parse_config(
        {"mlflow": {"tracking_uri": "http://mlflow:5000"}, "pipelines": [pipeline_spec()]}
    )
    assert cfg.mlflow is not None and cfg.mlflow.experiment == "retrainer"
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "mlflow": {"tracking_uri": "http://me:s3cret@mlflow:5000", "colour": "red"},
                "pipelines": [pipeline_spec()],
            }
        )
    text = "\n".join(info.value.problems)
    assert "s3cret" not in text
    assert "mlflow.tracking_uri: the tracking URI must not carry credentials" in text
    assert "mlflow.colour: unknown key" in text
