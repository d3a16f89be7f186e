"""retrainer's DAGs run by Airflow itself (``dag.test()`` and ``airflow dags test``) on a
SQLite metadata DB, on the elec2 example project."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integrations import require

airflow = require("airflow", "airflow")

pytestmark = [
    # skops, imported by a task to save a model, looks its types up over every loaded module,
    # and Airflow's modules warn on each deprecated name it touches
    pytest.mark.filterwarnings("ignore::airflow.utils.deprecation_tools.DeprecatedImportWarning"),
    # Airflow's own lazy load of a DAG run's serialized DAG once the DAG file has changed
    # (each test writes it for its project): Airflow's, not retrainer's
    pytest.mark.filterwarnings("ignore:Multiple rows returned with uselist=False:Warning"),
]

from retrainer.engine.control.controller import request_run  # noqa: E402
from retrainer.engine.project import Project  # noqa: E402
from retrainer.engine.scaffold import init_project  # noqa: E402
from retrainer.engine.state import CHAMPION  # noqa: E402
from retrainer.integrations.airflow import build_dags  # noqa: E402

MONDAY = datetime(1997, 6, 2, tzinfo=UTC)
NEXT_MONDAY = datetime(1997, 6, 9, tzinfo=UTC)

BROKEN = """

def broken(data, params):
    raise RuntimeError("the training code is broken")
"""


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata DB (SQLite in the AIRFLOW_HOME of conftest.py), created once."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def project(tmp_path: Path, airflow_db: None) -> Iterator[Path]:
    """The elec2 example, weekly (Monday 00:00 UTC) with manual requests, and a pipeline
    whose training raises."""
    root = tmp_path / "proj"
    init_project(root, "elec2")
    config_file = root / "retrainer.yaml"
    config = yaml.safe_load(config_file.read_text())
    elec2 = config["pipelines"][0]
    elec2["triggers"] = [{"schedule": "0 0 * * MON"}, {"manual": {}}]
    config["pipelines"].append(
        {**elec2, "name": "broken", "train": "pipeline:broken", "triggers": [{"manual": {}}]}
    )
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    with (root / "pipeline.py").open("a") as f:
        f.write(BROKEN)
    # the user's DAG file, two lines: dag.test() reads the DAGs from Airflow's dags folder
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    dag_file = folder / "retrainer_dags.py"
    dag_file.write_text(
        "from retrainer.integrations.airflow import build_dags\n"
        f"globals().update(build_dags({str(root)!r}))\n"
    )
    yield root
    dag_file.unlink()


def _run(dag: Any, logical_date: datetime) -> Any:
    """``dag.test()`` for ``logical_date``: the DAG run, its tasks' states by task id."""
    dag_run = dag.test(logical_date=logical_date)
    return dag_run


def _states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            ti.task_id: str(getattr(ti.state, "value", ti.state))
            for ti in dag_run.get_task_instances(session=session)
        }


def _runs(root: Path, pipeline: str = "elec2") -> list[Any]:
    with Project.open(root) as project:
        return list(project.store.list_runs(pipeline, limit=None))


def _events(root: Path, pipeline: str = "elec2") -> list[Any]:
    with Project.open(root) as project:
        return list(project.store.list_events(pipeline=pipeline, limit=1000))


def test_build_dags_gives_a_dag_per_pipeline_on_its_schedule(project: Path):
    dags = build_dags(project)
    assert sorted(dags) == ["broken", "broken__watch", "elec2", "elec2__watch"]
    elec2 = dags["elec2"]
    assert [t.task_id for t in elec2.tasks] == ["decide", "train", "bless", "deploy"]
    assert type(elec2.timetable).__name__ == "CronTriggerTimetable"
    assert elec2.timetable.expression == "0 0 * * MON"
    # manual requests only: no schedule of its own, a watch DAG every 5 minutes
    assert type(dags["broken"].timetable).__name__ == "NullTimetable"
    watch = dags["broken__watch"].timetable
    assert type(watch).__name__ == "DeltaTriggerTimetable"
    assert watch.delta == timedelta(minutes=5)


def test_a_scheduled_dag_run_trains_blesses_and_deploys(project: Path):
    dag = build_dags(project)["elec2"]
    dag_run = _run(dag, MONDAY)
    assert _states(dag_run) == dict.fromkeys(["decide", "train", "bless", "deploy"], "success")
    [run] = _runs(project)
    assert run.key == "elec2/schedule/1997-06-02T00:00:00+00:00"
    assert run.status == "succeeded"
    with Project.open(project) as p:
        assert p.store.get_alias("elec2", CHAMPION) is not None
    kinds = [e.kind for e in _events(project)]
    assert "run.queued" in kinds and "run.succeeded" in kinds
    assert any(k.startswith("blessing.") for k in kinds)
    queued = next(e for e in _events(project) if e.kind == "run.queued")
    assert queued.data["trigger"] == "schedule"
    assert queued.data["slot"] == "1997-06-02T00:00:00+00:00"


