"""Run retrainer's runs on a Dask distributed cluster.

``DaskExecutor`` submits the same worker command the process executor runs
(``python -m retrainer.engine.runs.worker ...``) as a task: the Dask worker starts it in a child
process with the run's timeout and memory limit, so a crashing training cannot take the Dask
worker down either. Workers must see the project folder and its stores (a shared file system,
or PostgreSQL + S3 storage URLs).

Examples
--------
>>> ex = DaskExecutor(max_workers=1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from retrainer.adapters.environment import DASK_WORKER_ENV
from retrainer.adapters.executors import Job, JobResult, run_job_in_subprocess
from retrainer.errors import ConfigError


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            "DaskExecutor needs the 'distributed' package. Install it with: "
            "pip install 'retrainer[dask]'"
        ) from exc
    return distributed


def run_job_on_dask_worker(job: Job) -> JobResult:
    """The Dask task: run the job's worker command, telling it which Dask worker it is on
    (the run worker records it in the event that closes the run)."""
    address = _distributed().get_worker().address
    env = {**job.env, DASK_WORKER_ENV: address}
    result = run_job_in_subprocess(dataclasses.replace(job, env=env))
    return dataclasses.replace(result, job=job)


@contextlib.contextmanager
def dask_client(address: str | None, max_workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address``, or of a ``LocalCluster`` of
    ``max_workers`` single-threaded processes started (and closed) here."""
    dist = _distributed()
    cluster = None
    if address is None:
        cluster = dist.LocalCluster(
            # the dashboard on a free loopback port: None falls back to the fixed :8787,
            # which two clusters at once (two test workers, two backtests) cannot share
            n_workers=max_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
        )
    client = dist.Client(address or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class DaskExecutor:
    """Submit jobs to a Dask cluster at ``address``, or to a ``LocalCluster`` it starts.

    Parameters
    ----------
    address
        A scheduler address (``tcp://host:8786``); None starts a local cluster of
        ``max_workers`` single-threaded worker processes (tests, one machine).
    max_workers
        How many runs may execute at once.
    client
        An existing ``distributed.Client`` to use instead.
    """

    def __init__(
        self, address: str | None = None, max_workers: int = 1, client: Any | None = None
    ) -> None:
        dist = _distributed()
        self.max_workers = max_workers
        self._cluster = None
        if client is None:
            if address is None:
                self._cluster = dist.LocalCluster(
                    n_workers=max_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:0",
                    host="127.0.0.1",
                )
                client = dist.Client(self._cluster)
            else:
                client = dist.Client(address)
        self.client = client
        self._futures: dict[Any, Job] = {}

    @property
    def capacity(self) -> int:
        return self.max_workers

    def submit(self, job: Job) -> None:
        if not job.argv:
            raise ValueError("DaskExecutor needs a job with argv (the worker command)")
        future = self.client.submit(
            run_job_on_dask_worker, job, pure=False, key=f"run-{job.run_id}-{job.epoch}"
        )
        self._futures[future] = job

    def poll(self) -> list[JobResult]:
        out = []
        for future in [f for f in self._futures if f.done()]:
            job = self._futures.pop(future)
            try:
                out.append(future.result())
            except Exception as exc:  # the Dask worker itself died
                out.append(
                    JobResult(job=job, ok=False, reason=f"dask task failed: {exc}", seconds=0.0)
                )
        return out

    def busy(self) -> int:
        return len(self._futures)

    def busy_running(self) -> bool:
        return any(not f.done() for f in self._futures)

    def shutdown(self, grace_s: float) -> list[Job]:
        import time

        deadline = time.monotonic() + grace_s
        while any(not f.done() for f in self._futures) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [job for f, job in self._futures.items() if not f.done()]
        for f in list(self._futures):
            if not f.done():
                f.cancel()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        return left
