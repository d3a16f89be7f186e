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
