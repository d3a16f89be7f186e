"""The artifact store port (content-addressed blobs) and its adapters.

A blob is stored once under the hex sha256 of its bytes, at ``<root>/sha256/<ab>/<abcd...>``.
``FsspecArtifactStore`` works on any fsspec filesystem (local folder, S3, GCS...),
``LocalArtifactStore`` is the same store on a local folder, and ``InMemoryArtifactStore`` keeps
the blobs in fsspec's in-process memory filesystem for tests, doctests and the backtest.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import fsspec.core
from fsspec.implementations.local import LocalFileSystem

from retrainer.adapters._atomic import write_local_atomically
from retrainer.adapters.locations import OBJECT_STORE_PROTOCOLS, filesystem
from retrainer.errors import ArtifactIntegrityError, ConfigError, ModelNotFoundError

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "FsspecArtifactStore",
    "InMemoryArtifactStore",
    "LocalArtifactStore",
    "StoredFile",
    "integrity_problem",
    "open_artifact_store",
    "verify_sha256",
]

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Temporary names start with a dot and end in ".tmp", so they can never be taken for a blob
# (a blob's name is exactly 64 hex digits) and readers, which only open exact blob paths,
# never see a half-written file.
_TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"\.[0-9a-f]{64}\.[0-9a-f]{1,64}\.tmp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactRef:
    """Where a stored blob is and what it must hash to."""

    sha256: str
    size: int
    url: str


class ArtifactStore(Protocol):
    """Content-addressed, write-once blob storage.

    Contract: ``put`` is atomic (a reader sees the whole blob or none) and idempotent (the same
    bytes give the same ref); ``get`` verifies the sha256 and raises ``ArtifactIntegrityError``
    on a mismatch (tampered or truncated) and ``ModelNotFoundError`` when absent.
    """

    def put(self, data: bytes) -> ArtifactRef: ...

    def get(self, sha256: str, *, size: int | None = None) -> bytes:
        """The blob's bytes; with ``size`` (the recorded one) a blob of another size is refused."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def url(self, sha256: str) -> str:
        """An fsspec URL another process can read the blob from."""
        ...

    def verify(self, sha256: str, size: int) -> None:
        """Read the blob back and check its size and sha256.

        Raises ``ArtifactIntegrityError`` with one line saying what is wrong: the blob is
        missing, its size differs, or its sha256 differs.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """A file in an artifact store's folder, as ``retrainer gc`` sees it.

    ``sha256`` is the blob's key, or ``None`` for the temporary file of a ``put`` that was
    interrupted (it never became a blob). ``modified`` is its last write, on the wall clock.
    """

    url: str
    sha256: str | None
    size: int
    modified: datetime


def _check_sha256(sha256: str) -> str:
    """Return ``sha256`` in lower case, or raise if it is not 64 hex digits.

    The key becomes part of a path, so anything else (``../x``, a short prefix) is refused.
    """
    key = sha256.lower() if isinstance(sha256, str) else ""
    if not _SHA256_HEX.fullmatch(key):
        raise ModelNotFoundError(
            f"No artifact can have the key {sha256!r}: an artifact key is a sha256 written as "
            "64 hexadecimal digits."
        )
    return key


class FsspecArtifactStore:
    """Content-addressed blob store on any fsspec filesystem.

    Blobs live at ``<url>/sha256/<first 2 hex digits>/<64 hex digits>``. ``put`` writes each
    blob to a temporary name in the same folder and moves it into place, so the final path
    holds the whole blob or nothing; on a local disk the temporary file is flushed and fsynced
    before ``os.replace``. On object stores (S3, GCS, Azure) a blob is one PUT, atomic there,
    straight to its final key. ``get`` checks the sha256 of what it reads.

    Parameters
    ----------
    url
        Root of the store: an fsspec URL (``s3://bucket/artifacts``, ``memory://x``) or a local
        path. Relative local paths are resolved against the current directory once, here.

    Examples
    --------
    >>> store = FsspecArtifactStore("memory://docs/fsspec-store")
    >>> ref = store.put(b"model bytes")
    >>> ref.sha256[:12], ref.size
    ('9cb7487000bc', 11)
    >>> ref.url.endswith("/sha256/9c/" + ref.sha256)
    True
    >>> store.get(ref.sha256)
    b'model bytes'
    """

    def __init__(self, url: str) -> None:
        protocol, _ = fsspec.core.split_protocol(url)
        if protocol is None:
            url = str(Path(url).expanduser().resolve())
        fs, root = filesystem(url)
        self._fs: Any = fs
        self._root: str = root.rstrip("/") or "/"
        self._local = isinstance(fs, LocalFileSystem)
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        # one PUT is atomic there: the object is whole or absent, so no temporary name (and no
        # rename, which object stores emulate by copy + delete)
        self._object_store = bool(protocols & OBJECT_STORE_PROTOCOLS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fs.unstrip_protocol(self._root)!r})"

    def _path(self, sha256: str) -> str:
        key = _check_sha256(sha256)
        return f"{self._root.rstrip('/')}/sha256/{key[:2]}/{key}"

    def put(self, data: bytes) -> ArtifactRef:
        """Store ``data`` under its sha256 and return where it is.

        Idempotent: the same bytes give the same ref. A blob already at the final path is
        marked as just written (``retrainer gc`` goes by age): on a local disk its time is
        set to now, elsewhere it is written again. Bytes are written to a temporary file in
        the same folder, which is then moved into place, so a crash leaves either the whole
        blob or no blob.

        Examples
        --------
        >>> store = InMemoryArtifactStore()
        >>> store.put(b"abc") == store.put(b"abc")
        True
        """
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        ref = ArtifactRef(sha256=sha, size=len(data), url=self._fs.unstrip_protocol(path))
        if self._has_complete_blob(path, len(data)):
            if not self._refresh(path):
                try:
                    self._write(path, sha, data)
                except OSError:
                    if not self._has_complete_blob(path, len(data)):
                        raise
                    # a read-only store: the whole blob is there, only its age stays
            return ref
        self._write(path, sha, data)
        return ref

    def _write(self, path: str, sha: str, data: bytes) -> None:
        """Write ``data`` to a temporary file beside ``path``, then move it into place."""
        folder = path.rsplit("/", 1)[0]
        tmp = f"{folder}/.{sha}.{uuid.uuid4().hex}{_TMP_SUFFIX}"
        if self._local:
            write_local_atomically(folder, tmp, path, data, setting="storage.artifacts_url")
        elif self._object_store:
            self._fs.pipe_file(path, data)
        else:
            self._fs.makedirs(folder, exist_ok=True)
            try:
                self._fs.pipe_file(tmp, data)
                self._fs.mv(tmp, path)
            finally:
                if self._fs.exists(tmp):
                    self._fs.rm_file(tmp)

    def _has_complete_blob(self, path: str, size: int) -> bool:
        try:
            return bool(self._fs.size(path) == size)
        except (FileNotFoundError, NotADirectoryError):  # the write then says what is wrong
            return False

    def _refresh(self, path: str) -> bool:
        """Mark an existing blob as just written; False if only a rewrite can.

        ``retrainer gc`` spares blobs younger than its grace period, and a run that stores
        bytes already present is about to reference that old blob: its age must restart.
        """
        if not self._local:
            # fsspec's touch(truncate=False) is missing on most filesystems (memory://, s3://)
            # and creates an empty file where the blob was just removed: write it again
            return False
        try:
            os.utime(path)
        except OSError:
            return False  # removed meanwhile, or not ours to touch: write it again
        return True

    def get(self, sha256: str, *, size: int | None = None) -> bytes:
        """Read a blob and check that it hashes to ``sha256``.

        Parameters
        ----------
        sha256
            The blob's key (64 hex digits).
        size
            The size recorded with the blob (``ArtifactRef.size``), if known; a blob of another
            size is refused too.

        Raises
        ------
        ModelNotFoundError
            No blob is stored under ``sha256``.
        ArtifactIntegrityError
            The stored bytes do not hash to ``sha256`` (tampered or truncated).

        Examples
        --------
        >>> store = InMemoryArtifactStore()
        >>> store.get(store.put(b"abc").sha256)
        b'abc'
        """
        path = self._path(sha256)
        url = self._fs.unstrip_protocol(path)
        try:
            data: bytes = self._fs.cat_file(path)
        except FileNotFoundError:
            raise ModelNotFoundError(
                f"No artifact with sha256 {sha256.lower()} in the store: {url} does not exist."
            ) from None
        verify_sha256(data, expected_sha256=sha256, where=url, expected_size=size)
        return data

    def verify(self, sha256: str, size: int) -> None:
        """Read the blob back and check its size, then its sha256.

        Raises
        ------
        ArtifactIntegrityError
            One line naming the blob's URL and what is wrong: missing, size differs, sha256
            differs.

        Examples
        --------
        >>> store = InMemoryArtifactStore("memory://docs/verify")
        >>> ref = store.put(b"abc")
        >>> store.verify(ref.sha256, ref.size)
        >>> try:
        ...     store.verify(ref.sha256, 4)
        ... except ArtifactIntegrityError as exc:
        ...     print(str(exc).split(": ", 1)[1])
        size differs (expected 4 bytes, found 3)
        """
        path = self._path(sha256)
        url = self._fs.unstrip_protocol(path)
        try:
            data: bytes = self._fs.cat_file(path)
        except FileNotFoundError:
            raise ArtifactIntegrityError(f"artifact {url}: missing (no such file)") from None
        problem = integrity_problem(data, expected_sha256=sha256, expected_size=size)
        if problem is not None:
            raise ArtifactIntegrityError(f"artifact {url}: {problem}")

    def files(self) -> list[StoredFile]:
        """The blobs and leftover temporary files in the store, oldest first.

        Anything else in the folder is not the store's and is not listed.

        Examples
        --------
        >>> store = InMemoryArtifactStore("memory://docs/files")
        >>> ref = store.put(b"abc")
        >>> [(f.sha256 == ref.sha256, f.size) for f in store.files()]
        [(True, 3)]
        """
        top = f"{self._root.rstrip('/')}/sha256"
        try:
            found: dict[str, Any] = self._fs.find(top, detail=True)
        except FileNotFoundError:
            return []
        out = [f for path, info in found.items() if (f := self._stored(path, info)) is not None]
        return sorted(out, key=lambda f: (f.modified, f.url))

    def stat(self, url: str) -> StoredFile | None:
        """The file at ``url`` (one of :meth:`files`) as it is now, or None if it is gone.

        Examples
        --------
        >>> store = InMemoryArtifactStore("memory://docs/stat")
        >>> ref = store.put(b"abc")
        >>> store.stat(ref.url).size, store.stat(store.url("0" * 64))
        (3, None)
        """
        path = self._inside(url)
        try:
            return self._stored(path, self._fs.info(path))
        except FileNotFoundError:
            return None

    def _stored(self, path: str, info: dict[str, Any]) -> StoredFile | None:
        """``path`` as a StoredFile, or None if it is not a blob or temporary file of ours."""
        top = f"{self._root.rstrip('/')}/sha256"
        folder, _, name = path.rstrip("/").rpartition("/")
        if info.get("type") not in (None, "file") or folder.rpartition("/")[0] != top:
            return None
        if _SHA256_HEX.fullmatch(name) and folder.endswith("/" + name[:2]):
            sha: str | None = name
        elif _TMP_NAME.fullmatch(name):
            sha = None
        else:
            return None
        try:
            modified = self._modified(path, info)
        except FileNotFoundError:
            return None  # removed while listing
        return StoredFile(
            url=self._fs.unstrip_protocol(path),
            sha256=sha,
            size=int(info.get("size") or 0),
            modified=modified,
        )

    def _inside(self, url: str) -> str:
        """The path of ``url``, refused unless it lies in this store's blob folders."""
        path: str = self._fs._strip_protocol(url)
        if not path.startswith(f"{self._root.rstrip('/')}/sha256/") or ".." in path.split("/"):
            raise ValueError(f"{url} is not a file of the artifact store {self!r}")
        return path

    def _modified(self, path: str, info: dict[str, Any]) -> datetime:
        """When the file was last written, as an aware UTC datetime."""
        stamp: Any = info.get("mtime")
        if stamp is None:
            stamp = info.get("LastModified") or info.get("last_modified")
        if stamp is None:
            stamp = self._fs.modified(path)
        if isinstance(stamp, int | float):
            return datetime.fromtimestamp(stamp, tz=UTC)
        if isinstance(stamp, str):
            stamp = datetime.fromisoformat(stamp)
        if not isinstance(stamp, datetime):
            raise TypeError(f"cannot tell when {path} was written: {stamp!r}")
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)

    def remove(self, url: str) -> bool:
        """Delete one file of :meth:`files`; False if it is already gone (idempotent).

        Examples
        --------
        >>> store = InMemoryArtifactStore("memory://docs/remove")
        >>> ref = store.put(b"abc")
        >>> store.remove(ref.url), store.remove(ref.url), store.exists(ref.sha256)
        (True, False, False)
        """
        path = self._inside(url)
        if self._object_store and not self._fs.exists(path):
            return False  # S3's DELETE succeeds on a missing key: ask first
        try:
            self._fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def exists(self, sha256: str) -> bool:
        """Whether a blob is stored under ``sha256`` (its content is not checked).

        Examples
        --------
        >>> store = InMemoryArtifactStore()
        >>> store.exists(store.put(b"abc").sha256), store.exists("0" * 64)
        (True, False)
        """
        return bool(self._fs.exists(self._path(sha256)))

    def url(self, sha256: str) -> str:
        """The fsspec URL of the blob stored (or to be stored) under ``sha256``.

        The URL can be opened with ``fsspec.open`` from another process, except for
        ``memory://`` URLs, which only exist inside the process that wrote them.

        Examples
        --------
        >>> store = FsspecArtifactStore("memory://docs/url")
        >>> store.url("ab" * 32)
        'memory:///docs/url/sha256/ab/abababababababababababababababababababababababababababababababab'
        """
        return str(self._fs.unstrip_protocol(self._path(sha256)))


