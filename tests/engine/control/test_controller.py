"""The controller on a simulated clock: schedules, metric triggers, idempotence, races, crashes."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrainer.adapters.executors import ProcessExecutor
from retrainer.core.clock import SimulatedClock
from retrainer.engine.control.controller import Controller
from retrainer.engine.project import Project
from retrainer.testing import in_memory_project
from tests.conftest import make_frame, write_project

START = datetime(2024, 1, 20, tzinfo=UTC)
BLESS_ANY = {
    "holdout": 0.25,
    "rules": [{"metric": "accuracy", "min": 0.5}],
    "sanity": {"enabled": False},
}


def _project(tmp_path: Path, triggers: list[dict[str, Any]], **overrides: Any) -> Project:
    return in_memory_project(
        make_frame(24 * 80, seed=1),
        root=tmp_path,
        settings={"controller": {"max_attempts": 2, "retry_backoff": "10m"}},
        **{
            "triggers": triggers,
            "blessing": BLESS_ANY,
            "window": {"kind": "sliding", "duration": "10d"},
            **overrides,
        },
    )


def _drive(controller: Controller, clock: SimulatedClock, step: timedelta, until: datetime) -> list:
    reports = []
    while clock.now() < until:
        reports.append(controller.tick())
        clock.advance(step)
    return reports


def test_a_month_of_a_daily_schedule_fires_once_per_slot(tmp_path: Path):
    project = _project(tmp_path, [{"schedule": "0 2 * * *"}])
    clock = SimulatedClock(START)
    controller = Controller(project, clock=clock)
    _drive(controller, clock, timedelta(hours=1), START + timedelta(days=30))
    runs = project.store.list_runs("toy", limit=None)
    assert len(runs) == 30
    assert all(r.status == "succeeded" and r.attempts == 1 for r in runs)
    assert len({r.key for r in runs}) == 30
    assert all(r.created_at.hour == 2 for r in runs)
    fired = project.store.list_events("toy", kinds=["trigger.fired"])
    assert len(fired) == 30 and "slot" in fired[0].data and fired[0].data["evidence"]


def test_after_downtime_a_missed_schedule_fires_once(tmp_path: Path):
    project = _project(tmp_path, [{"schedule": "0 2 * * *"}])
    clock = SimulatedClock(START)
    controller = Controller(project, clock=clock)
    controller.tick()
    clock.advance(timedelta(days=4))  # down for 4 days
    report = controller.tick()
    assert len(report.queued) == 1
    assert len(project.store.list_runs("toy", limit=None)) == 1


def test_a_burst_of_evaluations_fires_one_run_per_key(tmp_path: Path):
    project = _project(tmp_path, [{"schedule": "0 2 * * *", "catch_up": True}])
    clock = SimulatedClock(START + timedelta(hours=3))
    controllers = [Controller(project, clock=clock) for _ in range(100)]
    threads = [threading.Thread(target=c.tick) for c in controllers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = project.store.list_runs("toy", limit=None)
    assert len(runs) == 1
    assert runs[0].attempts == 1 and runs[0].status == "succeeded"
    assert len(project.store.list_events("toy", kinds=["run.queued"])) == 1


def test_metric_trigger_retrains_when_ctr_drops(tmp_path: Path):
    project = _project(
        tmp_path,
        [{"metric": "ctr", "below": 0.0191, "over": "1d", "min_samples": 100}],
        metrics=["accuracy"],
    )
    clock = SimulatedClock(START)
    from retrainer.engine.runs.run import execute_run

    assert execute_run(project, clock=clock).promoted
    logs = project.log_store()
    rng = np.random.default_rng(0)

    def serve_day(day: datetime, rate: float) -> None:
        ids = [f"{day:%m%d}-{i}" for i in range(500)]
        times = pd.date_range(day, periods=500, freq="2min")
        logs.append_predictions(
            pd.DataFrame(
                {
                    "id": ids,
                    "timestamp": times,
                    "pipeline": "toy",
                    "model_version": 1,
                    "prediction": 1,
                }
            )
        )
        logs.append_feedback(
            pd.DataFrame(
                {
                    "id": ids,
                    "timestamp": times + pd.Timedelta("5min"),
                    "outcome": (rng.random(500) < rate).astype(int),
                }
            )
        )

    controller = Controller(project, clock=clock)
    serve_day(START, 0.03)
    clock.set(START + timedelta(days=1))
    assert controller.tick().queued == []  # ctr ~3%: no retrain
    serve_day(START + timedelta(days=1), 0.005)
    clock.set(START + timedelta(days=2))
    report = controller.tick()
    assert len(report.queued) == 1
    fired = project.store.list_events("toy", kinds=["trigger.fired"])[-1]
    assert "ctr" in fired.message and fired.data["evidence"]
    assert project.store.list_runs("toy", limit=1)[0].cause.startswith("metric")


def test_worker_crash_is_retried_then_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    proj = write_project(
        tmp_path / "p",
        triggers=[{"schedule": "0 2 * * *", "catch_up": True}],
        blessing=BLESS_ANY,
    )
    project = Project.open(proj)
    clock = SimulatedClock(START + timedelta(hours=3))
    monkeypatch.setenv("RETRAINER_FAULT", "after_train")  # the worker dies mid-run
    controller = Controller(project, clock=clock, executor=ProcessExecutor())
    controller.tick()
    controller.executor.shutdown(grace_s=60)  # wait for the worker to die
    controller.tick()
    run = project.store.list_runs("toy", limit=1)[0]
    assert run.status == "queued" and run.attempts == 1 and "exited with code 137" in run.error
    monkeypatch.delenv("RETRAINER_FAULT")
    clock.advance(timedelta(minutes=11))
    controller = Controller(project, clock=clock, executor=ProcessExecutor())
    controller.tick()
    controller.executor.shutdown(grace_s=120)
    controller.tick()
    run = project.store.get_run(run.id)
    assert run.status == "succeeded" and run.attempts == 2
    kinds = [e.kind for e in project.store.list_events("toy")]
    assert "run.retrying" in kinds
    # where it executed: the worker process (host:pid, also the run's owner), not this one
    (done,) = [e for e in project.store.list_events("toy") if e.kind == "run.succeeded"]
    placed = done.data["executed_on"]
    assert placed["executor"] == "process" and "dask_worker" not in placed
    assert f"{placed['host']}:{placed['pid']}" == run.owner and placed["pid"] != os.getpid()
    project.close()


def test_training_past_its_timeout_fails_and_the_loop_goes_on(tmp_path: Path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "hang.py").write_text(
        "import time\ndef train(data, params):\n    time.sleep(600)\n"
    )
    proj = write_project(
        tmp_path / "p",
        model=None,
        train="hang:train",
        triggers=[{"schedule": "0 2 * * *", "catch_up": True}],
        blessing=BLESS_ANY,
        run={"timeout": 3},
    )
    project = Project.open(proj)
    clock = SimulatedClock(START + timedelta(hours=3))
    controller = Controller(project, clock=clock, executor=ProcessExecutor())
    controller.tick()
    controller.executor.shutdown(grace_s=60)
    report = controller.tick()
    run = project.store.list_runs("toy", limit=1)[0]
    assert run.status == "failed" and "timed out after 3s" in run.error
    assert any(e.kind == "run.failed" for e in report.events)
    project.close()


@pytest.mark.parametrize(
    ("train_code", "memory_mb", "message"),
    [
        ("    raise ValueError('bad features')\n", None, "raised ValueError: bad features"),
        ("    import numpy as np\n    return np.ones((4096, 1024, 1024))\n", 2048, "MemoryError"),
    ],
    ids=["raises", "out-of-memory"],
)
def test_failing_training_is_recorded_and_alerted(
    tmp_path: Path, train_code: str, memory_mb: int | None, message: str
):
    from retrainer.adapters.notifiers import RecordingNotifier
    from retrainer.engine.control.alerts import Alerter

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "bad.py").write_text("def train(data, params):\n" + train_code)
    proj = write_project(
        tmp_path / "p",
        model=None,
        train="bad:train",
        triggers=[{"schedule": "0 2 * * *", "catch_up": True}],
        blessing=BLESS_ANY,
        run={"memory_mb": memory_mb} if memory_mb else {},
    )
    project = Project.open(proj)
    notifier = RecordingNotifier()
    clock = SimulatedClock(START + timedelta(hours=3))
    controller = Controller(
        project,
        clock=clock,
        executor=ProcessExecutor(),
        alerter=Alerter(project.store, [notifier], backoff_s=0.0),
    )
    controller.tick()
    controller.executor.shutdown(grace_s=120)
    controller.tick()
    run = project.store.list_runs("toy", limit=1)[0]
    assert run.status == "failed" and message in run.error
    assert any(a.kind == "run.failed" and a.severity == "critical" for a in notifier.alerts)
    # the loop goes on: a later slot queues and runs again
    clock.advance(timedelta(days=1))
    controller = Controller(project, clock=clock, executor=ProcessExecutor())
    assert len(controller.tick().queued) == 1
    controller.executor.shutdown(grace_s=120)
    project.close()


def test_a_run_that_keeps_crashing_fails_after_max_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    proj = write_project(
        tmp_path / "p", triggers=[{"schedule": "0 2 * * *", "catch_up": True}], blessing=BLESS_ANY
    )
    text = (proj / "retrainer.yaml").read_text()
    (proj / "retrainer.yaml").write_text(
        "controller: {max_attempts: 2, retry_backoff: 1m}\n" + text
    )
    project = Project.open(proj)
    clock = SimulatedClock(START + timedelta(hours=3))
    monkeypatch.setenv("RETRAINER_FAULT", "after_snapshot")
    for _ in range(2):
        controller = Controller(project, clock=clock, executor=ProcessExecutor())
        controller.tick()
        controller.executor.shutdown(grace_s=60)
        controller.tick()
        clock.advance(timedelta(minutes=5))
    run = project.store.list_runs("toy", limit=1)[0]
    assert run.status == "failed" and run.attempts == 2 and "137" in run.error
    kinds = [e.kind for e in project.store.list_events("toy")]
    assert kinds.count("run.retrying") == 1 and kinds.count("run.failed") == 1
    project.close()


def test_a_since_change_window_keeps_the_concept_drift_monitor_fed(tmp_path: Path):
    """A schedule fires the runs; the monitor still runs so the window knows the change."""
    project = _project(
        tmp_path,
        [{"schedule": "0 2 * * MON"}],
        window={"kind": "since_change", "min": "3d", "max": "10d"},
        monitor={"every": "1d", "window": "1d"},
    )
    clock = SimulatedClock(START)
    controller = Controller(project, clock=clock)
    _drive(controller, clock, timedelta(hours=6), START + timedelta(days=4))
    assert project.store.list_monitor_results("toy", limit=None)


def test_new_data_counts_the_rows_whose_label_arrived(tmp_path: Path):
    """Rows whose label has not arrived cannot be trained on: the new-data trigger waits for
    their labels, then counts the rows after the newest one the champion learned."""
    frame = make_frame(24 * 80, seed=1)
    frame["y"] = frame["y"].astype("Int64")
    labels = frame["y"].copy()
    shown = {"until": START}  # labels arrived up to here

    def load(start: Any, end: Any) -> pd.DataFrame:
        return frame.assign(
            y=labels.mask(frame["ts"] >= pd.Timestamp(shown["until"]).tz_localize(None))
        )

    project = in_memory_project(
        load,
        root=tmp_path,
        triggers=[{"new_data": {"rows": 30}}],
        blessing=BLESS_ANY,
        window={"kind": "sliding", "duration": "10d"},
    )
    clock = SimulatedClock(START)
    controller = Controller(project, clock=clock)
    controller.tick()  # no champion: the first model, on the labelled rows
    first = project.store.list_runs("toy", limit=None)
    assert [r.status for r in first] == ["succeeded"]
    clock.set(START + timedelta(days=3))  # 72 new rows, none labelled
    controller.tick()
    assert len(project.store.list_runs("toy", limit=None)) == 1
    shown["until"] = START + timedelta(days=1)  # 24 labelled: under the 30 rows
    controller.tick()
    assert len(project.store.list_runs("toy", limit=None)) == 1
    shown["until"] = START + timedelta(days=2)  # 48 labelled
    controller.tick()
    runs = project.store.list_runs("toy", limit=None)
    assert len(runs) == 2 and runs[0].status == "succeeded"
    fired = project.store.list_events("toy", kinds=["trigger.fired"])[-1]
    assert "48 new rows" in fired.message + str(fired.data)
    # the run trained on the labelled rows and says how many it left out
    done = project.store.list_events("toy", kinds=["run.succeeded"])[-1]
    assert done.data["unlabelled_rows"] == 24 and "24 rows without a label yet" in done.message


def _drift_project(tmp_path: Path) -> Project:
    """A drift trigger, monitored every day on a 1-day window; v1 trained at START."""
    from retrainer.engine.runs.run import execute_run

    project = _project(
        tmp_path, [{"drift": {"share": 0.3}}], monitor={"every": "1d", "window": "1d"}
    )
    assert execute_run(project, clock=SimulatedClock(START)).promoted
    return project


def test_a_replay_does_not_read_monitor_results_from_after_its_clock(tmp_path: Path):
    """A monitor result of a later window (a run without --as-of: the real now) is in the
    future of a replay: it neither stops the replay's monitoring nor feeds its triggers."""
    from retrainer.engine.monitoring.monitor import run_monitor

    project = _drift_project(tmp_path)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    run_monitor(project, clock=SimulatedClock(later), report=False)  # 0 rows, window ends 2030
    clock = SimulatedClock(START + timedelta(days=1))
    controller = Controller(project, clock=clock)
    for day in range(3):
        report = controller.tick()
        assert report.monitored == ["toy"]
        (decision,) = report.decisions
        window_end = (START + timedelta(days=1 + day)).isoformat()
        assert decision.evidence["window_end"] == window_end
        assert "2030" not in decision.reason
        clock.advance(timedelta(days=1))
    ends = [r.window_end for r in project.store.list_monitor_results("toy", limit=None)]
    assert ends == [START + timedelta(days=d) for d in (1, 2, 3)] + [later]


