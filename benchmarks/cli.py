"""CLI start-up benchmark: how fast the commands people type answer (issue 14, "A fast CLI").

Builds the elec2 example project with a registry of 1,000 model versions and an audit trail of
100,000 events (one real run, then 999 copies of its version registered through the metadata
store, and events appended through it, then multiplied in SQL to save time), and times, each
in a fresh interpreter (``python -m retrainer ...`` in the project folder):

- ``python -c pass``: the floor (the interpreter alone);
- ``retrainer --help``, ``status``, ``models list``, ``models show 500``, ``events``;
- ``run --as-of 1997-01-06``: a one-shot run of a freshly created example project (load,
  train, bless with the fresh-process sanity check, register, promote).

Each is run ``--repeat`` times (default 3); the Markdown table gives the median wall time and
the median CPU time (user + system: steadier than the wall time on a shared machine; for
``run`` it leaves out the sanity check's fork server, which works in parallel).

Usage (from the repository root)::

    .venv/bin/python benchmarks/cli.py
    .venv/bin/python benchmarks/cli.py --repeat 5 --keep /tmp/cli-bench
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

VERSIONS = 1_000
EVENTS = 100_000
AS_OF = datetime(1997, 1, 6, tzinfo=UTC)
KINDS = ("trigger.fired", "run.started", "blessing.passed", "model.promoted", "run.succeeded")


def build(folder: Path) -> Path:
    """The example project with VERSIONS versions and EVENTS events; returns its folder."""
    from retrainer.core.clock import SimulatedClock
    from retrainer.core.types import Event
    from retrainer.engine.project import Project
    from retrainer.engine.runs.run import execute_run
    from retrainer.engine.scaffold import init_project

    init_project(folder, "elec2")
    with Project.open(folder) as project:
        result = execute_run(project, clock=SimulatedClock(AS_OF))
        assert result.ok and result.version is not None, result.run.error
        first = result.version
        store = project.store
        for i in range(1, VERSIONS):
            store.register_version(
                dataclasses.replace(first, created_at=first.created_at + timedelta(hours=i))
            )
        # the run wrote a few events; a hundredth of the trail goes through the store's API
        for i in range(EVENTS // 100 - len(store.list_events())):
            store.append_event(
                Event(
                    kind=KINDS[i % len(KINDS)],
                    at=AS_OF + timedelta(minutes=i),
                    pipeline=first.pipeline,
                    message=f"benchmark event {i}",
                )
            )
        db = project.root / ".retrainer" / "retrainer.db"
    # copies of the first events, in SQL: 100,000 single-row transactions take minutes
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(events)") if row[1] != "id"]
        names = ", ".join(columns)
        while (n := conn.execute("SELECT count(*) FROM events").fetchone()[0]) < EVENTS:
            conn.execute(
                f"INSERT INTO events ({names}) SELECT {names} FROM events ORDER BY id "
                f"LIMIT {min(n, EVENTS - n)}"
            )
    return folder


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one command; the CPU time (user + system of the process and the
    children it waited for) moves less than the wall time on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="Build the project here and keep it.")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    base = args.keep or Path(tmp.name)
    base.mkdir(parents=True, exist_ok=True)
    project = base / "project"
    started = time.perf_counter()
    if not (project / "retrainer.yaml").exists():
        build(project)
    built = time.perf_counter() - started

    py = sys.executable
    cli = [py, "-m", "retrainer"]
    env_note = os.environ.get("PYTHONPATH", "")
    commands = {
        "`python -c pass` (floor)": [py, "-c", "pass"],
        "`retrainer --help`": [*cli, "--help"],
        "`retrainer status`": [*cli, "status"],
        "`retrainer models list`": [*cli, "models", "list"],
        "`retrainer models show 500`": [*cli, "models", "show", "500"],
        "`retrainer events`": [*cli, "events"],
    }
    rows = []
    for label, command in commands.items():
        times = [timed(command, project) for _ in range(args.repeat)]
        rows.append((label, times))
    runs = []
    for i in range(args.repeat):
        fresh = base / f"run-{i}"
        subprocess.run(
            [*cli, "init", str(fresh), "--example", "elec2", "--force"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        runs.append(timed([*cli, "run", "--as-of", f"{AS_OF:%Y-%m-%d}"], fresh))
    rows.append(("`retrainer run --as-of 1997-01-06` (fresh example)", runs))

    print(
        f"{VERSIONS:,} versions, {EVENTS:,} events (built in {built:.0f} s); "
        f"median of {args.repeat}; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores{f', PYTHONPATH={env_note}' if env_note else ''}\n"
    )
    print("| command | median wall s | median CPU s | wall s of each run |")
    print("|---|---:|---:|---:|")
    for label, times in rows:
        walls = [wall for wall, _ in times]
        cpu = statistics.median(c for _, c in times)
        each = " ".join(f"{t:.2f}" for t in walls)
        print(f"| {label} | {statistics.median(walls):.2f} | {cpu:.2f} | {each} |")
    tmp.cleanup()


if __name__ == "__main__":
    main()
