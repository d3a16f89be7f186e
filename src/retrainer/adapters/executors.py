"""Executors: where a claimed run executes.

- :class:`InlineExecutor` calls a function in this process (tests, the backtest);
- :class:`ProcessExecutor` (the daemon's default) starts one Python process per run, with a
  timeout and an optional memory limit, so a training that crashes, hangs or exhausts memory
  cannot take the daemon down: the daemon sees the exit status and records the reason;
- ``DaskExecutor`` (``retrainer.integrations.dask``) submits the same worker command to a Dask
  cluster.

The engine hands each executor a :class:`Job`; executors know nothing of runs or stores.

:func:`task_pool` is the same three places for a batch of function calls that share one large
argument (the backtest's policies over one replayed data set): ``inline``, ``process`` (spawned
workers, the shared value sent once to each) or ``dask``, behind one
``concurrent.futures.Executor``-like interface.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One run to execute: its id and claim epoch, and how to execute it out of process."""

    run_id: int
    epoch: int
    pipeline: str
    argv: tuple[str, ...] = ()
    timeout_s: float | None = None
    memory_mb: int | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """How a job ended. ``ok`` means the worker finished and recorded the run itself."""

    job: Job
    ok: bool
    reason: str | None
    seconds: float
    exit_code: int | None = None


class Executor(Protocol):
    """Runs jobs; :meth:`poll` returns those that ended since the last call."""

    def submit(self, job: Job) -> None: ...

    def poll(self) -> list[JobResult]: ...

    def busy(self) -> int:
        """Jobs submitted and not yet returned by :meth:`poll`."""
        ...

    def busy_running(self) -> bool:
        """Whether a submitted job is still executing."""
        ...

    @property
    def capacity(self) -> int: ...

    def shutdown(self, grace_s: float) -> list[Job]:
        """Wait up to ``grace_s`` for running jobs; stop the rest and return them."""
        ...


class InlineExecutor:
    """Execute each job at submission, in this process, with ``fn(job)``.

    ``fn`` returns normally when the worker recorded the run's outcome (success or a
    recorded failure); an exception is reported as a crashed job.

    Examples
    --------
    >>> ex = InlineExecutor(lambda job: None)
    >>> ex.submit(Job(run_id=1, epoch=1, pipeline="p"))
    >>> [r.ok for r in ex.poll()]
    [True]
    """

    capacity = 1

    def __init__(self, fn: Callable[[Job], object]) -> None:
        self.fn = fn
        self._done: list[JobResult] = []

    def submit(self, job: Job) -> None:
        t0 = time.perf_counter()
        try:
            self.fn(job)
            self._done.append(JobResult(job=job, ok=True, reason=None, seconds=_since(t0)))
        except Exception as exc:
            reason = f"worker raised {type(exc).__name__}: {exc}"
            self._done.append(JobResult(job=job, ok=False, reason=reason, seconds=_since(t0)))

    def poll(self) -> list[JobResult]:
        out, self._done = self._done, []
        return out

    def busy(self) -> int:
        return len(self._done)

    def busy_running(self) -> bool:
        return False

    def shutdown(self, grace_s: float) -> list[Job]:
        return []


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 6)


def _limit_memory(memory_mb: int | None) -> Callable[[], None] | None:
    if not memory_mb:
        return None

    def apply() -> None:  # runs in the child between fork and exec
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


class ProcessExecutor:
    """One child process per job (``job.argv``), at most ``max_workers`` at a time.

    A child that exceeds ``job.timeout_s`` is killed (its whole process group) and reported
    as timed out; a child killed by a signal or exiting with a code other than 0 or 1 is
    reported with that status (exit code 1 means the worker recorded a failed run itself).
    ``job.memory_mb`` caps the child's address space (``RLIMIT_AS``), so a training that
    exhausts memory fails with ``MemoryError`` instead of starving the machine.

    Examples
    --------
    >>> ex = ProcessExecutor(max_workers=1)
    >>> ex.submit(Job(run_id=1, epoch=1, pipeline="p", argv=(sys.executable, "-c", "pass")))
    >>> ex.shutdown(grace_s=30)
    []
    >>> [(r.ok, r.exit_code) for r in ex.poll()]
    [(True, 0)]
    """

    def __init__(self, max_workers: int = 1, log_dir: Path | None = None) -> None:
        self.max_workers = max_workers
        self.log_dir = log_dir
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="run")
        self._futures: dict[Future[JobResult], Job] = {}
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self.max_workers

    def submit(self, job: Job) -> None:
        if not job.argv:
            raise ValueError("ProcessExecutor needs a job with argv (the worker command)")
        future = self._pool.submit(self._run, job)
        with self._lock:
            self._futures[future] = job

    def _run(self, job: Job) -> JobResult:
        def started(proc: subprocess.Popen[bytes]) -> None:
            with self._lock:
                self._procs[job.run_id] = proc

        try:
            return run_job_in_subprocess(job, self.log_dir, on_start=started)
        finally:
            with self._lock:
                self._procs.pop(job.run_id, None)

    def poll(self) -> list[JobResult]:
        with self._lock:
            done = [f for f in self._futures if f.done()]
            jobs = [self._futures.pop(f) for f in done]
        return [f.result() for f, _ in zip(done, jobs, strict=True)]

    def busy(self) -> int:
        with self._lock:
            return len(self._futures)

    def shutdown(self, grace_s: float) -> list[Job]:
        deadline = time.monotonic() + grace_s
        while self.busy_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            left = [job for f, job in self._futures.items() if not f.done()]
            procs = list(self._procs.values())
        for proc in procs:
            _kill_group(proc)
        self._pool.shutdown(wait=True, cancel_futures=True)
        return left

    def busy_running(self) -> bool:
        with self._lock:
            return any(not f.done() for f in self._futures)


