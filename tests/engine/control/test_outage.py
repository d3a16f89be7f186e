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
