"""Times near the ends of the calendar: a usage error before any work, never a traceback.

``--as-of 9999-12-31T23:00:00`` used to overflow while leasing the run and leave it queued
with no owner; year 1 with an offset overflowed converting to UTC.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.core.clock import EARLIEST, LATEST, SimulatedClock, check_time
from retrainer.engine.control.controller import Controller, request_run
from retrainer.engine.control.daemon import run_daemon
from retrainer.engine.monitoring.monitor import run_monitor
from retrainer.engine.project import Project
from retrainer.engine.runs.run import execute_run
from retrainer.errors import ConfigError
from retrainer.testing import in_memory_project
from tests.conftest import write_project

runner = CliRunner()

OUT_OF_RANGE = [
    "9999-12-31T23:00:00",
    "9999-12-31",
    "2200-01-01",
    "0001-01-01",
    "0001-01-01T00:00:00+0200",  # overflows converting to UTC
    "1699-12-31T23:59:59",
]
COMMANDS = [
    ("run", "--as-of"),
    ("run", "--queue", "--as-of"),
    ("status", "--as-of"),
    ("monitor", "--as-of"),
    ("monitor", "--start"),
    ("monitor", "--end"),
    ("daemon", "--max-ticks", "1", "--as-of"),
    ("events", "--since"),
]


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("range") / "p")


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_time_out_of_range_is_a_usage_error_before_any_work(
    proj: Path, command: tuple[str, ...], value: str
):
    *args, option = command
    result = runner.invoke(app, [*args, "-c", str(proj), option, value])
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.replace("│", " ").split())
    assert f"Invalid value for '{option}'" in said
    assert value[:10] in said and "out of range" in said
    assert "1700-01-01T00:00:00Z" in said and "2200-01-01T00:00:00Z" in said
    assert "Traceback" not in result.output
    status = runner.invoke(app, ["status", "-c", str(proj), "--json"])
    assert status.exit_code == 0, status.output
    [pipeline] = json.loads(status.stdout)
    assert pipeline["last_runs"] == [] and pipeline["queued"] == []


@pytest.mark.parametrize("value", ["1700-01-01", "2199-12-31T23:59:59", "1997-03-03"])
def test_times_inside_the_range_are_taken(proj: Path, value: str):
    result = runner.invoke(app, ["events", "-c", str(proj), "--since", value])
    assert result.exit_code == 0, result.output


def test_the_range_is_half_open():
    assert check_time(EARLIEST, "t") == EARLIEST
    assert check_time(LATEST - timedelta(microseconds=1), "t") < LATEST
    with pytest.raises(ConfigError, match="t: 2200-01-01T00:00:00"):
        check_time(LATEST.replace(tzinfo=None), "t")


FAR = [datetime(9999, 12, 31, 23, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]


def _no_run_written(project: Project) -> None:
    assert project.store.list_runs(limit=None) == []
    assert project.store.list_events(limit=None) == []


@pytest.mark.parametrize("when", FAR, ids=["9999", "0001"])
def test_the_engine_refuses_before_writing_a_record(tmp_path: Path, when: datetime):
    project = in_memory_project(root=tmp_path)
    with pytest.raises(ConfigError, match="out of range"):
        execute_run(project, clock=SimulatedClock(when))
    with pytest.raises(ConfigError, match="out of range"):
        request_run(project, "toy", now=when, by="test")
    with pytest.raises(ConfigError, match="out of range"):
        Controller(project, clock=SimulatedClock(when)).tick()
    with pytest.raises(ConfigError, match="out of range"):
        run_monitor(project, "toy", clock=SimulatedClock(when), report=False)
    _no_run_written(project)


@pytest.mark.parametrize("when", FAR, ids=["9999", "0001"])
def test_the_daemon_refuses_an_as_of_out_of_range(tmp_path: Path, when: datetime):
    project = in_memory_project(root=tmp_path)
    with pytest.raises(ConfigError, match=r"--as-of: .* out of range"):
        run_daemon(project, as_of=when, max_ticks=1, stop=threading.Event())
    _no_run_written(project)


def test_a_simulated_daemon_stepping_past_the_range_stops_before_the_tick(tmp_path: Path):
    project = in_memory_project(root=tmp_path)
    start = LATEST - timedelta(hours=1)
    with pytest.raises(ConfigError, match="the controller's clock: 2200-01-01T00:00:00"):
        run_daemon(
            project,
            as_of=start,
            tick_s=3600,
            max_ticks=3,
            executor="inline",
            stop=threading.Event(),
        )
    assert project.store.list_runs(status="queued", limit=None) == []
    assert project.store.list_runs(status="running", limit=None) == []