def verify_sha256(
    data: bytes, *, expected_sha256: str, where: str, expected_size: int | None = None
) -> None:
    """Raise ``ArtifactIntegrityError`` unless ``data`` hashes to ``expected_sha256``.

    Parameters
    ----------
    data
        The bytes read.
    expected_sha256
        The sha256 recorded for them.
    where
        The path or URL they were read from, for the message.
    expected_size
        The size recorded for them, if known, for the message.

    Examples
    --------
    >>> verify_sha256(b"abc", expected_sha256=hashlib.sha256(b"abc").hexdigest(), where="x")
    >>> verify_sha256(b"ab", expected_sha256=hashlib.sha256(b"abc").hexdigest(), where="x")
    Traceback (most recent call last):
    ...
    retrainer.errors.ArtifactIntegrityError: Artifact x failed its integrity check: ...
    """
    problem = integrity_problem(data, expected_sha256=expected_sha256, expected_size=expected_size)
    if problem is None:
        return
    raise ArtifactIntegrityError(
        f"Artifact {where} failed its integrity check: {problem}. The file was tampered with "
        "or truncated and must not be loaded; restore it from a backup or retrain the model."
    )


def integrity_problem(
    data: bytes, *, expected_sha256: str, expected_size: int | None = None
) -> str | None:
    """What is wrong with ``data`` against its recorded size and sha256, or None.

    The size is compared first: it says "bytes were added or cut" in plain words.

    Examples
    --------
    >>> sha = hashlib.sha256(b"abc").hexdigest()
    >>> integrity_problem(b"abc", expected_sha256=sha, expected_size=3) is None
    True
    >>> integrity_problem(b"abcd", expected_sha256=sha, expected_size=3)
    'size differs (expected 3 bytes, found 4)'
    >>> integrity_problem(b"abd", expected_sha256=sha, expected_size=3)[:47]
    'sha256 differs (expected ba7816bf8f01cfea414140'
    """
    if expected_size is not None and len(data) != expected_size:
        return f"size differs (expected {expected_size} bytes, found {len(data)})"
    actual = hashlib.sha256(data).hexdigest()
    if actual == expected_sha256.lower():
        return None
    return (
        f"sha256 differs (expected {expected_sha256.lower()}, found {actual} over "
        f"{len(data)} bytes)"
    )


