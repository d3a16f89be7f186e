"""retrainer.testing: the factories the tests (and users' tests) build projects with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from retrainer import Project, SimulatedClock, execute_run, parse_config
from retrainer.adapters.sources import CallableSource
from retrainer.testing import drifting_frame, in_memory_project, pipeline_spec, write_project

T1 = datetime(2024, 1, 20, tzinfo=UTC)


def test_drifting_frame_is_reproducible_and_drifts_only_after_the_given_time():
    base = drifting_frame(24 * 10, seed=3)
    pd.testing.assert_frame_equal(base, drifting_frame(24 * 10, seed=3))
    assert not base.equals(drifting_frame(24 * 10, seed=4))
    assert list(base.columns) == ["ts", "x1", "x2", "segment", "y"]
    assert base["ts"].iloc[0] == pd.Timestamp("2024-01-01") and base["ts"].diff().iloc[1] == (
        pd.Timedelta(hours=1)
    )
    shifted = drifting_frame(24 * 10, seed=3, shift_after="2024-01-05", shift=2.0)
    late = base["ts"] >= pd.Timestamp("2024-01-05")
    assert (shifted.loc[~late, "x1"] == base.loc[~late, "x1"]).all()
    assert (shifted.loc[late, "x1"] - base.loc[late, "x1"]).round(12).eq(2.0).all()
    flipped = drifting_frame(24 * 10, seed=3, flip_after="2024-01-05")
    assert (flipped.loc[~late, "y"] == base.loc[~late, "y"]).all()
    assert (flipped.loc[late, "y"] == 1 - base.loc[late, "y"]).all()


def test_pipeline_spec_is_a_valid_pipeline_and_takes_overrides():
    cfg = parse_config({"pipelines": [pipeline_spec(metrics=["accuracy"])]}).pipeline()
    assert cfg.name == "toy" and cfg.metric_names() == ["accuracy"]
    assert cfg.blessing.sanity.enabled is False
    assert pipeline_spec() == pipeline_spec()  # a fresh mapping each time
    pipeline_spec()["features"].append("x3")
    assert pipeline_spec()["features"] == ["x1", "x2"]


@pytest.mark.parametrize("kind", ["frame", "function", "source", "default"])
def test_in_memory_project_reads_the_data_it_is_given(tmp_path: Path, kind: str):
    frame = drifting_frame(24 * 25, seed=2)
    data = {
        "frame": frame,
        "function": lambda start, end: frame,
        "source": CallableSource(lambda start, end: frame, time_column="ts", name="mine"),
        "default": None,
    }[kind]
    project = in_memory_project(data, root=tmp_path)
    result = execute_run(project, clock=SimulatedClock(T1))
    assert result.ok and result.promoted
    rows = 19 * 24  # the hourly rows before T1
    assert result.version is not None and result.version.snapshot.rows == rows
    assert project.root == tmp_path


def test_in_memory_project_takes_settings_and_a_clock():
    clock = SimulatedClock(T1)
    project = in_memory_project(
        settings={"controller": {"max_attempts": 5}}, clock=clock, name="other"
    )
    assert project.config.controller.max_attempts == 5
    assert project.clock is clock and project.pipeline().name == "other"
    assert execute_run(project, clock=project.clock).promoted
    project.close()


def test_write_project_is_a_folder_the_cli_opens(tmp_path: Path):
    folder = write_project(tmp_path / "p", drifting_frame(100), metrics=["accuracy"])
    assert len(pd.read_parquet(folder / "data.parquet")) == 100
    with Project.open(folder) as project:
        assert project.pipeline().config.metric_names() == ["accuracy"]