def test_the_same_logical_date_again_creates_no_second_run(project: Path):
    dag = build_dags(project)["elec2"]
    _run(dag, MONDAY)
    again = _run(dag, MONDAY)  # a cleared DAG run, a retry, a backfill over the same date
    states = _states(again)
    assert states["decide"] == "skipped" or states["train"] == "skipped", states
    assert [r.status for r in _runs(project)] == ["succeeded"]
    assert [e.kind for e in _events(project)].count("run.queued") == 1


def test_two_logical_dates_make_two_runs(project: Path):
    dag = build_dags(project)["elec2"]
    _run(dag, MONDAY)
    _run(dag, NEXT_MONDAY)
    runs = _runs(project)
    assert sorted(r.key for r in runs) == [
        "elec2/schedule/1997-06-02T00:00:00+00:00",
        "elec2/schedule/1997-06-09T00:00:00+00:00",
    ]
    assert {r.status for r in runs} == {"succeeded"}


def test_the_guards_hold_a_scheduled_dag_run_back(project: Path):
    config_file = project / "retrainer.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["pipelines"][0]["guards"] = [{"max_retrains": {"count": 1, "per": "30d"}}]
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    dag = build_dags(project)["elec2"]
    assert _states(_run(dag, MONDAY))["deploy"] == "success"
    held = _states(_run(dag, NEXT_MONDAY))
    assert held == dict.fromkeys(["decide", "train", "bless", "deploy"], "skipped")
    assert [r.key for r in _runs(project)] == ["elec2/schedule/1997-06-02T00:00:00+00:00"]
    evaluated = [e for e in _events(project) if e.kind == "trigger.evaluated"]
    assert [e.data["fire"] for e in evaluated] == [False]
    assert evaluated[0].data["reason"].startswith("max_retrains")
    # a cleared DAG run of the admitted date still finds its run: the guard does not count it
    again = _states(_run(dag, MONDAY))
    assert again["decide"] == "skipped" and "run exists" not in str(again)
    assert len(_runs(project)) == 1


def test_a_manual_request_fires_through_the_watch_dag(project: Path):
    dags = build_dags(project)
    nothing = _run(dags["elec2__watch"], MONDAY)
    assert _states(nothing)["train"] == "skipped"
    assert _runs(project) == []
    with Project.open(project) as p:
        request = request_run(p, "elec2", now=MONDAY, by="ana")
    fired = _run(dags["elec2__watch"], NEXT_MONDAY)
    assert _states(fired) == dict.fromkeys(["decide", "train", "bless", "deploy"], "success")
    [run] = _runs(project)
    assert run.key == f"elec2/manual/{request}"
    assert run.status == "succeeded"
    # the decision's evidence (the request) and Airflow's (which DAG run) are the run's
    assert run.evidence["id"] == request and run.evidence["by"] == "ana"
    assert run.evidence["airflow"]["dag_id"] == "elec2__watch"
    events = _events(project)
    kinds = [e.kind for e in events]
    assert kinds.index("run.requested") < kinds.index("run.queued") < kinds.index("run.succeeded")
    queued = next(e for e in events if e.kind == "run.queued")
    assert queued.data["trigger"] == "manual" and queued.data["slot"] == request


def test_a_failing_training_fails_the_task_and_the_run(project: Path):
    dags = build_dags(project)
    with Project.open(project) as p:
        request_run(p, "broken", now=MONDAY, by="ana")
    dag_run = _run(dags["broken__watch"], MONDAY)
    states = _states(dag_run)
    assert states["decide"] == "success"
    assert states["train"] == "failed"
    assert states["bless"] == states["deploy"] == "upstream_failed"
    [run] = _runs(project, "broken")
    assert run.status == "failed"
    assert "run.failed" in [e.kind for e in _events(project, "broken")]


def test_the_airflow_dags_test_cli_runs_a_dag_file(project: Path):
    airflow_cli = Path(sys.executable).with_name("airflow")
    started = time.perf_counter()
    done = subprocess.run(
        [str(airflow_cli), "dags", "test", "elec2", MONDAY.isoformat()],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")},
    )
    took = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run] = _runs(project)
    assert run.status == "succeeded"
    assert run.key == "elec2/schedule/1997-06-02T00:00:00+00:00"
    print(f"airflow dags test took {took:.1f} s")
