"""What a retrain costs through a Prefect flow vs the daemon's path (issue 19, item 4).

The same retrain of the elec2 example (a fresh project folder each time, ``--as-of``
1997-01-06: load, train, bless with its sanity check, register, promote), three ways, each
``--repeat`` times, interleaved so that the machine's load hits all three alike:

- ``execute_run``: the daemon's path (create, claim and execute the run in one call);
- ``stages``: :mod:`retrainer.engine.runs.stages` called in a row on one open project (what
  splitting the run into stages costs by itself, without Prefect);
- ``prefect flow``: :func:`retrainer.integrations.prefect.pipeline_flow` on Prefect's
  ephemeral API (``prefect_test_harness``: a local Prefect server on SQLite, started once and
  not timed); each task opens the project itself.

The overhead per flow run is the median of ``prefect flow`` minus the median of
``execute_run``. Run it in the Prefect venv (``bash .ci/integration.sh prefect --co`` builds
it)::

    .venv-prefect/bin/python benchmarks/prefect_overhead.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

AS_OF = datetime(1997, 1, 6, tzinfo=UTC)


def _project(root: Path) -> Path:
    from retrainer.engine.scaffold import init_project

    init_project(root, "elec2")
    return root


def _execute_run(folder: Path) -> str:
    from retrainer.core.clock import SimulatedClock
    from retrainer.engine.project import Project
    from retrainer.engine.runs.run import execute_run

    with Project.open(folder) as project:
        return str(execute_run(project, clock=SimulatedClock(AS_OF)).run.status)


def _stages(folder: Path) -> str:
    from retrainer.engine.project import Project
    from retrainer.engine.runs import stages

    with Project.open(folder) as project:
        name = project.pipeline().name
        run = stages.start_run(project, name, now=AS_OF, trigger="schedule", slot=AS_OF.isoformat())
        assert run is not None and run.id is not None
        stages.train(project, run.id, now=AS_OF)
        stages.bless(project, run.id, now=AS_OF)
        return stages.deploy(project, run.id, now=AS_OF).status


def _flow(folder: Path) -> str:
    from retrainer.integrations.prefect import pipeline_flow

    return str(pipeline_flow(folder)(logical_time=AS_OF)["status"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    # Prefect's INFO lines per task would be timed into the flow's figure through the terminal;
    # its telemetry has no network here
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    ways: dict[str, Callable[[Path], str]] = {
        "execute_run (daemon)": _execute_run,
        "stages, one process": _stages,
        "prefect flow": _flow,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    with prefect_test_harness(server_startup_timeout=120), tempfile.TemporaryDirectory() as tmp:
        _flow(_project(Path(tmp) / "warm"))  # imports and the API client: not per-run costs
        _execute_run(_project(Path(tmp) / "warm2"))
        for i in range(args.repeat):
            for name, way in ways.items():
                folder = _project(Path(tmp) / f"{i}-{name.split()[0]}")
                start = time.perf_counter()
                status = way(folder)
                times[name].append(time.perf_counter() - start)
                assert status == "succeeded", (name, status)
    base = statistics.median(times["execute_run (daemon)"])
    print(f"elec2 retrain as of {AS_OF.date()}, {args.repeat} repeats, medians (seconds)\n")
    print("| path | median (s) | min (s) | vs execute_run (s) |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.2f} | {min(values):.2f} | {med - base:+.2f} |")
    print(f"\npython {sys.version.split()[0]}", end="")
    import prefect

    print(f", prefect {prefect.__version__}")


if __name__ == "__main__":
    main()
