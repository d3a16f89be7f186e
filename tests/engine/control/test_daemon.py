"""The daemon loop: stops on SIGINT/SIGTERM, and puts the handlers that were there back."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

from retrainer.core.clock import SimulatedClock
from retrainer.engine.control.controller import Controller
from retrainer.engine.control.daemon import DaemonStart, run_daemon, stop_on_signals
from retrainer.engine.project import Project
from retrainer.testing import drifting_frame, in_memory_project
from tests.conftest import write_project


def test_a_signal_stops_the_daemon_before_its_next_tick(tmp_path: Path):
    proj = write_project(tmp_path / "p", triggers=[{"schedule": "0 0 * * *"}])
    before = signal.getsignal(signal.SIGINT)
    seen: list[str] = []
    with Project.open(proj) as project:
        summary = run_daemon(
            project,
            as_of=datetime(2024, 1, 20, tzinfo=UTC),
            tick_s=3600,
            executor="inline",
            on_start=lambda start: signal.raise_signal(signal.SIGINT),
            on_signal=seen.append,
        )
    assert summary.ticks == 0  # stopped before the first tick, with no max_ticks
    assert seen == ["SIGINT"]
    assert signal.getsignal(signal.SIGINT) is before


def test_the_handlers_are_restored_when_the_body_raises():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with stop_on_signals() as stop:
            assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
            signal.raise_signal(signal.SIGTERM)
            assert stop.is_set()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert {sig: signal.getsignal(sig) for sig in before} == before


def _start(project: Project, **kwargs: object) -> DaemonStart:
    seen: list[DaemonStart] = []
    run_daemon(project, executor="inline", max_ticks=1, on_start=seen.append, **kwargs)  # type: ignore[arg-type]
    return seen[0]


def test_a_daemon_without_triggers_says_at_start_it_will_never_retrain(tmp_path: Path):
    # the elec2 example's daemon had no trigger at all and said nothing
    project = in_memory_project(root=tmp_path, triggers=[])
    start = _start(project, as_of=datetime(2024, 1, 20, tzinfo=UTC))
    [line] = start.warnings
    assert line.startswith("pipeline toy has no trigger: this daemon will never retrain it")
    assert "retrainer run --queue" in line


def test_a_replay_behind_a_schedule_armed_by_a_wall_clock_daemon_says_so(tmp_path: Path):
    project = in_memory_project(
        drifting_frame(24 * 40), root=tmp_path, triggers=[{"schedule": "0 0 * * *"}]
    )
    # a daemon on the wall clock arms the schedule for a date after the history
    Controller(project, clock=SimulatedClock(datetime(2026, 12, 6, 9, tzinfo=UTC))).tick()
    start = _start(project, as_of=datetime(2024, 1, 20, tzinfo=UTC), tick_s=86400)
    [line] = start.warnings
    assert line.startswith(
        "pipeline toy: its triggers were armed for 2026-12-06 00:00 by a daemon on a later clock, "
        "after this daemon's clock (--as-of 2024-01-20 00:00)"
    )
    assert "fresh store" in line
    # a fresh store: nothing to say
    fresh = in_memory_project(
        drifting_frame(24 * 40), root=tmp_path, triggers=[{"schedule": "0 0 * * *"}]
    )
    assert _start(fresh, as_of=datetime(2024, 1, 20, tzinfo=UTC)).warnings == ()


def test_the_start_warnings_are_printed_one_line_each(tmp_path: Path, capsys):
    from retrainer.cli.render import render_daemon_start

    render_daemon_start(
        DaemonStart(pipelines=1, tick_s=60, simulated_from=None, executor="X", warnings=("a", "b"))
    )
    assert capsys.readouterr().err.splitlines() == ["warning: a", "warning: b"]


def _daemon_days(project: Project, days: int) -> None:
    from retrainer.engine.runs.run import execute_run

    start = datetime(2024, 1, 20, tzinfo=UTC)
    assert execute_run(project, clock=SimulatedClock(start)).promoted
    run_daemon(project, as_of=start, tick_s=86400, max_ticks=days, executor="inline")


def test_the_daemon_monitors_a_pipeline_whose_config_sets_a_monitor_section(tmp_path: Path):
    # a schedule trigger reads no monitor result: the daemon monitors because the user asked
    project = in_memory_project(
        drifting_frame(24 * 40),
        root=tmp_path,
        triggers=[{"schedule": "0 0 * * 1"}],
        monitor={"window": "2d", "every": "1d"},
    )
    _daemon_days(project, 4)
    results = project.store.list_monitor_results("toy", limit=None)
    assert sorted(r.window_end.day for r in results) == [20, 21, 22, 23]  # one per day
    assert all(r.summary["drift"] for r in results)
    kinds = [e.kind for e in project.store.list_events(limit=None)]
    assert kinds.count("monitor.completed") == 4


def test_the_daemon_monitors_a_pipeline_without_triggers_when_configured(tmp_path: Path):
    project = in_memory_project(
        drifting_frame(24 * 40), root=tmp_path, triggers=[], monitor={"every": "2d"}
    )
    _daemon_days(project, 4)
    ends = [r.window_end.day for r in project.store.list_monitor_results("toy", limit=None)]
    assert sorted(ends) == [20, 22]  # every 2 days


def test_without_a_monitor_section_the_daemon_does_not_monitor(tmp_path: Path):
    project = in_memory_project(
        drifting_frame(24 * 40), root=tmp_path, triggers=[{"schedule": "0 0 * * 1"}]
    )
    _daemon_days(project, 4)
    assert project.store.list_monitor_results("toy", limit=None) == []


def test_a_controller_monitors_the_configured_section_only_when_asked(tmp_path: Path):
    # the backtest's replay builds its controller with the default: no monitor run it does
    # not need (slower, and figures nobody reads)
    from retrainer.engine.runs.run import execute_run

    for asked in (False, True):
        project = in_memory_project(
            drifting_frame(24 * 40),
            root=tmp_path,
            triggers=[{"schedule": "0 0 * * 1"}],
            monitor={"window": "2d"},
        )
        clock = SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC))
        execute_run(project, clock=clock)
        report = Controller(project, clock=clock, monitor_configured=asked).tick()
        assert report.monitored == (["toy"] if asked else [])


def test_a_failing_monitor_is_one_event_per_distinct_error_not_one_per_tick(tmp_path: Path):
    from datetime import timedelta

    from retrainer.engine.runs.run import execute_run
    from retrainer.errors import SourceError

    frame = drifting_frame(24 * 40)
    broken: list[str] = []

    def load(start: datetime | None, end: datetime | None) -> object:
        if broken:
            raise SourceError(broken[-1])
        return frame

    project = in_memory_project(load, root=tmp_path, triggers=[], monitor={"window": "2d"})
    clock = SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC))
    assert execute_run(project, clock=clock).promoted
    controller = Controller(project, clock=clock, monitor_configured=True)
    broken.append("the database is away")
    for _ in range(3):  # the monitor is retried at each tick, and fails the same way
        controller.tick()
        clock.advance(timedelta(minutes=1))
    broken.append("the table is gone")
    controller.tick()
    failed = project.store.list_events("toy", kinds=["monitor.failed"])
    errors = sorted(e.data["error"].split(": ")[-1] for e in failed)
    assert errors == ["the database is away", "the table is gone"]
    broken.clear()
    assert controller.tick().monitored == ["toy"]
