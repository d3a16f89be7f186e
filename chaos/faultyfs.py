"""``faulty://``: the local filesystem with injected storage faults, for the artifact store.

The chaos campaign points a CLI subprocess's artifact store at ``faulty:///<folder>``
(``RETRAINER_ARTIFACTS_URL``) and picks the fault with ``CHAOS_FS_FAULT``:

``eio``      every write fails with EIO before a byte is written;
``enospc``   a write puts part of the bytes on disk, then fails with ENOSPC (disk full);
``partial``  a write puts part of the bytes on disk, then fails with EIO (a dropped link);
``eacces``   every write and folder creation fails with a PermissionError;
``rename``   the bytes are written, the move into place fails (EIO);
``slow``     reads and writes sleep ``CHAOS_FS_DELAY`` seconds (default 1.5) first.

It is a wrapper, not a ``LocalFileSystem`` subclass: the artifact store takes a fast path of
its own (``os.replace``) on a local filesystem, which would bypass the faults.

Examples
--------
>>> import fsspec, tempfile
>>> register()
>>> with tempfile.TemporaryDirectory() as tmp:
...     fs, root = fsspec.core.url_to_fs(f"faulty://{tmp}")
...     fs.pipe_file(f"{root}/a", b"abc")
...     fs.cat_file(f"{root}/a")
b'abc'
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

FAULT_ENV = "CHAOS_FS_FAULT"
DELAY_ENV = "CHAOS_FS_DELAY"
FAULT_KINDS = ("eio", "enospc", "partial", "eacces", "rename", "slow")


def _fault() -> str:
    return os.environ.get(FAULT_ENV, "")


def _slow() -> None:
    if _fault() == "slow":
        time.sleep(float(os.environ.get(DELAY_ENV, "1.5")))


class FaultyFileSystem(AbstractFileSystem):
    """The local filesystem behind ``faulty://``, failing as ``CHAOS_FS_FAULT`` says."""

    protocol = "faulty"
    root_marker = "/"
    cachable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.local = LocalFileSystem()

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        path = path.removeprefix("faulty://")
        return "/" + path.lstrip("/") if path else "/"

    def unstrip_protocol(self, name: str) -> str:
        return "faulty://" + self._strip_protocol(name)

    # --- reads ---------------------------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return dict(self.local.info(self._strip_protocol(path), **kwargs))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        return self.local.ls(self._strip_protocol(path), detail=detail, **kwargs)

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kwargs: Any) -> bytes:
        _slow()
        return bytes(self.local.cat_file(self._strip_protocol(path), start=start, end=end))

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" not in mode:
            self._before_write(path)
        return self.local._open(self._strip_protocol(path), mode=mode, **kwargs)

    # --- writes --------------------------------------------------------------------------
    def _before_write(self, path: str) -> None:
        fault = _fault()
        if fault == "eio":
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        if fault == "eacces":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        _slow()

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        if _fault() == "eacces":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        self.local.makedirs(self._strip_protocol(path), exist_ok=exist_ok)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.makedirs(path, exist_ok=True)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self._before_write(path)
        local = self._strip_protocol(path)
        fault = _fault()
        if fault in ("enospc", "partial"):
            Path(local).write_bytes(value[: len(value) // 2])
            code = errno.ENOSPC if fault == "enospc" else errno.EIO
            raise OSError(code, os.strerror(code), path)
        Path(local).write_bytes(value)

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        if _fault() == "rename":
            raise OSError(errno.EIO, os.strerror(errno.EIO), path2)
        Path(self._strip_protocol(path1)).replace(self._strip_protocol(path2))

    def rm_file(self, path: str) -> None:
        self.local.rm_file(self._strip_protocol(path))

    def _rm(self, path: str) -> None:
        self.rm_file(path)


def register() -> None:
    """Make ``faulty://`` known to fsspec in this process (idempotent)."""
    fsspec.register_implementation("faulty", FaultyFileSystem, clobber=True)