def run_job_in_subprocess(
    job: Job,
    log_dir: Path | None = None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> JobResult:
    """Run ``job.argv`` in a new process group with the job's timeout and memory limit."""
    t0 = time.perf_counter()
    log = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"run-{job.run_id}-{job.epoch}.log").open("ab")
    try:
        try:
            proc = subprocess.Popen(
                list(job.argv),
                stdin=subprocess.DEVNULL,
                stdout=log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                env={**os.environ, **job.env},
                start_new_session=True,  # its own process group: a timeout kills it all
                preexec_fn=_limit_memory(job.memory_mb),
            )
        except OSError as exc:
            return JobResult(job=job, ok=False, reason=f"could not start: {exc}", seconds=0.0)
        if on_start is not None:
            on_start(proc)
        try:
            code = proc.wait(timeout=job.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return JobResult(
                job=job,
                ok=False,
                reason=f"timed out after {job.timeout_s:g}s and was killed",
                seconds=_since(t0),
            )
        return JobResult(
            job=job, ok=code in (0, 1), reason=_describe(code), seconds=_since(t0), exit_code=code
        )
    finally:
        if log:
            log.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _describe(code: int) -> str | None:
    if code == 0:
        return None
    if code == 1:
        return "the run failed (recorded by the worker)"
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"the worker was killed by {name}{hint}"
    return f"the worker exited with code {code}"


def worker_argv(
    config: Path, run_id: int, epoch: int, extra: Sequence[str] = ()
) -> tuple[str, ...]:
    """The command line of the run worker (``python -m retrainer.engine.runs.worker``)."""
    return (
        sys.executable,
        "-m",
        "retrainer.engine.runs.worker",
        "--config",
        str(config),
        "--run-id",
        str(run_id),
        "--epoch",
        str(epoch),
        *extra,
    )


# --- pools of function calls -------------------------------------------------------------------


class _SharedInWorker:
    """Stands for the pool's shared value in a process worker (which holds it since start)."""


_SHARED: Any = None  # a process worker's copy of the pool's shared value (set at its start)


def _set_shared(value: Any) -> None:
    global _SHARED
    _SHARED = value


def _call_shared(fn: Callable[..., Any], shared: Any, args: tuple[Any, ...]) -> Any:
    return fn(_SHARED if isinstance(shared, _SharedInWorker) else shared, *args)


class TaskPool:
    """Calls ``fn(shared, *args)`` somewhere; see :func:`task_pool`."""

    def __init__(self, executor: cf.Executor, handle: Any, workers: int) -> None:
        self._executor = executor
        self._handle = handle
        self.workers = workers

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        """Start ``fn(shared, *args)``; ``fn`` must be importable (a module-level function)."""
        return self._executor.submit(_call_shared, fn, self._handle, args)


class _InlinePool(cf.Executor):
    """A ``concurrent.futures.Executor`` that runs each call at submission, in this process."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def task_pool(
    kind: Literal["inline", "process", "dask"] | str,
    *,
    shared: Any,
    max_workers: int = 1,
    address: str | None = None,
) -> Iterator[TaskPool]:
    """A pool whose calls all receive ``shared`` first, sent to each worker once.

    ``inline`` calls in this process, at submission (also ``process`` with one worker);
    ``process`` starts ``max_workers`` spawned processes (not forked: this process's
    forkserver belongs to the sanity checks); ``dask`` scatters ``shared`` to the cluster at
    ``address`` or to a local cluster of ``max_workers`` processes.

    Examples
    --------
    >>> with task_pool("inline", shared=10) as pool:
    ...     pool.submit(divmod, 3).result()
    (3, 1)
    """
    if kind == "inline" or (kind == "process" and max_workers == 1):
        yield TaskPool(_InlinePool(), shared, 1)
    elif kind == "dask":
        from retrainer.integrations.dask import dask_client

        with dask_client(address, max_workers) as client:
            handle = client.scatter(shared, broadcast=True)
            yield TaskPool(client.get_executor(pure=False), handle, max_workers)
    elif kind == "process":
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(
            max_workers=max_workers, mp_context=ctx, initializer=_set_shared, initargs=(shared,)
        ) as pool:
            yield TaskPool(pool, _SharedInWorker(), max_workers)
    else:
        raise ValueError(f"unknown executor kind {kind!r}; expected inline, process or dask")
