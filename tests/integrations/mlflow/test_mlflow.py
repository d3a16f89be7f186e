"""retrainer.integrations.mlflow against a real MLflow tracking store (SQLite), in the
.venv-mlflow that `bash .ci/integration.sh mlflow` builds (skipped elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integrations import require

mlflow = require("mlflow", "mlflow")

from mlflow import MlflowClient  # noqa: E402

from retrainer.core.clock import SimulatedClock  # noqa: E402
from retrainer.engine.control.daemon import run_daemon  # noqa: E402
from retrainer.engine.project import Project  # noqa: E402
from retrainer.engine.runs.registry import promote, rollback  # noqa: E402
from retrainer.engine.runs.run import execute_run  # noqa: E402
from retrainer.integrations.mlflow import STATE_KEY, sync_mlflow  # noqa: E402
from tests.conftest import make_frame, write_project  # noqa: E402

START = datetime(2024, 1, 20, tzinfo=UTC)

# MLflow's own code paths warn (SQLAlchemy deprecations in its store, pydantic, ...):
# the project's "warnings are errors" is about retrainer's code
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
]


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SQLite tracking store, its artifacts in the test's folder."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield {
        "tracking_uri": uri,
        "experiment": "retrainer-tests",
        "artifact_location": (tmp_path / "mlartifacts").as_uri(),
    }


def _project(root: Path, mlflow_cfg: dict[str, Any] | None, **overrides: Any) -> Path:
    folder = write_project(root, make_frame(), **overrides)
    cfg_file = folder / "retrainer.yaml"
    data = yaml.safe_load(cfg_file.read_text())
    if mlflow_cfg is not None:
        data["mlflow"] = mlflow_cfg
    cfg_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _runs(client: MlflowClient, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_runs_versions_and_aliases_are_mirrored_and_a_replay_duplicates_nothing(
    tmp_path: Path, tracking: dict[str, str]
):
    clock = SimulatedClock(START)
    with Project.open(_project(tmp_path / "p", tracking)) as project:
        for _ in range(2):
            assert execute_run(project, clock=clock).ok
            clock.advance(timedelta(days=1))
        assert project.store.get_alias("toy", "champion") == 2
        report = sync_mlflow(project, clock.now())
        assert report.failed == {}
        assert (report.runs["toy"], report.versions["toy"]) == (2, 2)

        client = MlflowClient(tracking["tracking_uri"])
        runs = _runs(client, tracking["experiment"])
        assert [r.data.tags["retrainer.run_id"] for r in runs] == ["1", "2"]
        first = runs[0]
        stored = project.store.get_run(1)
        assert first.info.status == "FINISHED"
        assert first.data.tags["retrainer.cause"] == "manual"
        assert first.data.tags["retrainer.version"] == "1"
        assert first.data.metrics["accuracy"] == pytest.approx(stored.metrics["accuracy"])
        assert any(k.startswith("timing.") for k in first.data.metrics)
        assert first.data.params["estimator"] == "sklearn.linear_model:LogisticRegression"
        evidence = mlflow.artifacts.load_dict(f"{first.info.artifact_uri}/retrainer/evidence.json")
        assert evidence["cause"] == "manual"

        versions = {
            v.tags["retrainer.version"]: v for v in client.search_model_versions("name = 'toy'")
        }
        assert sorted(versions) == ["1", "2"]
        v2 = versions["2"]
        mv2 = project.store.get_version("toy", 2, profile=False)
        assert v2.run_id == runs[1].info.run_id
        assert v2.tags["retrainer.run_id"] == "2"
        assert v2.tags["retrainer.data_fingerprint"] == mv2.snapshot.fingerprint
        assert v2.tags["retrainer.code_hash"] == mv2.code.pipeline_hash
        assert v2.tags["retrainer.blessing"] == "passed"
        assert v2.tags["retrainer.artifact_sha256"] == mv2.artifact_sha256
        assert float(v2.tags["retrainer.metric.accuracy"]) == pytest.approx(mv2.metrics["accuracy"])
        champion = client.get_model_version_by_alias("toy", "champion")
        assert champion.tags["retrainer.version"] == "2"

        # a rollback, then a promotion: the alias follows each
        rollback(project, clock=clock)
        assert sync_mlflow(project, clock.now()).aliases["toy"] == 1
        champion = client.get_model_version_by_alias("toy", "champion")
        assert champion.tags["retrainer.version"] == "1"
        promote(project, 2, clock=clock, alias="challenger")
        sync_mlflow(project, clock.now())
        challenger = client.get_model_version_by_alias("toy", "challenger")
        assert challenger.tags["retrainer.version"] == "2"

        # a crash after MLflow was written but before the cursor moved: the replay from the
        # start creates nothing twice
        value, revision = project.store.get_state("toy", STATE_KEY)  # type: ignore[misc]
        project.store.put_state("toy", STATE_KEY, {}, at=clock.now(), expected_revision=revision)
        again = sync_mlflow(project, clock.now())
        assert again.failed == {}
        assert again.runs["toy"] == 2  # walked again...
        assert len(_runs(client, tracking["experiment"])) == 2  # ...but not created again
        assert len(client.search_model_versions("name = 'toy'")) == 2
        assert len(client.get_run(runs[0].info.run_id).data.metrics) == len(first.data.metrics)
        assert client.get_model_version_by_alias("toy", "champion").tags["retrainer.version"] == "1"
        assert project.store.get_state("toy", STATE_KEY)[0] == value  # type: ignore[index]

        # nothing new: no MLflow write, the cursor state untouched
        _, rev = project.store.get_state("toy", STATE_KEY)  # type: ignore[misc]
        assert sync_mlflow(project, clock.now()).runs["toy"] == 0
        assert project.store.get_state("toy", STATE_KEY)[1] == rev  # type: ignore[index]


def test_a_dead_tracking_server_never_fails_a_retrain(tmp_path: Path, tracking: dict[str, str]):
    dead = {"tracking_uri": "http://127.0.0.1:9", "max_retries": 0, "timeout": 2}
    folder = _project(tmp_path / "p", dead, triggers=[{"schedule": "0 0 * * *"}])
    with Project.open(folder) as project:
        summary = run_daemon(project, as_of=START, tick_s=86400, max_ticks=2, executor="inline")
        assert summary.ticks == 2
        runs = project.store.list_runs("toy")
        assert runs and all(r.status == "succeeded" for r in runs)
        failed = project.store.list_events(kinds=["mlflow.sync_failed"])
        assert len(failed) == 1  # one per outage, not one per tick
        assert "127.0.0.1:9" in failed[0].message or "Connection" in failed[0].message
        assert project.store.get_state("toy", STATE_KEY)[0]["failing"] is True  # type: ignore[index]
    # the server is back (another URI here): the next sync mirrors everything
    _project_cfg = yaml.safe_load((folder / "retrainer.yaml").read_text())
    _project_cfg["mlflow"] = tracking
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(_project_cfg, sort_keys=False))
    with Project.open(folder) as project:
        report = sync_mlflow(project, datetime(2024, 1, 23, tzinfo=UTC))
        assert report.failed == {}
        assert report.runs["toy"] == len(runs)
        assert project.store.get_state("toy", STATE_KEY)[0]["failing"] is False  # type: ignore[index]


def test_an_mlflow_registered_model_is_the_pipelines_model(
    tmp_path: Path, tracking: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking["tracking_uri"])
    client = MlflowClient(tracking["tracking_uri"])
    exp = client.create_experiment("base", artifact_location=tracking["artifact_location"])
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.sklearn.log_model(
            LogisticRegression(C=0.5, max_iter=50), name="model", registered_model_name="base"
        )
    client.set_registered_model_alias("base", "prod", info.registered_model_version)

    model = {"mlflow": "models:/base@prod", "params": {"max_iter": 300}}
    with Project.open(_project(tmp_path / "p", None, model=model)) as project:
        result = execute_run(project, clock=SimulatedClock(START))
        assert result.ok, result
        mv = project.store.get_version("toy", 1, profile=False)
        assert mv.params["estimator"] == "models:/base@prod"
        fitted = project.load_version(mv)
        assert fitted.get_params()["C"] == 0.5  # the MLflow model's parameters...
        assert fitted.get_params()["max_iter"] == 300  # ...with model.params set on them
        frame = make_frame()
        assert len(fitted.predict(frame[["x1", "x2"]])) == len(frame)


def test_a_model_uri_mlflow_cannot_load_fails_the_run_naming_it(
    tmp_path: Path, tracking: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking["tracking_uri"])
    model = {"mlflow": "models:/nowhere@prod"}
    with Project.open(_project(tmp_path / "p", None, model=model)) as project:
        result = execute_run(project, clock=SimulatedClock(START))
        assert not result.ok
        assert "models:/nowhere@prod" in (result.run.error or "")
