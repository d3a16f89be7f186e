"""The daemon loop: stops on SIGINT/SIGTERM, and puts the handlers that were there back."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

from retrainer.engine.control.daemon import run_daemon, stop_on_signals
from retrainer.engine.project import Project
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
