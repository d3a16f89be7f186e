"""The daemon outlives its database going away and coming back: one line per outage, a
capped exponential backoff, and afterwards every slot run once and no event lost."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retrainer.adapters.metadata import SQLMetadataStore
from retrainer.adapters.metadata.outage import unavailable
from retrainer.core.clock import SimulatedClock
from retrainer.engine.control.controller import Controller
from retrainer.engine.project import Project
from retrainer.errors import ConcurrencyError
from retrainer.testing import in_memory_project
from tests.conftest import make_frame, write_project

START = datetime(2024, 1, 20, tzinfo=UTC)
DAILY = [{"schedule": "0 2 * * *"}]
BLESS_ANY = {"holdout": 0.25, "rules": [{"metric": "accuracy", "min": 0.5}],
             "sanity": {"enabled": False}}  # fmt: skip


class _Stop(threading.Event):
    """A stop event that records the waits asked of it instead of sleeping them."""

    def __init__(self, on_wait: Any = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.on_wait = on_wait

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        if self.on_wait is not None:
            self.on_wait(len(self.waits))
        return self.is_set()


class _Flaky:
    """A store that raises what a dropped PostgreSQL connection raises, ``failures`` times."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.failures > 0:
                self.failures -= 1
                raise sa.exc.OperationalError(
                    "SELECT 1", {}, Exception("server closed the connection unexpectedly")
                )
            return attr(*args, **kwargs)

        return call


def _replay(project: Project, *, hours: int, stop: threading.Event, on_tick: Any = None):
    clock = SimulatedClock(START)
    controller = Controller(project, clock=clock)
    controller.outage_backoff, controller.outage_backoff_max = 0.5, 4.0
    said: list[str] = []
    ticks = controller.run(
        tick_s=3600,
        max_ticks=hours,
        stop=stop,
        on_tick=on_tick,
        advance=lambda: clock.advance(timedelta(hours=1)),
        on_outage=said.append,
    )
    return ticks, said


def _summary(project: Project) -> tuple[list[str], list[tuple[str, str | None]]]:
    runs = project.store.list_runs("toy", limit=None)
    assert all(r.status == "succeeded" and r.attempts == 1 for r in runs)
    events = [(e.kind, e.at.isoformat()) for e in project.store.list_events("toy", limit=None)]
    return sorted(r.key for r in runs), sorted(events)


def _project(tmp_path: Path) -> Project:
    return in_memory_project(
        make_frame(24 * 40, seed=1), root=tmp_path, triggers=DAILY, blessing=BLESS_ANY,
        window={"kind": "sliding", "duration": "10d"},
    )  # fmt: skip


def test_a_database_away_for_some_ticks_loses_nothing(tmp_path: Path):
    baseline = _project(tmp_path / "a")
    assert _replay(baseline, hours=72, stop=_Stop())[0] == 72
    expected = _summary(baseline)
    assert len(expected[0]) == 3

    project = _project(tmp_path / "b")
    flaky = _Flaky(project.store)
    project.store = flaky  # type: ignore[assignment]

    def go_away(report: Any) -> None:
        if report.at == START + timedelta(hours=25):  # before the second night's slot
            flaky.failures = 6

    stop = _Stop()
    ticks, said = _replay(project, hours=72, stop=stop, on_tick=go_away)
    assert ticks == 72  # the failed ticks are tried again, not counted
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # doubling, capped
    assert len(said) == 2  # one line when it goes away, one when it is back
    assert said[0].startswith("metadata database unavailable: Exception: server closed")
    assert said[1].startswith("metadata database back after") and "6 tick(s)" in said[1]
    assert _summary(project) == expected  # the same runs, once each, and the same events


def test_sqlite_locked_past_its_busy_timeout(tmp_path: Path):
    proj = write_project(tmp_path / "p", make_frame(24 * 40, seed=1), triggers=DAILY,
                         blessing=BLESS_ANY)  # fmt: skip
    db = proj / ".retrainer" / "retrainer.db"
    with Project.open(proj) as project:
        project.store.close()
        project.store = SQLMetadataStore(f"sqlite:///{db}", busy_timeout_s=0.1)
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        locked = []

        def take_lock(report: Any) -> None:
            if report.at == START + timedelta(hours=12):
                holder.execute("BEGIN EXCLUSIVE")  # another process's long write transaction
                locked.append(report.at)

        def release(waits: int) -> None:
            if waits == 3:
                holder.execute("COMMIT")

        stop = _Stop(on_wait=release)
        try:
            ticks, said = _replay(project, hours=72, stop=stop, on_tick=take_lock)
        finally:
            holder.close()
        assert locked and ticks == 72
        assert stop.waits == [0.5, 1.0, 2.0]
        assert len(said) == 2 and "stayed locked for more than 0.1 s" in said[0]
        runs = project.store.list_runs("toy", limit=None)
        assert len(runs) == 3 and len({r.key for r in runs}) == 3
        assert all(r.status == "succeeded" and r.attempts == 1 for r in runs)
        kinds = [e.kind for e in project.store.list_events("toy", limit=None)]
        assert kinds.count("run.started") == kinds.count("run.succeeded") == 3
        assert kinds.count("trigger.fired") == 3


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        ConcurrencyError("Run 1 is at epoch 2, expected epoch 1"),
        sa.exc.OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: runs")),
    ],
)
def test_errors_that_waiting_will_not_mend_still_stop_the_daemon(exc: Exception):
    assert unavailable(exc) is None