def test_empty_windows_are_monitored_once_per_period_and_judge_nothing(tmp_path: Path):
    """After the data ends (the frame's last row: 2024-03-20 23:00), the monitor records one
    empty window per ``monitor.every`` (no failure, no retry every tick), and the drift
    trigger says that it tested no column."""
    project = _drift_project(tmp_path)
    clock = SimulatedClock(datetime(2024, 4, 1, tzinfo=UTC))
    controller = Controller(project, clock=clock)
    reports = _drive(controller, clock, timedelta(hours=6), datetime(2024, 4, 3, tzinfo=UTC))
    assert [r.monitored for r in reports] == [["toy"], [], [], [], ["toy"], [], [], []]
    results = project.store.list_monitor_results("toy", limit=None)
    assert [r.summary["rows"] for r in results] == [0, 0]
    assert all(r.drifted is None for r in results)
    assert not project.store.list_events("toy", kinds=["monitor.failed"])
    reason = reports[-1].decisions[0].reason
    assert (
        reason
        == "drift: no column tested in the monitor window ending 2024-04-02T00:00:00+00:00 (0 rows)"
    )
    assert project.store.list_runs("toy", limit=None)[0].cause != "drift"


def test_no_monitoring_before_the_first_champion_was_promoted(tmp_path: Path):
    """A replay before v1's promotion has no champion to monitor: it waits, without a
    failure event on each tick."""
    project = _drift_project(tmp_path)  # v1 promoted at START
    clock = SimulatedClock(START - timedelta(days=5))
    controller = Controller(project, clock=clock)
    reports = _drive(controller, clock, timedelta(days=1), START - timedelta(days=2))
    assert [r.monitored for r in reports] == [[], [], []]
    assert not project.store.list_monitor_results("toy", limit=None)
    assert not project.store.list_events("toy", kinds=["monitor.failed"])


