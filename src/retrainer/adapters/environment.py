"""Facts about the running environment recorded in lineage: git state, versions, process."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

KEY_PACKAGES = ("retrainer", "scikit-learn", "numpy", "pandas", "scipy", "skops", "river")


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git work tree holding ``path``, or (None, None) outside one."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def package_versions() -> dict[str, str]:
    """Python and key package versions (packages that are not installed are left out).

    Read once per process (installed versions do not change under a running process).

    Examples
    --------
    >>> "python" in package_versions()
    True
    """
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def process_owner() -> str:
    """``host:pid`` of this process: who holds a run."""
    return f"{socket.gethostname()}:{os.getpid()}"


DASK_WORKER_ENV = "RETRAINER_DASK_WORKER"
"""Set by the Dask executor's task to the address of the Dask worker that runs the job."""


def executed_on() -> dict[str, str | int]:
    """Where this process runs: host, pid, and the executor (``dask`` with the Dask worker's
    address when the Dask executor started it, else ``process``).

    Examples
    --------
    >>> sorted(executed_on())
    ['executor', 'host', 'pid']
    """
    out: dict[str, str | int] = {"host": socket.gethostname(), "pid": os.getpid()}
    dask_worker = os.environ.get(DASK_WORKER_ENV)
    if dask_worker:
        return out | {"executor": "dask", "dask_worker": dask_worker}
    return out | {"executor": "process"}


def owner_is_gone(owner: str | None) -> bool:
    """True when ``owner`` (``host:pid``) is a process on this host that no longer exists."""
    if not owner or ":" not in owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # a zombie (killed, not yet reaped by its parent) still answers kill(0)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
