"""The Dask executor on a real LocalCluster: a controller's run executes on a Dask worker."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retrainer.adapters.executors import Job
from retrainer.core.clock import SimulatedClock
from retrainer.engine.control.controller import Controller
from retrainer.engine.project import Project
from tests.conftest import write_project

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def executor():
    from retrainer.integrations.dask import DaskExecutor

    ex = DaskExecutor(max_workers=1)
    yield ex
    ex.shutdown(grace_s=5)


def _wait(ex, n=1, timeout=120):
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < n and time.monotonic() < deadline:
        out += ex.poll()
        time.sleep(0.05)
    return out


def test_job_runs_on_a_dask_worker(executor):
    executor.submit(
        Job(run_id=1, epoch=1, pipeline="p", argv=(sys.executable, "-c", "import sys; sys.exit(7)"))
    )
    (result,) = _wait(executor)
    assert not result.ok and result.exit_code == 7


def test_controller_run_executes_on_dask(tmp_path: Path, executor):
    proj = write_project(
        tmp_path / "p",
        triggers=[{"schedule": "0 2 * * *", "catch_up": True}],
        blessing={
            "holdout": 0.25,
            "rules": [{"metric": "accuracy", "min": 0.5}],
            "sanity": {"enabled": False},
        },
    )
    with Project.open(proj) as project:
        clock = SimulatedClock(datetime(2024, 1, 20, 3, tzinfo=UTC))
        controller = Controller(project, clock=clock, executor=executor)
        assert len(controller.tick().started) == 1
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
            and project.store.list_runs("toy", limit=1)[0].status == "running"
        ):
            time.sleep(0.2)
        clock.advance(timedelta(minutes=5))
        controller.tick()
        run = project.store.list_runs("toy", limit=1)[0]
        assert run.status == "succeeded" and run.version == 1
        # the run records the Dask worker it executed on
        (done,) = [e for e in project.store.list_events("toy") if e.kind == "run.succeeded"]
        placed = done.data["executed_on"]
        workers = executor.client.scheduler_info()["workers"]
        assert placed["executor"] == "dask" and placed["dask_worker"] in workers
        assert f"{placed['host']}:{placed['pid']}" == run.owner


def test_missing_distributed_says_how_to_install(monkeypatch):
    import builtins

    from retrainer.errors import ConfigError
    from retrainer.integrations import dask as mod

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "distributed":
            raise ImportError("no")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ConfigError, match=r"pip install 'retrainer\[dask\]'"):
        mod._distributed()


def test_backtest_policies_run_on_the_dask_cluster(tmp_path: Path, executor):
    import yaml

    from retrainer.engine.backtest import run_backtest
    from tests.conftest import make_frame

    proj = write_project(
        tmp_path / "p",
        make_frame(n=24 * 30),
        blessing={"holdout": 0.2, "rules": [{"metric": "accuracy", "min": 0.0}]},
    )
    address = executor._cluster.scheduler_address
    (proj / "backtest.yaml").write_text(
        yaml.safe_dump(
            {
                "warm_start": 0.5,
                "degradation": {"every": 3, "max_age": 5},
                "executor": {"kind": "dask", "address": address},
                "policies": [
                    {"name": "never"},
                    {"name": "every 3 days", "triggers": [{"schedule": "every 3d"}]},
                ],
            }
        )
    )
    result = run_backtest(proj / "backtest.yaml", tmp_path / "out")
    by_name = {p.name: p for p in result.results.policies}
    assert by_name["never"].retrains == 0
    assert by_name["every 3 days"].retrains >= 4
    assert result.results.degradation is not None