@pytest.mark.parametrize(
    ("triggers", "guards", "counts_rows", "monitors"),
    [
        ([{"schedule": "0 2 * * *"}], [], False, False),
        ([{"schedule": "0 2 * * *"}], [{"min_new_rows": 10}], True, False),
        ([{"any": [{"manual": {}}, {"new_data": {"rows": 10}}]}], [], True, False),
        ([{"concept_drift": {}}], [], False, True),
    ],
)
def test_the_triggers_needs_decide_what_the_controller_gathers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    triggers: list[dict[str, Any]],
    guards: list[dict[str, Any]],
    counts_rows: bool,
    monitors: bool,
) -> None:
    # the controller asks the triggers (needs()) instead of reading their spec's keys: rows
    # are counted and monitor results read only for a policy that reads them
    from retrainer.engine.control import controller as module
    from retrainer.engine.control.policy import build_policy

    project = _project(tmp_path, triggers, guards=guards)
    policy = build_policy(project.pipeline("toy"))
    assert policy is not None
    assert (policy.needs.rows, policy.watches_monitor) == (counts_rows, monitors)
    counted: list[int] = []
    real = module.labelled_rows_since
    monkeypatch.setattr(module, "labelled_rows_since", lambda *a: counted.append(1) or real(*a))
    clock = SimulatedClock(START)
    controller = Controller(project, clock=clock)
    _drive(controller, clock, timedelta(hours=6), START + timedelta(days=2))
    assert bool(counted) == counts_rows


