"""Liveness: leases are measured in real time, whatever the clock a run replays.

The run's data times (its start, the events) stay on the simulated clock; only whether a
run's holder is alive moves to ``project.liveness_clock`` (the wall clock, here a simulated
one moved by hand so that a lease can expire without waiting).
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retrainer.adapters.clock import WallClock
from retrainer.adapters.executors import Job, JobResult
from retrainer.core.clock import SimulatedClock
from retrainer.engine.control.controller import Controller
from retrainer.engine.project import Project
from retrainer.engine.runs import run as run_module
from retrainer.engine.runs.claims import LEASE, Heartbeat, claim_run, new_run, reap_stale_runs
from retrainer.engine.runs.run import execute_run
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
    assert run.started_at == MARCH and run.created_at == MARCH
    assert run.lease_expires_at == REAL + LEASE  # then renewed by the heartbeat


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
    timeout = LEASE  # nobody renews it: the owner is silent
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
        real.advance(timedelta(seconds=10))  # well within A's lease
        assert b.tick().repaired == []
    held = project.store.get_run(run.id)
    assert held.status == "running" and held.owner == "host-a:1" and held.attempts == 1
    # A's clean shutdown releases it; B (ahead in data time) takes it at its next tick
    a.shutdown(0)
    b.tick()
    assert project.store.get_run(run.id).owner == "host-b:2"


def _wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_run_that_outlives_its_lease_stays_its_owners_while_the_heartbeat_beats(tmp_path):
    project = in_memory_project(root=tmp_path)  # liveness on the wall clock
    run, _ = new_run(project, project.pipeline(), now=MARCH, cause="manual")
    run = claim_run(project, run, now=MARCH, owner=ELSEWHERE)  # only the lease can tell
    lease = timedelta(seconds=0.2)
    first_lease = datetime.now(UTC) + lease
    project.store.renew_lease(run.id, epoch=run.epoch, until=first_lease)
    with Heartbeat(project, run, timeout=600, lease=lease) as beat:
        _wait_for(lambda: datetime.now(UTC) > first_lease + lease)  # two leases have passed
        _wait_for(lambda: beat.beats >= 3)
        assert reap_stale_runs(project, JUNE) == []
        held = project.store.get_run(run.id)
        assert held.status == "running" and held.lease_expires_at > first_lease
    # the owner stopped beating: one lease later, the run is stale
    _wait_for(lambda: datetime.now(UTC) > project.store.get_run(run.id).lease_expires_at)
    [reaped] = reap_stale_runs(project, JUNE)
    assert reaped.id == run.id and "lease expired" in (reaped.error or "")


def test_the_heartbeat_stops_at_the_runs_timeout(tmp_path):
    project = in_memory_project(root=tmp_path)
    run, _ = new_run(project, project.pipeline(), now=MARCH, cause="manual")
    run = claim_run(project, run, now=MARCH, owner=ELSEWHERE)
    start = datetime.now(UTC)
    with Heartbeat(project, run, timeout=0.5, lease=timedelta(seconds=0.2)) as beat:
        time.sleep(1.5)
    assert 1 <= beat.beats <= 8
    # the last renewal never reaches past the timeout: a run over it becomes stale
    lease_end = project.store.get_run(run.id).lease_expires_at
    assert lease_end <= start + timedelta(seconds=0.5 + 0.2)


def test_a_lost_claim_stops_the_heartbeat(tmp_path):
    import dataclasses

    project = in_memory_project(root=tmp_path)
    run, _ = new_run(project, project.pipeline(), now=MARCH, cause="manual")
    run = claim_run(project, run, now=MARCH, owner=ELSEWHERE)
    beat = Heartbeat(project, run, timeout=600, lease=timedelta(seconds=0.1))
    with beat:
        _wait_for(lambda: beat.beats >= 1)
        # another process took the run over (it presumed this one dead)
        project.store.update_run(dataclasses.replace(run, epoch=run.epoch + 1))
        beat._thread.join(timeout=20)
        assert not beat._thread.is_alive()  # stopped on its own, before the exit


def test_every_claimed_run_executes_under_a_heartbeat(tmp_path, monkeypatch: pytest.MonkeyPatch):
    seen: list[tuple[int, float]] = []

    class Recording(Heartbeat):
        def __enter__(self):
            seen.append((self.run_id, self.lease.total_seconds()))
            return super().__enter__()

    monkeypatch.setattr(run_module, "Heartbeat", Recording)
    project = in_memory_project(root=tmp_path)
    result = execute_run(project, clock=SimulatedClock(MARCH))
    assert result.ok and seen == [(result.run.id, LEASE.total_seconds())]
