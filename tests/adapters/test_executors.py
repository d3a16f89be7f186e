"""Executors: real child processes, timeouts, memory limits, crashes."""

from __future__ import annotations

import sys
import time

import pytest

from retrainer.adapters.executors import InlineExecutor, Job, ProcessExecutor


def _job(code: str, **kw) -> Job:
    return Job(
        run_id=kw.pop("run_id", 1), epoch=1, pipeline="p", argv=(sys.executable, "-c", code), **kw
    )


def _finish(ex: ProcessExecutor, n: int = 1, timeout: float = 60):
    deadline = time.monotonic() + timeout
    results = []
    while len(results) < n and time.monotonic() < deadline:
        results += ex.poll()
        time.sleep(0.02)
    ex.shutdown(grace_s=5)
    return results


@pytest.mark.parametrize(
    ("code", "ok", "reason"),
    [
        ("pass", True, None),
        ("import sys; sys.exit(1)", True, "recorded by the worker"),
        ("import sys; sys.exit(7)", False, "exited with code 7"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", False, "killed by SIGKILL"),
    ],
)
def test_exit_status_is_reported(code, ok, reason):
    ex = ProcessExecutor()
    ex.submit(_job(code))
    (result,) = _finish(ex)
    assert result.ok is ok
    assert (result.reason is None) if reason is None else reason in result.reason


def test_timeout_kills_the_whole_process_group():
    ex = ProcessExecutor()
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    t0 = time.monotonic()
    ex.submit(_job(code, timeout_s=1.0))
    (result,) = _finish(ex)
    assert not result.ok and "timed out after 1s" in result.reason
    assert time.monotonic() - t0 < 20


def test_memory_limit_turns_a_runaway_allocation_into_memory_error():
    ex = ProcessExecutor()
    code = "import sys\ntry:\n    b = bytearray(4 * 1024**3)\nexcept MemoryError:\n    sys.exit(1)\nsys.exit(0)"
    ex.submit(_job(code, memory_mb=1024))
    (result,) = _finish(ex)
    assert result.exit_code == 1  # the child saw MemoryError instead of eating the machine


def test_capacity_and_busy():
    ex = ProcessExecutor(max_workers=2)
    for i in range(3):
        ex.submit(_job("import time; time.sleep(0.2)", run_id=i))
    assert ex.busy() == 3
    results = _finish(ex, n=3)
    assert sorted(r.job.run_id for r in results) == [0, 1, 2]


def test_shutdown_returns_unfinished_jobs():
    ex = ProcessExecutor()
    ex.submit(_job("import time; time.sleep(30)"))
    time.sleep(0.3)
    left = ex.shutdown(grace_s=0.2)
    assert [j.run_id for j in left] == [1]


def test_inline_executor_reports_exceptions():
    def boom(job: Job) -> None:
        raise RuntimeError("no")

    ex = InlineExecutor(boom)
    ex.submit(Job(run_id=3, epoch=1, pipeline="p"))
    (result,) = ex.poll()
    assert not result.ok and "RuntimeError: no" in result.reason


# --- task pools: the backtest's one executor path ---------------------------------------------


@pytest.mark.parametrize("kind", ["inline", "process"])
def test_a_task_pool_passes_the_shared_value_first(kind: str):
    import operator

    from retrainer.adapters.executors import task_pool

    with task_pool(kind, shared=10, max_workers=2) as pool:
        futures = [pool.submit(operator.add, k) for k in range(4)]
        assert [f.result() for f in futures] == [10, 11, 12, 13]
        assert pool.workers == (1 if kind == "inline" else 2)


def test_a_task_pool_reports_an_exception_in_the_future_and_refuses_an_unknown_kind():
    import operator

    from retrainer.adapters.executors import task_pool

    with task_pool("inline", shared=1) as pool, pytest.raises(ZeroDivisionError):
        pool.submit(operator.truediv, 0).result()
    pools = task_pool("cloud", shared=1)
    with pytest.raises(ValueError, match="unknown executor kind 'cloud'"):
        pools.__enter__()
