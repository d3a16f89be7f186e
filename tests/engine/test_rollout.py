"""Rollouts through the engine: begun by the deploy step, advanced by the controller's tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrainer.core.clock import SimulatedClock
from retrainer.core.rollout import ROLLOUT_KEY
from retrainer.engine.control.controller import Controller
from retrainer.engine.project import Project
from retrainer.engine.rollout import ServingStats, advance_rollout, current_rollout, observe
from retrainer.engine.runs.registry import promote
from retrainer.engine.runs.run import execute_run
from retrainer.testing import in_memory_project

T1 = datetime(2024, 1, 20, tzinfo=UTC)
T2 = datetime(2024, 1, 26, tzinfo=UTC)
AB = {"strategy": "ab", "metric": "accuracy", "min_effect": 0.02, "min_samples": 200,
      "watch": "2h"}  # fmt: skip


def _rolling(tmp_path: Path, rollout: dict[str, Any] | None = None) -> Project:
    """v1 champion, v2 a blessed challenger under a running rollout started at T2."""
    project = in_memory_project(root=tmp_path, rollout=rollout or AB)
    assert execute_run(project, clock=SimulatedClock(T1)).promoted
    second = execute_run(project, clock=SimulatedClock(T2))
    assert second.ok and not second.promoted and second.deployment.rollout
    return project


def _log(
    project: Project,
    *,
    start: datetime,
    n: int,
    accuracy: dict[str, float],
    constant_challenger: bool = False,
    seed: int = 0,
) -> None:
    """n predictions per variant from ``start`` on, with 0/1 outcomes right at ``accuracy``."""
    rng = np.random.default_rng(seed)
    rows, feedback = [], []
    at = start.replace(tzinfo=None)
    for variant, version in (("champion", 1), ("challenger", 2)):
        y = rng.integers(0, 2, n)
        right = rng.random(n) < accuracy[variant]
        pred = np.where(right, y, 1 - y)
        score = np.clip(pred * 0.6 + rng.random(n) * 0.4, 0, 1)
        if variant == "challenger" and constant_challenger:
            score = np.full(n, 0.999)
        for i in range(n):
            pid = f"{variant}-{seed}-{i}"
            t = at + timedelta(seconds=10 * i)
            rows.append({"id": pid, "timestamp": t, "pipeline": "toy", "model_version": version,
                         "prediction": int(pred[i]), "score": float(score[i]),
                         "variant": variant})  # fmt: skip
            feedback.append({"id": pid, "timestamp": t + timedelta(minutes=5),
                             "outcome": int(y[i])})  # fmt: skip
    log = project.log_store()
    log.append_predictions(pd.DataFrame(rows))
    log.append_feedback(pd.DataFrame(feedback))


def _tick(project: Project, at: datetime):
    return Controller(project, clock=SimulatedClock(at)).tick()


def _kinds(project: Project) -> list[str]:
    return [e.kind for e in project.store.list_events("toy") if e.kind.startswith("rollout.")]


def test_a_blessed_candidate_starts_a_rollout_as_challenger(tmp_path: Path):
    project = _rolling(tmp_path)
    assert project.store.aliases("toy") == {"champion": 1, "challenger": 2}
    state, _ = current_rollout(project, "toy")
    assert (state.status, state.strategy, state.candidate, state.champion, state.share) == (
        "running", "ab", 2, 1, 0.5,
    )  # fmt: skip
    assert _kinds(project) == ["rollout.started"]


def test_the_tick_promotes_a_better_candidate_then_completes_after_the_watch(tmp_path: Path):
    project = _rolling(tmp_path)
    _log(project, start=T2, n=1500, accuracy={"champion": 0.70, "challenger": 0.85})
    report = _tick(project, T2 + timedelta(hours=6))
    assert report.rollouts and "promoted" in report.rollouts[0]
    assert project.store.aliases("toy") == {"champion": 2}
    state, _ = current_rollout(project, "toy")
    assert state.status == "watching" and state.evidence["test"]["outcome"] == "promote"
    [promoted] = project.store.list_events("toy", kinds=["model.promoted"])[-1:]
    assert promoted.version == 2 and promoted.data["policy"] == "ab"
    _tick(project, T2 + timedelta(hours=7))
    assert current_rollout(project, "toy")[0].status == "watching"
    _tick(project, T2 + timedelta(hours=9))
    assert current_rollout(project, "toy")[0].status == "promoted"
    assert _kinds(project)[-2:] == ["rollout.promoted", "rollout.completed"]


def test_a_worse_candidate_is_rejected_and_retired(tmp_path: Path):
    project = _rolling(tmp_path)
    _log(project, start=T2, n=1500, accuracy={"champion": 0.85, "challenger": 0.70})
    _tick(project, T2 + timedelta(hours=6))
    assert project.store.aliases("toy") == {"champion": 1}
    assert current_rollout(project, "toy")[0].status == "rejected"
    assert "rollout.rejected" in _kinds(project)


def test_undecided_evidence_keeps_running_and_is_recorded(tmp_path: Path):
    project = _rolling(tmp_path)
    _log(project, start=T2, n=300, accuracy={"champion": 0.8, "challenger": 0.8})
    _tick(project, T2 + timedelta(hours=2))
    state, _ = current_rollout(project, "toy")
    assert state.status == "running" and state.test.looks == 1
    assert state.evidence["test"]["n_candidate"] == 300
    assert _kinds(project)[-1] == "rollout.evaluated"


def test_a_broken_candidate_is_rolled_back_by_the_output_drift_guard(tmp_path: Path):
    project = _rolling(tmp_path)
    _log(project, start=T2, n=150, accuracy={"champion": 0.8, "challenger": 0.8},
         constant_challenger=True)  # fmt: skip
    _tick(project, T2 + timedelta(hours=1))
    state, _ = current_rollout(project, "toy")
    assert state.status == "rolled_back" and "output_drift" in str(state.evidence["guards"])
    assert project.store.aliases("toy") == {"champion": 1}
    [event] = project.store.list_events("toy", kinds=["rollout.rolled_back"])
    assert "Jensen-Shannon" in event.message


def test_server_errors_published_by_the_workers_roll_back(tmp_path: Path):
    project = _rolling(tmp_path)
    now = T2 + timedelta(minutes=30)
    for worker in ("a", "b"):  # the controller sums every worker's counters
        stats = ServingStats(worker=worker)
        for i in range(100):
            stats.record("toy", 2, "challenger", ok=i % 10 != 0, seconds=0.003)
            stats.record("toy", 1, "champion", ok=True, seconds=0.003)
        stats.publish(project, now=now)
    obs = observe(project, current_rollout(project, "toy")[0], now=now)
    assert (obs.candidate.requests, obs.candidate.errors) == (200, 20)
    _tick(project, now)
    assert current_rollout(project, "toy")[0].status == "rolled_back"


def test_a_guard_breached_after_the_promotion_rolls_the_champion_back(tmp_path: Path):
    project = _rolling(tmp_path, {**AB, "guards": {"max_error_rate": 0.05}})
    _log(project, start=T2, n=1500, accuracy={"champion": 0.70, "challenger": 0.85})
    _tick(project, T2 + timedelta(hours=6))
    assert project.store.get_alias("toy", "champion") == 2
    stats = ServingStats(worker="w")
    for i in range(200):
        stats.record("toy", 2, "champion", ok=i % 4 != 0, seconds=0.003)
    stats.publish(project, now=T2 + timedelta(hours=6, minutes=30))
    _tick(project, T2 + timedelta(hours=7))
    assert project.store.get_alias("toy", "champion") == 1
    assert current_rollout(project, "toy")[0].status == "rolled_back"
    [back] = project.store.list_events("toy", kinds=["model.rolled_back"])
    assert back.version == 1 and "error rate" in back.message


def test_a_lost_state_write_after_the_promotion_is_repaired_once(tmp_path: Path):
    project = _rolling(tmp_path)
    # as if the controller died between the alias move and the state write
    project.store.move_alias("toy", "champion", 2, at=T2 + timedelta(hours=1), reason="x",
                             actor="crashed daemon", expected=1)  # fmt: skip
    state, _revision = current_rollout(project, "toy")
    assert state.status == "running"
    _tick(project, T2 + timedelta(hours=2))
    state, _ = current_rollout(project, "toy")
    assert state.status == "watching" and "recovered" in state.reason
    to_champion = [
        e.version
        for e in project.store.list_events("toy", kinds=["model.promoted"])
        if e.data["alias"] == "champion"
    ]
    assert to_champion == [1]  # the move the crash interrupted is not recorded twice
    assert project.store.aliases("toy") == {"champion": 2}


def test_a_manual_promote_during_a_rollout_cancels_it(tmp_path: Path):
    project = _rolling(tmp_path)
    promote(project, 2, clock=SimulatedClock(T2 + timedelta(hours=1)))
    # the rollout sees a champion it did not move: it was v1 -> v2, which is its candidate
    _tick(project, T2 + timedelta(hours=2))
    assert current_rollout(project, "toy")[0].status == "watching"
    execute_run(project, clock=SimulatedClock(T2 + timedelta(days=1)))  # v3: a new rollout
    state, _ = current_rollout(project, "toy")
    assert (state.candidate, state.champion, state.status) == (3, 2, "running")
    assert "superseded" in project.store.list_events("toy", kinds=["rollout.cancelled"])[-1].message
    project.store.move_alias("toy", "champion", 1, at=T2 + timedelta(days=1, hours=1),
                             reason="manual", actor="me")  # fmt: skip
    _tick(project, T2 + timedelta(days=1, hours=2))
    state, _ = current_rollout(project, "toy")
    assert state.status == "cancelled" and "v1" in state.reason
    assert "challenger" not in project.store.aliases("toy")


def test_a_replace_pipeline_has_no_rollout(tmp_path: Path):
    project = in_memory_project(root=tmp_path)
    execute_run(project, clock=SimulatedClock(T1))
    execute_run(project, clock=SimulatedClock(T2))
    assert project.store.get_state("toy", ROLLOUT_KEY) is None
    assert advance_rollout(project, "toy", now=T2) is None


@pytest.mark.parametrize("strategy", ["shadow"])
def test_a_shadow_rollout_pairs_the_copy_with_the_answered_prediction(tmp_path: Path, strategy):
    project = _rolling(tmp_path, {"strategy": strategy, "metric": "accuracy",
                                  "min_effect": 0.02, "min_samples": 200})  # fmt: skip
    rng = np.random.default_rng(5)
    n = 1500
    y = rng.integers(0, 2, n)
    champ = np.where(rng.random(n) < 0.7, y, 1 - y)
    shadow = np.where(rng.random(n) < 0.9, y, 1 - y)
    at = T2.replace(tzinfo=None) + timedelta(minutes=1)
    rows = [{"id": f"c{i}", "timestamp": at, "pipeline": "toy", "model_version": 1,
             "prediction": int(champ[i]), "score": float(champ[i]) * 0.8 + 0.1,
             "variant": "champion", "shadow_of": None} for i in range(n)]  # fmt: skip
    rows += [{"id": f"s{i}", "timestamp": at, "pipeline": "toy", "model_version": 2,
              "prediction": int(shadow[i]), "score": float(shadow[i]) * 0.8 + 0.1,
              "variant": "shadow", "shadow_of": f"c{i}"} for i in range(n)]  # fmt: skip
    project.log_store().append_predictions(pd.DataFrame(rows))
    project.log_store().append_feedback(pd.DataFrame(
        {"id": [f"c{i}" for i in range(n)], "timestamp": at + timedelta(minutes=5),
         "outcome": y}))  # fmt: skip
    obs = observe(project, current_rollout(project, "toy")[0], now=T2 + timedelta(hours=1))
    assert obs.difference is not None and obs.difference.n == n
    assert obs.candidate_metric.mean == pytest.approx((shadow == y).mean())
    _tick(project, T2 + timedelta(hours=1))
    assert project.store.get_alias("toy", "champion") == 2


def test_a_rollout_that_cannot_be_advanced_is_one_event_not_a_stopped_daemon(
    tmp_path: Path, monkeypatch
):
    import retrainer.engine.rollout as rollout_module

    project = _rolling(tmp_path)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("the log is unreadable")

    monkeypatch.setattr(rollout_module, "observe", broken)
    controller = Controller(project, clock=SimulatedClock(T2 + timedelta(hours=1)))
    for _ in range(3):
        controller.tick()  # no exception: the other pipelines' work goes on
    failed = project.store.list_events("toy", kinds=["rollout.evaluated"])
    assert [e.data["error"] for e in failed] == ["ValueError: the log is unreadable"]
    assert current_rollout(project, "toy")[0].status == "running"


def test_the_tick_that_promotes_decides_on_the_new_champion(tmp_path: Path, monkeypatch):
    # a tick reads every pipeline's champion before advancing the rollouts: a pipeline whose
    # rollout is active reads it again, so its triggers see the champion the rollout set
    project = in_memory_project(root=tmp_path, rollout=AB, triggers=[{"schedule": "0 2 * * MON"}])
    assert execute_run(project, clock=SimulatedClock(T1)).promoted
    assert execute_run(project, clock=SimulatedClock(T2)).deployment.rollout
    _log(project, start=T2, n=1500, accuracy={"champion": 0.70, "challenger": 0.85})
    contexts = []
    context = Controller._context

    def spy(self, *args, **kwargs):
        contexts.append(context(self, *args, **kwargs)[0])
        return contexts[-1], None

    monkeypatch.setattr(Controller, "_context", spy)
    at = T2 + timedelta(hours=6)
    report = _tick(project, at)
    assert report.rollouts and "promoted" in report.rollouts[0]
    [ctx] = contexts
    assert ctx.last_promotion == at  # the move the rollout made in this tick
    assert ctx.metric_at_promotion == dict(project.store.get_version("toy", 2).metrics)
