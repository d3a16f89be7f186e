"""Liveness: leases are measured in real time, whatever the clock a run replays.

The run's data times (its start, the events) stay on the simulated clock; only whether a
run's holder is alive moves to ``project.liveness_clock`` (the wall clock, here a simulated
one moved by hand so that a lease can expire without waiting).
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from retrainer.adapters.clock import WallClock
from retrainer.adapters.executors import Job, JobResult
from retrainer.core.clock import SimulatedClock
from retrainer.engine.control.controller import Controller
from retrainer.engine.project import Project
from retrainer.engine.runs.run import claim_run, execute_run, new_run, reap_stale_runs
from retrainer.testing import in_memory_project

MARCH = datetime(2024, 1, 20, tzinfo=UTC)  # the earlier replay
JUNE = datetime(2024, 6, 1, tzinfo=UTC)  # the later one, months past any lease
REAL = datetime(2030, 5, 5, 12, tzinfo=UTC)  # "now" in real time
ELSEWHERE = "another-host:4242"  # an owner this host cannot check: only its lease tells


def _project(tmp_path: Path) -> tuple[Project, SimulatedClock]:
    project = in_memory_project(root=tmp_path)
    project.liveness_clock = real = SimulatedClock(REAL)
    return project, real


def _running(project: Project, *, at: datetime, owner: str = ELSEWHERE):
    run, _ = new_run(project, project.pipeline(), now=at, cause="manual")
    return claim_run(project, run, now=at, owner=owner)


def test_the_lease_runs_on_real_time_and_the_start_on_the_runs_clock(tmp_path: Path):
    project, _ = _project(tmp_path)
    run = _running(project, at=MARCH)
    timeout = timedelta(seconds=project.pipeline().config.run.timeout)
    assert run.started_at == MARCH and run.created_at == MARCH
    assert run.lease_expires_at == REAL + timeout


def test_a_later_replay_does_not_reap_a_live_run(tmp_path: Path):
    project, _ = _project(tmp_path)
    live = _running(project, at=MARCH)
    assert reap_stale_runs(project, JUNE) == []
    assert project.store.get_run(live.id).status == "running"
    # a whole run at the later date goes through and leaves the live one alone
    later = execute_run(project, clock=SimulatedClock(JUNE))
    assert later.ok
    kept = project.store.get_run(live.id)
    assert kept.status == "running" and kept.epoch == live.epoch and kept.error is None


def test_a_silent_run_is_reaped_once_its_lease_expired_in_real_time(tmp_path: Path):
    project, real = _project(tmp_path)
    silent = _running(project, at=JUNE)
    timeout = timedelta(seconds=project.pipeline().config.run.timeout)
    real.advance(timeout - timedelta(seconds=1))
    assert reap_stale_runs(project, MARCH) == []  # still leased, whatever the replay's date
    real.advance(timedelta(seconds=1))
    [reaped] = reap_stale_runs(project, MARCH)  # an earlier replay reaps it all the same
    assert reaped.id == silent.id and reaped.status == "failed"
    assert f"lease expired at {REAL + timeout:%Y-%m-%d %H:%M:%S}Z" in (reaped.error or "")
    [event] = project.store.list_events("toy", kinds=["run.failed"])
    assert event.at == MARCH  # recorded at the replay's time


def test_a_run_whose_process_is_gone_is_reaped_at_once(tmp_path: Path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    project, _ = _project(tmp_path)
    dead = _running(project, at=JUNE, owner=f"{socket.gethostname()}:{done.stdout.strip()}")
    [reaped] = reap_stale_runs(project, MARCH)
    assert reaped.id == dead.id and "is gone" in (reaped.error or "")


def test_a_project_measures_liveness_on_the_wall_clock_by_default(tmp_path: Path):
    project = in_memory_project(root=tmp_path, clock=SimulatedClock(MARCH))
    assert isinstance(project.liveness_clock, WallClock)
    before = WallClock().now()
    run = _running(project, at=MARCH)
    assert run.lease_expires_at is not None and run.lease_expires_at > before


class _Holding:
    """An executor that keeps every job in hand (a worker training for a long time)."""

    capacity = 1

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> None:
        self.jobs.append(job)

    def poll(self) -> list[JobResult]:
        return []

    def busy(self) -> int:
        return len(self.jobs)

    def busy_running(self) -> bool:
        return False

    def shutdown(self, grace_s: float) -> list[Job]:
        return list(self.jobs)


def test_two_controllers_on_simulated_clocks_leave_each_others_runs_alone(tmp_path: Path):
    project, real = _project(tmp_path)
    early, late = SimulatedClock(MARCH), SimulatedClock(JUNE)
    a = Controller(project, clock=early, executor=_Holding(), owner="host-a:1")
    b = Controller(project, clock=late, executor=_Holding(), owner="host-b:2")
    project.store.ensure_pipeline("toy", project.pipeline().definition_hash, MARCH)
    run, _ = new_run(project, project.pipeline(), now=MARCH, cause="manual")
    a.tick()
    assert project.store.get_run(run.id).owner == "host-a:1"
    for _ in range(3):  # the later replay ticks on, months ahead
        late.advance(timedelta(days=1))
        real.advance(timedelta(minutes=1))
        assert b.tick().repaired == []
    held = project.store.get_run(run.id)
    assert held.status == "running" and held.owner == "host-a:1" and held.attempts == 1
    # A's clean shutdown releases it; B (ahead in data time) takes it at its next tick
    a.shutdown(0)
    b.tick()
    assert project.store.get_run(run.id).owner == "host-b:2"