def test_a_metric_trigger_without_a_prediction_log_measures_the_champion_on_the_source(
    tmp_path: Path,
):
    # the backtest recommended "accuracy drops 2 points over 3 days"; in the daemon nothing
    # filled the log, and it printed "insufficient data (n=0)" forever
    from retrainer.engine.control.checks import start_warnings
    from retrainer.engine.runs.run import execute_run
    from retrainer.testing import drifting_frame

    frame = drifting_frame(24 * 40, seed=3, flip_after="2024-01-22")
    project = in_memory_project(
        frame,
        root=tmp_path,
        triggers=[{"metric": "accuracy", "drop": 0.02, "over": "3d", "min_samples": 30}],
        blessing=BLESS_ANY,
        window={"kind": "sliding", "duration": "10d"},
    )
    clock = SimulatedClock(START)
    assert execute_run(project, clock=clock).promoted
    [note] = start_warnings(project, START, simulated=True)
    assert note.startswith(
        "pipeline toy: no predictions logged for its metric trigger(s) (accuracy over 3d): the "
        "daemon measures the champion on the rows of the source labelled since its training"
    )
    controller = Controller(project, clock=clock)
    clock.advance(timedelta(hours=36))
    quiet = controller.tick()
    [decision] = quiet.decisions
    assert not decision.fire and "insufficient" not in decision.reason, decision.reason
    clock.advance(timedelta(days=3, hours=12))  # the labels flipped on Jan 22: accuracy falls
    report = controller.tick()
    [decision] = report.decisions
    assert decision.fire, decision.reason
    assert len(report.queued) == 1


