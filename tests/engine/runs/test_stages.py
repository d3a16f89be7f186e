"""The orchestrators' stages: the same run as execute_run, split across processes, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retrainer.core.clock import SimulatedClock
from retrainer.engine.control.controller import request_run
from retrainer.engine.project import Project
from retrainer.engine.runs.run import execute_run
from retrainer.engine.runs.stages import (
    RunFailed,
    admit,
    bless,
    decide,
    deploy,
    start_run,
    train,
)
from retrainer.errors import RetrainerError
from retrainer.testing import in_memory_project, write_project
from tests.conftest import make_frame

T1 = datetime(2024, 1, 20, tzinfo=UTC)
T2 = datetime(2024, 1, 26, tzinfo=UTC)


def _all_stages(project: Project, at: datetime, slot: str | None = None) -> int | None:
    run = start_run(project, "toy", now=at, trigger="schedule", slot=slot or at.isoformat())
    if run is None:
        return None
    assert run.id is not None
    train(project, run.id, now=at)
    bless(project, run.id, now=at)
    deploy(project, run.id, now=at, actor="test")
    return run.id


def test_stages_give_what_one_call_gives(tmp_path: Path):
    whole = in_memory_project(root=tmp_path)
    staged = in_memory_project(root=tmp_path)
    expected = [execute_run(whole, clock=SimulatedClock(t)) for t in (T1, T2)]
    ids = [_all_stages(staged, t) for t in (T1, T2)]
    for result, run_id in zip(expected, ids, strict=True):
        assert run_id is not None
        run = staged.store.get_run(run_id)
        assert run.status == "succeeded" and run.outcome == result.run.outcome
        version = staged.store.get_version("toy", run.version)
        assert version.metrics == pytest.approx(result.version.metrics)
        assert version.blessing.passed == result.verdict.passed
        assert [(r.rule, r.metric, r.passed) for r in version.blessing.evidence] == [
            (r.rule, r.metric, r.passed) for r in result.verdict.evidence
        ]
        assert version.snapshot.fingerprint == result.version.snapshot.fingerprint
        assert set(run.timings) >= {"load", "train", "score"}
    assert staged.store.get_alias("toy", "champion") == whole.store.get_alias("toy", "champion")
    kinds = [e.kind for e in staged.store.list_events("toy") if e.run_id == ids[0]]
    assert kinds == [
        "run.queued",
        "run.started",
        "blessing.passed",
        "model.promoted",
        "run.succeeded",
    ]


def test_each_stage_in_a_fresh_process_view_of_the_stores(tmp_path: Path):
    """Every stage opens the project anew (as an Airflow task does): nothing passes in memory."""
    root = write_project(tmp_path / "p", make_frame(800))
    with Project.open(root) as project:
        run = start_run(project, "toy", now=T1, trigger="schedule", slot="a")
    assert run is not None and run.id is not None
    for stage in (train, bless):
        with Project.open(root) as project:
            stage(project, run.id, now=T1)
    with Project.open(root) as project:
        result = deploy(project, run.id, now=T1)
        assert result.status == "succeeded" and result.summary["outcome"] == "promoted"
        assert project.store.get_alias("toy", "champion") == result.summary["version"] == 1


def test_a_key_runs_once_and_stages_repeat_harmlessly(tmp_path: Path):
    project = in_memory_project(root=tmp_path)
    run = start_run(project, "toy", now=T1, trigger="schedule", slot="2024-01-20")
    again = start_run(project, "toy", now=T1, trigger="schedule", slot="2024-01-20")
    assert run is not None and again is not None and again.id == run.id  # a retried task
    first = train(project, run.id, now=T1)
    assert train(project, run.id, now=T1) == first  # recorded, not redone
    bless(project, run.id, now=T1)
    bless(project, run.id, now=T1)
    deploy(project, run.id, now=T1)
    assert deploy(project, run.id, now=T1).status == "succeeded"
    assert len(project.store.list_versions("toy")) == 1
    assert len(project.store.list_runs("toy")) == 1
    # the same logical date again (a backfill): nothing to do
    assert start_run(project, "toy", now=T1, trigger="schedule", slot="2024-01-20") is None
    assert _all_stages(project, T2, slot="2024-01-26") is not None
    assert len(project.store.list_runs("toy")) == 2


def test_a_crash_after_registering_registers_no_second_version(tmp_path: Path):
    project = in_memory_project(root=tmp_path)
    run = start_run(project, "toy", now=T1, trigger="schedule", slot="x")
    assert run is not None and run.id is not None
    train(project, run.id, now=T1)
    bless(project, run.id, now=T1)
    # as if the process died after the version's transaction, before the stage record
    record, revision = project.store.get_state("toy", f"run/{run.id}")
    record["done"] = ["train"]
    project.store.put_state("toy", f"run/{run.id}", record, at=T1, expected_revision=revision)
    assert bless(project, run.id, now=T1).summary["version"] == 1
    assert len(project.store.list_versions("toy")) == 1


def test_stages_out_of_order_are_refused(tmp_path: Path):
    project = in_memory_project(root=tmp_path)
    run = start_run(project, "toy", now=T1, trigger="schedule", slot="x")
    with pytest.raises(RetrainerError, match="needs 'train' first"):
        bless(project, run.id, now=T1)


def test_bless_judges_the_rows_the_candidate_was_scored_on(tmp_path: Path):
    """The source changes between train and bless (labels arrive, rows are corrected): the
    gate still compares champion and candidate on the stored holdout."""
    frame = make_frame(800)
    rows = {"frame": frame}
    project = in_memory_project(lambda start, end: rows["frame"], root=tmp_path)
    assert _all_stages(project, T1) is not None
    run = start_run(project, "toy", now=T2, trigger="schedule", slot="b")
    train(project, run.id, now=T2)
    rows["frame"] = frame.assign(y=1 - frame["y"])  # every label flipped
    result = bless(project, run.id, now=T2)
    version = project.store.get_version("toy", result.summary["version"])
    change = next(r for r in version.blessing.evidence if r.rule == "change")
    assert change.candidate == pytest.approx(version.metrics[change.metric])
    assert abs(change.candidate - change.champion) < 0.2  # not the flipped labels


def test_bad_data_fails_the_run_and_the_task(tmp_path: Path):
    frame = make_frame(800)
    project = in_memory_project(frame.drop(columns=["x2"]), root=tmp_path)
    run = start_run(project, "toy", now=T1, trigger="schedule", slot="x")
    with pytest.raises(RunFailed, match="x2"):
        train(project, run.id, now=T1)
    assert project.store.get_run(run.id).status == "failed"
    with pytest.raises(RunFailed):  # the orchestrator's retry: nothing more happens
        train(project, run.id, now=T1)
    assert start_run(project, "toy", now=T1, trigger="schedule", slot="x") is None


def test_decide_records_evidence_and_takes_manual_requests(tmp_path: Path):
    project = in_memory_project(root=tmp_path, triggers=[{"schedule": "0 2 * * MON"}])
    assert not decide(project, "toy", now=datetime(2024, 1, 1, 3, tzinfo=UTC)).fire
    fired = decide(project, "toy", now=datetime(2024, 1, 8, 3, tzinfo=UTC))
    assert fired.fire and fired.trigger == "schedule"
    events = project.store.list_events("toy", kinds=["trigger.fired"])
    assert events and events[-1].data["slot"] == fired.slot
    # the run is queued with the decision: a task that dies now finds it at the next decide
    again = decide(project, "toy", now=datetime(2024, 1, 8, 4, tzinfo=UTC))
    assert again.fire and (again.trigger, again.slot) == (fired.trigger, fired.slot)
    started = start_run(project, "toy", now=T2, trigger=again.trigger, slot=again.slot)
    assert started is not None and started.status == "running"
    assert len(project.store.list_runs("toy")) == 1
    # the orchestrator's schedule stands for the schedule trigger: nothing left to evaluate
    assert not decide(project, "toy", now=T2, exclude_schedules=True).fire
    request_run(project, "toy", now=T2, by="alice")
    manual = decide(project, "toy", now=T2, exclude_schedules=True)
    assert manual.fire and manual.trigger == "manual" and manual.evidence["by"] == "alice"
    run = start_run(
        project, "toy", now=T2, trigger=manual.trigger, slot=manual.slot, evidence=manual.evidence
    )
    assert run is not None and run.cause == "manual" and run.evidence["by"] == "alice"
    assert not decide(project, "toy", now=T2, exclude_schedules=True).fire  # taken once


def test_stage_summaries_are_json(tmp_path: Path):
    import json

    project = in_memory_project(root=tmp_path)
    run = start_run(project, "toy", now=T1, trigger="schedule", slot="x")
    for stage in (train, bless, deploy):
        out = stage(project, run.id, now=T1).to_json()
        assert json.loads(json.dumps(out)) == out
    assert out["outcome"] == "promoted" and out["version"] == 1 and out["passed"] is True


def test_admit_passes_a_scheduled_firing_through_the_guards(tmp_path: Path):
    # an orchestrator's schedule stands for the schedule trigger; the guards still apply
    project = in_memory_project(
        root=tmp_path,
        triggers=[{"schedule": "0 0 * * *"}],
        guards=[{"cooldown": "3d"}],
    )
    first = admit(project, "toy", now=T1, trigger="schedule", slot=T1.isoformat())
    assert first.fire and first.slot == T1.isoformat()
    assert _all_stages(project, T1) is not None
    soon = T1 + timedelta(days=1)
    held = admit(project, "toy", now=soon, trigger="schedule", slot=soon.isoformat())
    assert not held.fire and held.slot is None
    assert held.reason.startswith("cooldown") and "held back" in held.reason
    assert [g["passed"] for g in held.evidence["guards"]] == [False]
    events = project.store.list_events("toy", kinds=["trigger.fired", "trigger.evaluated"])
    assert [(e.kind, e.data["fire"]) for e in sorted(events, key=lambda e: e.at)] == [
        ("trigger.fired", True),
        ("trigger.evaluated", False),
    ]
    later = T1 + timedelta(days=4)
    assert admit(project, "toy", now=later, trigger="schedule", slot=later.isoformat()).fire


def test_admit_without_guards_fires_and_records_nothing(tmp_path: Path):
    project = in_memory_project(root=tmp_path, triggers=[{"schedule": "0 0 * * *"}])
    decision = admit(project, "toy", now=T1, trigger="schedule", slot="s")
    assert (decision.fire, decision.trigger, decision.slot) == (True, "schedule", "s")
    assert project.store.list_events("toy", kinds=["trigger.fired"]) == []


def test_admit_lets_a_retried_task_continue_its_own_run(tmp_path: Path):
    # the run of this slot exists: the cooldown must not count it against itself
    project = in_memory_project(
        root=tmp_path, triggers=[{"schedule": "0 0 * * *"}], guards=[{"cooldown": "3d"}]
    )
    slot = T1.isoformat()
    assert admit(project, "toy", now=T1, trigger="schedule", slot=slot).fire
    run = start_run(project, "toy", now=T1, trigger="schedule", slot=slot)
    assert run is not None
    again = admit(project, "toy", now=T1, trigger="schedule", slot=slot)
    assert again.fire and again.reason.endswith("its run exists")
    other = admit(project, "toy", now=T1, trigger="schedule", slot="another slot")
    assert not other.fire
