"""The demo: a project from the bundled elec2 example, a first training and retrains.

Each run happens "as of" a date inside the data set's history on a simulated clock, the way
the backtest replays history, so the demo shows the whole cycle in seconds: train, bless
against the champion on the same fresh rows, promote, and the registry with its lineage.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from retrainer.core.clock import SimulatedClock
from retrainer.engine.project import Project
from retrainer.engine.run import RunResult, execute_run
from retrainer.engine.scaffold import init_project
from retrainer.errors import ConfigError

MARKER = ".retrainer-demo"
DEMO_DATES = (
    datetime(1997, 1, 6, tzinfo=UTC),
    datetime(1997, 3, 3, tzinfo=UTC),
    datetime(1997, 5, 5, tzinfo=UTC),
)


def prepare_demo_dir(target: Path) -> None:
    """Create ``target`` for the demo; a previous demo there (marked) is replaced."""
    if target.exists():
        if (target / MARKER).exists():
            shutil.rmtree(target)
        elif any(target.iterdir()):
            raise ConfigError(
                f"{target} exists and is not a retrainer demo folder; choose another --dir"
            )
    init_project(target, "elec2")
    (target / MARKER).write_text("created by `retrainer demo`; safe to delete\n")


def run_demo(
    target: Path,
    dates: tuple[datetime, ...] = DEMO_DATES,
    on_start: Callable[[int, datetime], None] | None = None,
) -> Iterator[tuple[datetime, RunResult]]:
    """Run the pipeline as of each date in turn; yield (date, result) as each run ends."""
    prepare_demo_dir(target)
    with Project.open(target) as project:
        for i, when in enumerate(dates):
            if on_start is not None:
                on_start(i, when)
            result = execute_run(
                project, clock=SimulatedClock(when), cause="manual", actor="retrainer demo"
            )
            yield when, result