def _pipelines_project(tmp_path: Path, n: int, triggers: list[dict[str, Any]]) -> Project:
    from retrainer.adapters.sources import CallableSource
    from retrainer.config import parse_config
    from retrainer.testing import pipeline_spec

    frame = make_frame(24 * 80, seed=1)
    specs = [
        pipeline_spec(
            name=f"p{i}",
            triggers=triggers,
            blessing=BLESS_ANY,
            window={"kind": "sliding", "duration": "10d"},
        )
        for i in range(n)
    ]
    source = CallableSource(lambda start, end: frame, time_column="ts", name="test")
    return Project.in_memory(
        parse_config({"pipelines": specs}), tmp_path, sources={s["name"]: source for s in specs}
    )


def _idle_tick_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> tuple[list[str], Any]:
    from retrainer.engine.runs.run import execute_run

    project = _pipelines_project(tmp_path / str(n), n, [{"schedule": "0 2 * * MON"}])
    clock = SimulatedClock(START)  # a Saturday: the schedule is armed, not due
    for cfg in project.config.pipelines:
        assert execute_run(project, cfg.name, clock=clock).promoted
    controller = Controller(project, clock=clock)
    controller.tick()  # arms the schedules, caches the champions' versions
    clock.advance(timedelta(minutes=1))
    real, calls = project.store, []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(real, name)

    monkeypatch.setattr(project, "store", Counting())
    report = controller.tick()
    assert not report.queued and not report.events and len(report.decisions) == n
    assert not any(d.fire for d in report.decisions)
    return calls, report


