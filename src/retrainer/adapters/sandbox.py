"""Load a saved model and predict with it in a fresh Python process.

This is the blessing step's "sanity" check: the artifact as written to the store must load and
predict outside the process that trained it (no reliance on objects that only exist in the
training process, no untrusted types, no tampering), within a time limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec.core
import numpy as np
import pandas as pd

from retrainer.adapters._sanity_worker import ERROR_PREFIX

__all__ = ["SanityResult", "predict_in_fresh_process", "start_fresh_process_server"]


# eq=False: an ndarray field makes the generated ``==`` ambiguous.
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SanityResult:
    """Outcome of :func:`predict_in_fresh_process`.

    Attributes
    ----------
    ok
        Whether the model loaded and predicted in the fresh process.
    predictions
        The predictions on the sample rows, when ``ok``.
    error
        One line saying what went wrong, when not ``ok``.
    seconds
        Wall time of the whole check, process start included.

    Examples
    --------
    >>> SanityResult(ok=False, predictions=None, error="timed out", seconds=1.5).ok
    False
    """

    ok: bool
    predictions: np.ndarray | None
    error: str | None
    seconds: float


def predict_in_fresh_process(
    *,
    artifact_url: str,
    sha256: str,
    fmt: str,
    trusted_types: Sequence[str],
    allow_pickle: bool,
    sample: pd.DataFrame,
    timeout_s: float = 120.0,
    recorded_types: Sequence[str] | None = None,
) -> SanityResult:
    """Load an artifact in a new Python interpreter and predict on ``sample`` there.

    The child process reads the blob at ``artifact_url`` through fsspec, checks that it hashes
    to ``sha256``, loads it with :func:`retrainer.adapters.serialization.load_model` and calls
    ``model.predict(sample)``. This function never raises: every failure (integrity error,
    untrusted types, ``predict`` raising, the process crashing or running past ``timeout_s``)
    gives ``ok=False`` and one line in ``error``.

    Parameters
    ----------
    artifact_url
        fsspec URL of the blob. A ``memory://`` URL (``InMemoryArtifactStore``) only exists in
        this process, so its bytes are copied to a temporary file for the child.
    sha256
        The sha256 recorded for the blob.
    fmt, trusted_types, allow_pickle, recorded_types
        As for :func:`~retrainer.adapters.serialization.load_model`.
    sample
        Rows to predict on (column names must be strings: they are passed as Parquet).
    timeout_s
        Time limit for the whole child process, start-up included.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from retrainer.adapters.artifacts import LocalArtifactStore
    >>> from retrainer.adapters.serialization import dump_model
    >>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     ref = LocalArtifactStore(folder).put(dump_model(model))
    ...     result = predict_in_fresh_process(
    ...         artifact_url=ref.url, sha256=ref.sha256, fmt="skops", trusted_types=[],
    ...         allow_pickle=False, sample=X,
    ...     )
    >>> result.ok, result.predictions, result.error
    (True, array([0, 0, 1, 1]), None)
    """
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="retrainer-sanity-") as tmp:
            ok, predictions, error = _run_worker(
                Path(tmp),
                artifact_url=artifact_url,
                sha256=sha256,
                fmt=fmt,
                trusted_types=trusted_types,
                allow_pickle=allow_pickle,
                recorded_types=recorded_types,
                sample=sample,
                timeout_s=timeout_s,
            )
    except Exception as exc:
        ok, predictions, error = False, None, f"{type(exc).__name__}: {exc}"
    return SanityResult(
        ok=ok,
        predictions=predictions,
        error=error,
        seconds=time.perf_counter() - started,
    )


def _run_worker(
    tmp: Path,
    *,
    artifact_url: str,
    sha256: str,
    fmt: str,
    trusted_types: Sequence[str],
    allow_pickle: bool,
    recorded_types: Sequence[str] | None,
    sample: pd.DataFrame,
    timeout_s: float,
) -> tuple[bool, np.ndarray | None, str | None]:
    sample_path, out_path, stderr_path = tmp / "sample.parquet", tmp / "out.npy", tmp / "stderr"
    sample.to_parquet(sample_path)
    if fsspec.core.split_protocol(artifact_url)[0] == "memory":
        # fsspec's memory filesystem only exists in this process (InMemoryArtifactStore), so
        # the child gets a copy of the stored bytes; it still checks their sha256.
        copy = tmp / "artifact"
        with fsspec.open(artifact_url, "rb") as f:
            copy.write_bytes(f.read())
        artifact_url = str(copy)
    command = [
        sys.executable,
        "-m",
        "retrainer.adapters._sanity_worker",
        "--url",
        artifact_url,
        "--sha256",
        sha256,
        "--fmt",
        fmt,
        "--sample",
        str(sample_path),
        "--out",
        str(out_path),
    ]
    for name in trusted_types:
        command += ["--trusted-type", name]
    if allow_pickle:
        command.append("--allow-pickle")
    if recorded_types is not None:
        command += ["--recorded-types", " ".join(recorded_types)]

    ctx = _forkserver()
    if ctx is not None:
        returncode = _run_forked(ctx, command[3:], stderr_path, timeout_s)
        if returncode is None:
            return False, None, f"the model did not load and predict within {timeout_s:g} s"
    else:
        returncode = _run_subprocess(command, stderr_path, timeout_s)
        if returncode is None:
            return False, None, f"the model did not load and predict within {timeout_s:g} s"
    if returncode != 0:
        return False, None, _error_line(stderr_path.read_text(errors="replace"), returncode)
    return True, np.load(out_path, allow_pickle=False), None


def _kill(process: subprocess.Popen[bytes]) -> None:
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()
    process.wait()


def _error_line(stderr: str, returncode: int) -> str:
    """The worker's own error line, else the last line it printed, else how it ended."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line.removeprefix(ERROR_PREFIX)
    if returncode < 0:
        how = f"the worker process was killed by {signal.Signals(-returncode).name}"
    else:
        how = f"the worker process exited with code {returncode}"
    return f"{how}: {lines[-1]}" if lines else how


