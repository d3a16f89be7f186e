"""The backtest on a Dask cluster of separate processes against the process pool (issue 19).

Two measurements, in one run:

1. **elec2 default backtest** (the bundled example, its default grid of 17 policies and the
   degradation curve, ``--no-cache``): the wall time of ``retrainer backtest`` with
   ``executor: {kind: process, max_workers: 2}`` against ``executor: {kind: dask, address:
   ...}`` on a cluster started here as separate processes (``dask scheduler`` and two
   ``dask worker --nthreads 1``). Target: Dask within 1.2x of the process pool.
2. **100 policies over the cluster**: 100 cheap policies (fixed cadences of 30 to 129 days on
   the first ``--rows`` rows of elec2) through the same cluster; from the scheduler's task
   stream, the task times, the tasks each worker ran and the gap between a worker's tasks,
   and the scheduler process's CPU time. The scheduler is not the bottleneck when its CPU time
   is a small share of the tasks' time and the workers are busy (small gaps).

The replayed data set (the pool's shared value) goes to each worker once: ``task_pool``
scatters it with ``broadcast=True``; the script checks that no task fetched data from another
worker or the client (no ``transfer`` in the task stream).

Usage (from the repository root; needs ``pip install 'retrainer[dask]'``)::

    .venv/bin/python benchmarks/dask_backtest.py
    .venv/bin/python benchmarks/dask_backtest.py --skip-elec2 --policies 100
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def dask_cluster(folder: Path, workers: int = 2, cwd: Path | None = None) -> Iterator[Any]:
    """``(address, scheduler process)`` of a scheduler and ``workers`` single-threaded workers,
    each its own ``dask`` command; all stopped on exit."""
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd or ""), _src()]))}
    sched_file = folder / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    log = (folder / "dask.log").open("ab")
    try:
        scheduler = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
        )  # fmt: skip
        procs.append(scheduler)
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(workers):
            procs.append(
                subprocess.Popen(
                    [
                        dask,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--name",
                        f"worker-{i}",
                        "--host",
                        "127.0.0.1",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                )
            )
        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address, scheduler
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _src() -> str:
    import retrainer

    return str(Path(retrainer.__file__).resolve().parents[1])


def _backtest(project: Path, executor: dict[str, Any], out: Path, policies: Any = None) -> float:
    """Wall seconds of ``retrainer backtest`` (a fresh process) with ``executor``."""
    cfg = yaml.safe_load((project / "backtest.yaml").read_text()) or {}
    cfg["executor"] = executor
    if policies is not None:
        cfg["policies"] = policies
    path = project / f"backtest-{executor['kind']}-{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": _src()}
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "retrainer", "backtest", "-c", str(path), "--out", str(out),
         "--no-cache"],
        check=True, env=env, cwd=project, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - t0


def _cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _task_stream(address: str, since: float) -> list[dict[str, Any]]:
    from distributed import Client

    with Client(address) as client:
        return list(client.get_task_stream(start=since))


def _start_task_stream(address: str) -> None:
    from distributed import Client

    with Client(address) as client:
        client.get_task_stream()  # installs the scheduler's task-stream plugin


def _stream_stats(stream: list[dict[str, Any]]) -> dict[str, Any]:
    tasks, transfers = [], 0
    for entry in stream:
        for part in entry.get("startstops", ()):
            if part["action"] == "compute":
                tasks.append((entry["worker"], part["start"], part["stop"], entry["key"]))
            elif part["action"] == "transfer":
                transfers += 1
    per_worker = collections.Counter(w for w, *_ in tasks)
    gaps = []
    for worker in per_worker:
        mine = sorted((s, e) for w, s, e, _ in tasks if w == worker)
        gaps += [b[0] - a[1] for a, b in itertools.pairwise(mine)]
    seconds = [e - s for _, s, e, _ in tasks]
    return {
        "tasks": len(tasks),
        "per_worker": dict(per_worker),
        "task_s_total": sum(seconds),
        "task_s_median": statistics.median(seconds) if seconds else 0.0,
        "gap_ms_median": 1000 * statistics.median(gaps) if gaps else 0.0,
        "gap_ms_max": 1000 * max(gaps) if gaps else 0.0,
        "transfers": transfers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--rows", type=int, default=8000, help="elec2 rows for the 100 policies")
    parser.add_argument("--skip-elec2", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    # a SIGTERM stops the cluster and the backtest in hand too (the finally blocks run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="dask-backtest-"))
    try:
        project = tmp / "elec2"
        env = {**os.environ, "PYTHONPATH": _src()}
        subprocess.run(
            [sys.executable, "-m", "retrainer", "init", str(project), "--example", "elec2"],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        with dask_cluster(tmp, workers=2, cwd=project) as (address, scheduler):
            rows = []
            if not args.skip_elec2:
                walls = {}
                # the process pool first, then Dask: both on the same (warm) file cache
                walls["process"] = _backtest(
                    project, {"kind": "process", "max_workers": 2}, tmp / "out-process"
                )
                cpu0 = _cpu(scheduler.pid)
                since = time.time()
                _start_task_stream(address)
                walls["dask"] = _backtest(
                    project, {"kind": "dask", "address": address}, tmp / "out-dask"
                )
                stats = _stream_stats(_task_stream(address, since))
                sched_cpu = _cpu(scheduler.pid) - cpu0
                rows.append(("elec2 default grid", walls, stats, sched_cpu))
                print(
                    f"elec2 default backtest: process pool (2 workers) {walls['process']:.1f} s, "
                    f"Dask (scheduler + 2 workers) {walls['dask']:.1f} s, ratio "
                    f"{walls['dask'] / walls['process']:.2f}; {stats}; scheduler CPU "
                    f"{sched_cpu:.2f} s",
                    flush=True,
                )
            # 100 cheap policies on a slice of elec2
            import pandas as pd

            data = project / "data" / "elec2.parquet"
            frame = pd.read_parquet(data)
            frame.iloc[: args.rows].to_parquet(data)
            policies = [
                {"name": f"every {d}d", "triggers": [{"schedule": f"every {d}d"}]}
                for d in range(30, 30 + args.policies)
            ]
            cpu0 = _cpu(scheduler.pid)
            since = time.time()
            _start_task_stream(address)
            wall = _backtest(
                project, {"kind": "dask", "address": address}, tmp / "out-many", policies
            )
            stats = _stream_stats(_task_stream(address, since))
            sched_cpu = _cpu(scheduler.pid) - cpu0
            print(
                f"{args.policies} policies ({args.rows} rows): Dask {wall:.1f} s; {stats}; "
                f"scheduler CPU {sched_cpu:.2f} s "
                f"({100 * sched_cpu / max(stats['task_s_total'], 1e-9):.1f}% of task time, "
                f"{1000 * sched_cpu / max(stats['tasks'], 1):.1f} ms per task)",
                flush=True,
            )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
