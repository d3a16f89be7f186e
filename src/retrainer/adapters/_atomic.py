"""Atomic, durable writes of a whole file on a local disk (artifacts, log segments, reports)."""

from __future__ import annotations

import os
from pathlib import Path

from retrainer.errors import STORAGE_ERRNOS, StorageError


def write_local_atomically(
    folder: str, tmp: str, path: str, data: bytes, *, setting: str | None = None
) -> None:
    """Write ``data`` to ``tmp``, make it durable, then rename it to ``path``.

    A permission or disk error (read-only folder, full disk, a file where the folder should
    be...) raises :class:`~retrainer.errors.StorageError` naming ``path`` and what to do
    (``setting``: the configuration key that chooses the place).
    """
    try:
        _write(folder, tmp, path, data)
    except OSError as exc:
        if getattr(exc, "errno", None) not in STORAGE_ERRNOS:
            raise
        raise StorageError.from_os_error(
            exc, doing="cannot write", path=path, setting=setting
        ) from exc


def _write(folder: str, tmp: str, path: str, data: bytes) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)  # os.replace: atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if os.name == "posix":
        # The rename is only durable once the folder's entry is on disk too.
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_file_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file in the same folder."""
    import uuid

    target = Path(path)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    write_local_atomically(str(target.parent), str(tmp), str(target), data)
