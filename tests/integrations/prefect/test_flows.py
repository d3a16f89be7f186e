"""The retrain and watch flows on Prefect's ephemeral API, over a real project folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integrations import require

prefect = require("prefect", "prefect")

from retrainer.engine.control.controller import request_run  # noqa: E402
from retrainer.engine.project import Project  # noqa: E402
from retrainer.integrations.prefect import (  # noqa: E402
    _served,
    pipeline_flow,
    plan_deployments,
    watch_flow,
)
from tests.conftest import make_frame, write_project  # noqa: E402

T = datetime(2024, 1, 20, tzinfo=UTC)


def _runs(folder: Path) -> list:
    with Project.open(folder) as project:
        return project.store.list_runs("toy", limit=None)


def test_a_flow_run_trains_blesses_and_deploys(tmp_path: Path) -> None:
    folder = write_project(tmp_path)
    result = pipeline_flow(folder)(logical_time=T)
    assert result["status"] == "succeeded"
    [run] = _runs(folder)
    assert run.status == "succeeded" and run.outcome == "promoted"
    assert run.key == f"toy/schedule/{T.isoformat()}"
    with Project.open(folder) as project:
        assert project.store.get_alias("toy", "champion") == run.version == 1
        kinds = [e.kind for e in project.store.list_events(pipeline="toy", limit=None)]
    assert {"run.queued", "run.succeeded"} <= set(kinds)
    assert any(k.startswith("blessing.") for k in kinds)


def test_the_same_logical_time_again_does_not_run_again(tmp_path: Path) -> None:
    folder = write_project(tmp_path)
    flow = pipeline_flow(folder)
    first = flow(logical_time=T)
    again = flow(logical_time=T)
    assert first["status"] == again["status"] == "succeeded"
    assert again["run_id"] == first["run_id"] and again["version"] == first["version"] == 1
    assert len(_runs(folder)) == 1
    with Project.open(folder) as project:
        assert len(project.store.list_versions("toy")) == 1
        queued = [
            e
            for e in project.store.list_events(pipeline="toy", limit=None)
            if e.kind == "run.queued"
        ]
    assert len(queued) == 1
    # another logical time is another run
    flow(logical_time=datetime(2024, 1, 21, tzinfo=UTC))
    assert len(_runs(folder)) == 2


def test_a_failing_training_fails_the_flow_and_the_run(tmp_path: Path) -> None:
    frame = make_frame()
    frame["y"] = 0  # one class: the logistic regression cannot be fitted
    folder = write_project(tmp_path, frame)
    state = pipeline_flow(folder)(logical_time=T, return_state=True)
    assert state.is_failed()
    [run] = _runs(folder)
    assert run.status == "failed" and run.version is None
    with Project.open(folder) as project:
        assert project.store.get_alias("toy", "champion") is None
    # a re-run (or a flow retry) of that logical time fails again, and trains nothing
    assert pipeline_flow(folder)(logical_time=T, return_state=True).is_failed()
    assert len(_runs(folder)) == 1


def test_a_manual_request_fires_through_the_watch_flow(tmp_path: Path) -> None:
    folder = write_project(tmp_path, triggers=[{"schedule": "0 2 * * MON"}, {"manual": {}}])
    watch = watch_flow(folder)
    assert watch(logical_time=T)["fire"] is False  # nothing asked yet
    with Project.open(folder) as project:
        request = request_run(project, "toy", now=T, by="test")
    decided = watch(logical_time=T)
    assert decided["fire"] is True and decided["trigger"] == "manual"
    assert decided["run"]["status"] == "succeeded"
    [run] = _runs(folder)
    assert run.key == f"toy/manual/{request}"
    assert watch(logical_time=T)["fire"] is False  # the request is handled once


def test_the_guards_hold_a_scheduled_flow_run_back(tmp_path: Path) -> None:
    folder = write_project(
        tmp_path,
        triggers=[{"schedule": "0 2 * * MON"}, {"manual": {}}],
        guards=[{"cooldown": "3d"}],
    )
    flow = pipeline_flow(folder)
    assert flow(logical_time=T)["status"] == "succeeded"
    held = flow(logical_time=T + timedelta(days=1))
    assert held["status"] == "skipped" and held["reason"].startswith("cooldown")
    assert len(_runs(folder)) == 1
    assert flow(logical_time=T)["status"] == "succeeded"  # a re-run finds its own run
    # a manual request through the watch flow passed the guards in its decision
    with Project.open(folder) as project:
        request_run(project, "toy", now=T + timedelta(days=1), by="test")
    decided = watch_flow(folder)(logical_time=T + timedelta(days=1))
    assert decided["run"]["status"] == "succeeded"
    assert len(_runs(folder)) == 2


def test_the_deployments_carry_the_schedules(tmp_path: Path) -> None:
    folder = write_project(
        tmp_path,
        triggers=[
            {"schedule": "0 2 * * MON", "timezone": "Europe/Paris"},
            {"schedule": "every 7d", "name": "weekly"},
            {"manual": {}},
        ],
    )
    served = _served(folder, plan_deployments(folder))
    assert [p.name for p, _, _ in served] == ["toy-schedule", "toy-weekly", "toy-watch"]
    assert [f.name for _, f, _ in served] == ["retrain-toy", "retrain-toy", "watch-toy"]
    cron, every, watch = (s for _, _, s in served)
    assert (cron.cron, cron.timezone) == ("0 2 * * MON", "Europe/Paris")
    assert every.interval.total_seconds() == 7 * 86400
    assert every.anchor_date == datetime(1970, 1, 1, tzinfo=UTC)
    assert watch.interval.total_seconds() == 60
    assert served[1][0].parameters == {"trigger": "weekly"}


def test_a_pipeline_without_the_named_one_is_a_config_error(tmp_path: Path) -> None:
    from retrainer.errors import ConfigError

    with pytest.raises(ConfigError):
        pipeline_flow(write_project(tmp_path), "nope")