def test_any_other_error_still_stops_the_loop(tmp_path: Path):
    project = _project(tmp_path)
    flaky = _Flaky(project.store)
    project.store = flaky  # type: ignore[assignment]
    controller = Controller(project, clock=SimulatedClock(START))

    def boom() -> Any:
        raise ValueError("a bug")

    controller.tick = boom  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="a bug"):
        controller.run(tick_s=1, max_ticks=3, stop=_Stop())


WRITES = ("create_run", "put_state", "update_run", "append_event", "register_version", "move_alias")


class _FailOnce:
    """A store whose ``nth`` write (of ``methods``) after ``armed`` is set raises a lost
    connection, once: an outage in the middle of a tick, between two of its writes."""

    def __init__(self, inner: Any, methods: tuple[str, ...], nth: int) -> None:
        self.inner, self.methods, self.nth = inner, methods, nth
        self.armed = False
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.methods:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.armed and not self.fired:
                self.nth -= 1
                if self.nth == 0:
                    self.fired = True
                    raise sa.exc.OperationalError(
                        "UPDATE", {}, Exception("server closed the connection unexpectedly")
                    )
            return attr(*args, **kwargs)

        return call


def _armed_replay(tmp_path: Path, methods: tuple[str, ...], nth: int, hours: int) -> Project:
    project = _project(tmp_path)
    flaky = _FailOnce(project.store, methods, nth)
    project.store = flaky  # type: ignore[assignment]

    def arm(report: Any) -> None:
        flaky.armed = report.at >= START + timedelta(hours=25)  # the next tick is 2 a.m.

    ticks, _ = _replay(project, hours=hours, stop=_Stop(), on_tick=arm)
    assert flaky.fired and ticks == hours
    return project


@pytest.mark.parametrize("nth", [1, 2, 3])  # the tick's writes: queue, trigger state, claim
def test_a_database_lost_between_two_writes_of_a_tick_loses_nothing(tmp_path: Path, nth: int):
    baseline = _project(tmp_path / "a")
    _replay(baseline, hours=36, stop=_Stop())
    expected = _summary(baseline)
    project = _armed_replay(tmp_path / "b", WRITES, nth, hours=36)
    assert _summary(project) == expected  # every run once, every event once


@pytest.mark.parametrize(
    ("method", "nth"),
    [
        ("update_run", 2),  # recording the snapshot
        ("register_version", 1),
        ("move_alias", 1),
        ("update_run", 3),  # closing the run, after the promotion
    ],
)
def test_a_database_lost_inside_a_run_fails_that_run_and_nothing_else(
    tmp_path: Path, method: str, nth: int
):
    project = _armed_replay(tmp_path, (method,), nth, hours=51)
    runs = sorted(project.store.list_runs("toy", limit=None), key=lambda r: r.id)
    assert len({r.key for r in runs}) == len(runs) == 3  # one per slot, none twice
    assert [r.status for r in runs] == ["succeeded", "failed", "succeeded"]
    assert "server closed the connection" in (runs[1].error or "")
    events = project.store.list_events("toy", limit=None)
    for run in runs:  # each run's audit trail is whole: queued, started, one ending
        kinds = [e.kind for e in events if e.run_id == run.id and e.kind.startswith("run.")]
        assert kinds == ["run.queued", "run.started", f"run.{run.status}"]
    versions = project.store.list_versions("toy")
    blessed = [e for e in events if e.kind in ("blessing.passed", "blessing.rejected")]
    assert len(blessed) == len(versions)  # a version and its verdict, never one alone
    champion = project.store.get_alias("toy", "champion")
    promoted = [e for e in events if e.kind == "model.promoted"]
    assert promoted and promoted[-1].version == champion


class _AwayAfter:
    """A store that goes away at the ``nth`` call of ``method`` and stays away for ``calls``
    store calls of any kind: a database restarted under a run."""

    def __init__(self, inner: Any, method: str, nth: int, calls: int) -> None:
        self.inner, self.method, self.nth, self.calls = inner, method, nth, calls
        self.away = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == self.method and not self.away:
                self.nth -= 1
                self.away = self.nth == 0
            if self.away and self.calls > 0:
                self.calls -= 1
                raise sa.exc.OperationalError(
                    "UPDATE", {}, Exception("server closed the connection unexpectedly")
                )
            return attr(*args, **kwargs)

        return call


def test_a_run_cut_short_by_a_restart_records_its_end_once_the_database_is_back(
    tmp_path: Path,
):
    from retrainer.engine.runs.run import execute_run

    project = _project(tmp_path)
    flaky = _AwayAfter(project.store, "update_run", nth=2, calls=3)  # the snapshot's update
    project.store = flaky  # type: ignore[assignment]
    with pytest.raises(sa.exc.OperationalError):
        execute_run(project, clock=SimulatedClock(START))
    [run] = flaky.inner.list_runs("toy", limit=None)
    assert run.status == "failed"  # not left running for the reaper to call "interrupted"
    assert "server closed the connection" in (run.error or "")
    kinds = [e.kind for e in flaky.inner.list_events("toy", limit=None)]
    assert kinds == ["run.started", "run.failed"]