def test_an_idle_tick_costs_the_same_store_calls_whatever_the_pipeline_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a daemon with 1,000 pipelines on PostgreSQL would pay a store call made per pipeline
    # 1,000 times (a round trip and a transaction each): an idle tick reads the manual
    # requests, rollout and trigger states of every pipeline in one call, the champions' and
    # challengers' last moves in one call each, and writes nothing
    one, _ = _idle_tick_calls(tmp_path, monkeypatch, 1)
    five, _ = _idle_tick_calls(tmp_path, monkeypatch, 5)
    assert sorted(five) == sorted(one)
    assert sorted(c for c in five if c not in ("list_runs", "list_events")) == [
        "alias_heads",
        "alias_heads",
        "get_states",
    ]
    assert not any(c.startswith("put") for c in five)


def test_the_batched_reads_give_the_context_the_single_reads_give(tmp_path: Path) -> None:
    # what a tick reads for every pipeline at once feeds the same trigger context as a
    # pipeline read on its own (what _decide does without them, as the orchestrators call it)
    from retrainer.engine.control.controller import TickReads
    from retrainer.engine.runs.run import execute_run
    from retrainer.engine.state import MANUAL_STATE_KEY, POLICY_STATE_KEY

    project = _pipelines_project(tmp_path, 4, [{"schedule": "0 2 * * MON"}])
    clock = SimulatedClock(START)
    for name in ("p0", "p1", "p2"):  # p3: no champion
        assert execute_run(project, name, clock=clock).promoted
    store = project.store
    store.move_alias("p2", "champion", None, at=START, reason="test", actor="t")  # cleared
    controller = Controller(project, clock=clock)
    controller.tick()
    store.put_state("p1", MANUAL_STATE_KEY, {"requests": []}, at=START)
    names = [cfg.name for cfg in project.config.pipelines]
    reads = TickReads.read(store, names)
    for name in names:
        for key in TickReads.KEYS:
            assert reads.state(name, key) == store.get_state(name, key)
        assert reads.champion(name) == store.get_alias(name, "champion")
        pipeline, policy = project.pipeline(name), controller.policy(name)
        assert policy is not None
        batched = controller._context(pipeline, policy, clock.now(), reads)
        assert batched == controller._context(pipeline, policy, clock.now())
        assert batched[1] == store.get_state(name, POLICY_STATE_KEY)[1]  # type: ignore[index]