class LocalArtifactStore(FsspecArtifactStore):
    """Content-addressed blob store in a local folder (the embedded default).

    Parameters
    ----------
    path
        The folder; created on the first ``put``. A relative path is resolved against the
        current directory when the store is created.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     store = LocalArtifactStore(folder)
    ...     ref = store.put(b"model bytes")
    ...     print(ref.url.startswith("file://"), store.get(ref.sha256))
    True b'model bytes'
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        protocol, stripped = fsspec.core.split_protocol(os.fspath(path))
        if protocol not in (None, "file", "local"):
            raise ConfigError(
                f"LocalArtifactStore needs a local folder. Got {os.fspath(path)!r}; use "
                "FsspecArtifactStore or open_artifact_store for other filesystems."
            )
        super().__init__(str(Path(stripped).expanduser().resolve()))


class InMemoryArtifactStore(FsspecArtifactStore):
    """Content-addressed blob store in fsspec's in-process memory filesystem.

    It has the same contract as the other stores, and because the blobs live in fsspec's
    memory filesystem, any store opened on the same ``memory://`` root in the same process
    (and ``fsspec.open`` on a blob's ``url``) sees them. The blobs disappear with the process.

    Parameters
    ----------
    url
        A ``memory://`` root. By default each store gets a fresh root of its own, so stores
        made by different tests do not share blobs.

    Examples
    --------
    >>> store = InMemoryArtifactStore("memory://docs/in-memory")
    >>> ref = store.put(b"abc")
    >>> InMemoryArtifactStore("memory://docs/in-memory").get(ref.sha256)
    b'abc'
    >>> with fsspec.open(ref.url, "rb") as f:
    ...     f.read()
    b'abc'
    """

    def __init__(self, url: str | None = None) -> None:
        if url is None:
            url = f"memory://retrainer-artifacts/{uuid.uuid4().hex}"
        if fsspec.core.split_protocol(url)[0] != "memory":
            raise ConfigError(f"InMemoryArtifactStore needs a memory:// URL. Got {url!r}.")
        super().__init__(url)


class DictArtifactStore:
    """Content-addressed blobs in a dict of this store: nothing shared, nothing kept.

    For short-lived in-process work (a backtest's policy replay): the fsspec memory store is
    shared by the whole process and its lookups grow with every blob it holds.

    Examples
    --------
    >>> store = DictArtifactStore()
    >>> ref = store.put(b"abc")
    >>> store.get(ref.sha256), store.exists(ref.sha256)
    (b'abc', True)
    """

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._root = f"dict://{uuid.uuid4().hex[:12]}"

    def put(self, data: bytes) -> ArtifactRef:
        sha = hashlib.sha256(data).hexdigest()
        self._blobs.setdefault(sha, bytes(data))
        return ArtifactRef(sha256=sha, size=len(data), url=self.url(sha))

    def get(self, sha256: str, *, size: int | None = None) -> bytes:
        key = _check_sha256(sha256)
        if key not in self._blobs:
            raise ModelNotFoundError(f"no artifact {key} in {self._root}")
        data = self._blobs[key]
        if size is not None and len(data) != size:  # pragma: no cover - bytes are immutable
            raise ArtifactIntegrityError(f"artifact {key} in {self._root} is not {size} bytes")
        if hashlib.sha256(data).hexdigest() != key:  # pragma: no cover - bytes are immutable
            raise ArtifactIntegrityError(f"artifact {key} in {self._root} is corrupted")
        return data

    def exists(self, sha256: str) -> bool:
        return _check_sha256(sha256) in self._blobs

    def verify(self, sha256: str, size: int) -> None:
        key = _check_sha256(sha256)
        if key not in self._blobs:
            raise ArtifactIntegrityError(f"artifact {self.url(key)}: missing (no such blob)")
        problem = integrity_problem(self._blobs[key], expected_sha256=key, expected_size=size)
        if problem is not None:  # pragma: no cover - bytes are immutable
            raise ArtifactIntegrityError(f"artifact {self.url(key)}: {problem}")

    def url(self, sha256: str) -> str:
        return f"{self._root}/{_check_sha256(sha256)}"


def open_artifact_store(url: str) -> ArtifactStore:
    """Open the artifact store at ``url``.

    ``memory://...`` gives an :class:`InMemoryArtifactStore`, a local path or ``file://`` URL a
    :class:`LocalArtifactStore`, and any other fsspec URL (``s3://``, ``gs://``...) an
    :class:`FsspecArtifactStore` (which needs the matching fsspec backend, e.g. ``s3fs``).

    Examples
    --------
    >>> open_artifact_store("memory://docs/open")
    InMemoryArtifactStore('memory:///docs/open')
    >>> type(open_artifact_store("artifacts")).__name__
    'LocalArtifactStore'
    """
    protocol, _ = fsspec.core.split_protocol(url)
    if protocol == "memory":
        return InMemoryArtifactStore(url)
    if protocol in (None, "file", "local"):
        return LocalArtifactStore(url)
    return FsspecArtifactStore(url)
