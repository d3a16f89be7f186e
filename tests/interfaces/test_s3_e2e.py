"""End to end on S3 (moto's server on loopback): a project whose source, artifacts and logs
are ``s3://`` URLs trains, promotes, loads its model back (sha256 checked), scores a file and
logs predictions and feedback that the monitor's join reads back."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from retrainer import Project
from retrainer.adapters.logstore.connection import shared_connection
from retrainer.cli import app
from retrainer.errors import ArtifactIntegrityError
from retrainer.testing import drifting_frame, pipeline_spec

runner = CliRunner()


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"retrainer {' '.join(args)}: {result.stderr}"
    return result.stdout


def _s3_project(root: Path, bucket: str) -> Path:
    import s3fs

    frame = drifting_frame()
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    s3fs.S3FileSystem().pipe_file(f"{bucket}/data/toy.parquet", buffer.getvalue())
    spec = pipeline_spec(
        source={"kind": "parquet", "url": f"s3://{bucket}/data/toy.parquet", "time_column": "ts"}
    )
    config = {
        "storage": {"artifacts_url": f"s3://{bucket}/artifacts", "logs_url": f"s3://{bucket}/logs"},
        "pipelines": [spec],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "retrainer.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = frame.tail(20).drop(columns=["y"])
    rows.insert(0, "id", [f"r{i}" for i in range(len(rows))])
    rows.to_parquet(root / "score.parquet")
    return root


def test_a_project_on_s3_trains_promotes_loads_and_logs(tmp_path: Path, s3_bucket: str) -> None:
    import s3fs

    proj = _s3_project(tmp_path / "proj", s3_bucket)
    _cli("run", "-c", str(proj))
    with Project.open(proj) as project:
        champion = project.store.get_alias("toy", "champion")
        assert champion is not None
        mv = project.store.get_version("toy", champion)
        blob = project.artifacts.url(mv.artifact_sha256)
        assert blob.startswith(f"s3://{s3_bucket}/artifacts/sha256/")
        model = project.load_version(mv)
        assert hasattr(model, "predict")

    # predictions scored from a local file land in the S3 log, as do their labels
    _cli(
        "predict", str(proj / "score.parquet"), "-o", str(tmp_path / "out.parquet"), "-c", str(proj)
    )
    scored = pd.read_parquet(tmp_path / "out.parquet")
    feedback = pd.DataFrame(
        {"id": scored["prediction_id"], "timestamp": "2099-01-01T00:00:00", "outcome": 1}
    )
    feedback.to_csv(tmp_path / "feedback.csv", index=False)
    _cli("log", "feedback", str(tmp_path / "feedback.csv"), "-c", str(proj))
    fs = s3fs.S3FileSystem()
    assert fs.glob(f"{s3_bucket}/logs/predictions/date=*/*.parquet")
    with Project.open(proj) as project:
        joined = project.log_store().joined("toy", None, None, feedback_until=datetime(2100, 1, 1))
    assert len(joined) == len(scored) and joined["outcome"].notna().all()
    loaded = (
        shared_connection()
        .execute(
            "SELECT count(*) FROM duckdb_extensions() WHERE loaded AND extension_name = 'httpfs'"
        )
        .fetchall()
    )
    assert loaded == [(0,)]  # DuckDB read nothing from S3 itself

    # a blob changed behind the store's back is refused on load
    fs.pipe_file(blob, b"not the model")
    with Project.open(proj) as project, pytest.raises(ArtifactIntegrityError):
        project.load_version(project.store.get_version("toy", champion))