@pytest.mark.parametrize(("below", "fires"), [(0.999, True), (0.01, False)])
def test_a_metric_trigger_on_the_estimate_fires_in_a_tick(tmp_path: Path, below: float, fires):
    """``source: estimated``: the controller runs the monitor (the trigger reads its result)
    and judges its CBPE estimate, not the labels."""
    project = _project(
        tmp_path,
        [{"metric": "accuracy", "below": below, "over": "1d", "source": "estimated"}],
        monitor={"window": "3d", "every": "1d"},
        window={"kind": "sliding", "duration": "20d"},  # a holdout of 100+ rows to calibrate on
    )
    clock = SimulatedClock(START)
    from retrainer.engine.runs.run import execute_run

    assert execute_run(project, clock=clock).promoted
    clock.set(START + timedelta(days=4))
    report = Controller(project, clock=clock).tick()
    assert report.monitored == ["toy"]
    latest = project.store.list_monitor_results("toy", limit=1)[0]
    estimate = latest.summary["estimated"]["estimates"][0]
    assert estimate["metric"] == "accuracy" and 0.5 < estimate["value"] < 1
    assert (len(report.queued) == 1) is fires
    if fires:
        fired = project.store.list_events("toy", kinds=["trigger.fired"])[-1]
        assert "estimated accuracy" in fired.message
        assert fired.data["evidence"]["source"] == "estimated"
        assert fired.data["evidence"]["value"] == pytest.approx(estimate["value"])


def test_the_cost_aware_trigger_gets_the_retrains_cpu_and_the_backtest_curve(tmp_path: Path):
    # the controller fills what the pure trigger weighs: the train CPU seconds of the latest
    # runs and the degradation curve of the results.json it names; it then fires on the drop
    import json

    from retrainer.engine.runs.run import execute_run
    from retrainer.testing import drifting_frame

    results = {
        "dataset": {"batch": "1d"},
        "greater_is_better": True,
        "degradation": {"ages": [0, 1, 2], "mean": [0.9, 0.89, 0.88], "control": 0.9},
    }
    (tmp_path / "bt").mkdir()
    (tmp_path / "bt" / "results.json").write_text(json.dumps(results))
    spec = {"value_per_point": 0.5, "deploy_cost": 1.0, "over": "3d", "curve": "bt/results.json"}
    project = in_memory_project(
        drifting_frame(24 * 40, seed=3, flip_after="2024-01-22"),
        root=tmp_path,
        triggers=[{"cost_aware": spec}],
        blessing=BLESS_ANY,
        window={"kind": "sliding", "duration": "10d"},
    )
    clock = SimulatedClock(START)
    first = execute_run(project, clock=clock)
    assert first.promoted
    controller = Controller(project, clock=clock)
    policy = controller.policy("toy")
    assert policy is not None and policy.needs.costs
    clock.advance(timedelta(hours=12))
    ctx, _ = controller._context(project.pipeline("toy"), policy, clock.now())
    assert ctx.retrain_cpu_s == (first.run.timings["train_cpu"],)
    assert ctx.degradation == ((0.5, 0.0), (1.5, 0.01), (2.5, 0.02))
    [quiet] = controller.tick().decisions
    assert not quiet.fire and quiet.evidence["source"] == "curve", quiet.reason
    fired = []
    for _ in range(16):  # the labels flip on Jan 22: the drop is measured, the gain grows
        clock.advance(timedelta(hours=12))
        fired += [d for d in controller.tick().decisions if d.fire]
    assert fired and "blend" in fired[0].evidence["source"], [d.reason for d in fired]


def test_a_missing_curve_is_warned_about_once_and_the_trigger_goes_on(tmp_path: Path, caplog):
    import logging

    spec = {"value_per_point": 0.5, "deploy_cost": 1.0, "curve": "gone/results.json"}
    project = in_memory_project(root=tmp_path, triggers=[{"cost_aware": spec}])
    controller = Controller(project, clock=SimulatedClock(START))
    with caplog.at_level(logging.WARNING, logger="retrainer"):
        for _ in range(3):
            assert controller._costs("toy", "gone/results.json")["degradation"] == ()
    warned = [r for r in caplog.records if "no curve from" in r.getMessage()]
    assert len(warned) == 1 and "gone/results.json" in warned[0].getMessage()