def _run_subprocess(command: list[str], stderr_path: Path, timeout_s: float) -> int | None:
    """A new interpreter; None on timeout."""
    # The child must import this same retrainer, even when it is not installed.
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with stderr_path.open("wb") as stderr:
        # stderr goes to a file rather than a pipe, so a killed child (or a grandchild it
        # started) can never leave this process waiting on a pipe. A new session lets a
        # timeout kill the child together with any worker processes it started.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            start_new_session=os.name == "posix",
        )
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill(process)
            return None


_FORKSERVER: Any = None
_PRELOAD = [
    "retrainer.adapters._sanity_worker",
    "skops.io",
    "sklearn",
    "pandas",
    "pyarrow.parquet",
    "river",
    "retrainer.integrations.river",
]


def _forkserver() -> Any:
    """A ``forkserver`` context whose server has imported the libraries a check needs.

    Each check is still a new process that never held the trained model or imported the
    user's code: it is forked from a clean server process started once (from a fresh
    interpreter) that only imported numpy, pandas, scikit-learn, River and skops. That saves the
    ~2 s of imports a new interpreter pays for every check. Set
    ``RETRAINER_SANITY_SUBPROCESS=1`` to start a new interpreter per check instead.
    """
    global _FORKSERVER
    if os.environ.get("RETRAINER_SANITY_SUBPROCESS"):
        return None
    if _FORKSERVER is None:
        import multiprocessing

        if "forkserver" not in multiprocessing.get_all_start_methods():
            return None
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        _FORKSERVER = ctx
    return _FORKSERVER


def start_fresh_process_server() -> None:
    """Start the server the checks are forked from now, without waiting for it.

    Its imports (scikit-learn, pandas, River, skops: ~2 s in a new interpreter) then run
    while the caller loads data and trains, instead of after, when the first check needs
    the server. A no-op when the server runs already or checks start new interpreters.

    Examples
    --------
    >>> start_fresh_process_server()  # returns at once; the imports go on in the server
    """
    if _forkserver() is None:
        return
    from multiprocessing import forkserver

    forkserver.ensure_running()


def _forked_check(argv: list[str], stderr_path: str) -> None:
    """The child: stderr to the file, then the worker's main; exits with its code."""
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 2)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    from retrainer.adapters._sanity_worker import main

    try:
        code = main(argv)
    except BaseException as exc:  # the worker reports its own errors; this is a backstop
        print(f"{ERROR_PREFIX}{type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.stderr.flush()
    os._exit(code)


_MAIN_LOCK = threading.Lock()


def _run_forked(ctx: Any, argv: list[str], stderr_path: Path, timeout_s: float) -> int | None:
    process = ctx.Process(target=_forked_check, args=(argv, str(stderr_path)), daemon=True)
    # multiprocessing re-imports the parent's __main__ script in each child ("main fixup"):
    # a user script (or a benchmark) would be imported again for every check. The child runs
    # a function of this module only, so it is started with a bare __main__.
    with _MAIN_LOCK:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            sys.modules["__main__"] = main
    process.join(timeout_s)
    if process.is_alive():
        process.kill()
        process.join()
        return None
    code = process.exitcode
    process.close()
    return int(code) if code is not None else None
