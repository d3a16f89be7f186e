"""The exceptions retrainer raises.

Every error derives from :class:`RetrainerError` and from the builtin it resembles, so callers
can catch either. Messages say what is wrong, what was expected, what was received and, where
it helps, how to fix it. Only the interfaces (CLI, server) translate errors into exit codes or
HTTP statuses.
"""

from __future__ import annotations

import errno as _errno

_EDQUOT = getattr(_errno, "EDQUOT", _errno.ENOSPC)  # disk quota exceeded (not on Windows)


class RetrainerError(Exception):
    """Root of every error raised by retrainer."""


class ConfigError(RetrainerError, ValueError):
    """A configuration file or value is invalid.

    ``problems`` holds one line per problem (key path, bad value, what is expected).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class DataError(RetrainerError, ValueError):
    """The data loaded for a run cannot be used (missing column, NaN target, empty window...)."""


class SourceError(RetrainerError, OSError):
    """A data source could not be read."""


class StorageError(RetrainerError, OSError):
    """A store (metadata database, artifacts, logs) could not be opened, reached or written.

    :meth:`from_os_error` turns a permission or disk error into one line naming the path and
    what to do; the error it came from is the ``__cause__``.
    """

    @classmethod
    def from_os_error(
        cls, exc: BaseException, *, doing: str, path: str, setting: str | None = None
    ) -> StorageError:
        """The error for ``exc`` (an ``OSError``, or a database driver's error whose message
        says why) met while ``doing`` something to ``path``; ``setting``: the configuration
        key that chooses the place.

        Examples
        --------
        >>> import errno
        >>> exc = PermissionError(errno.EACCES, "Permission denied", "/srv/a/x.tmp")
        >>> str(StorageError.from_os_error(exc, doing="cannot write", path="/srv/a/x"))
        'cannot write /srv/a/x: Permission denied; the user running retrainer may not write there: give it write access (chmod, chown), or use another place'
        >>> full = OSError(errno.ENOSPC, "No space left on device")
        >>> str(StorageError.from_os_error(full, doing="cannot write", path="/a", setting="x"))
        'cannot write /a: No space left on device; the disk is full: free space on it, or point x at another place'
        """  # noqa: E501
        other = f"point {setting} at another place" if setting else "use another place"
        reason, hint = _os_error_reason(exc), f"check the path and the rights on it, or {other}"
        code = getattr(exc, "errno", None)
        low = reason.lower()
        if code == _errno.EROFS:
            hint = f"the file system is read-only: remount it read-write, or {other}"
        elif code in (_errno.EACCES, _errno.EPERM) or "readonly" in low or "read-only" in low:
            hint = (
                "the user running retrainer may not write there: give it write access "
                f"(chmod, chown), or {other}"
            )
        elif code in (_errno.ENOSPC, _EDQUOT, _errno.EFBIG) or "is full" in low:
            hint = f"the disk is full: free space on it, or {other}"
        elif code in (_errno.ENOTDIR, _errno.EISDIR, _errno.EEXIST):
            hint = (
                "a file stands where a folder is expected (or a folder where a file is): "
                f"move it away, or {other}"
            )
        elif "unable to open" in low:
            hint = (
                "check that its folder exists and that the user running retrainer may read "
                f"and write the file and the folder, or {other}"
            )
        elif code == _errno.EIO or "i/o error" in low:
            hint = "the disk failed: check it (dmesg, its free space), then retry"
        return cls(f"{doing} {path}: {reason}; {hint}")


STORAGE_ERRNOS = frozenset(
    {
        _errno.EACCES,
        _errno.EPERM,
        _errno.ENOSPC,
        _EDQUOT,
        _errno.EFBIG,
        _errno.EROFS,
        _errno.ENOTDIR,
        _errno.EISDIR,
        _errno.EEXIST,
        _errno.EIO,
    }
)
"""The ``errno`` values of permission and disk errors: an operator's to fix, not a bug."""

STORAGE_MESSAGES = (
    "readonly database",
    "unable to open database file",
    "database or disk is full",
    "disk i/o error",
)
"""What SQLite's errors say (lower case) when its file cannot be written or opened."""


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a permission or disk error (an operator's to fix, not a bug): an
    ``OSError`` with one of :data:`STORAGE_ERRNOS`, or a database error (SQLite's, or
    SQLAlchemy's around it) saying its file cannot be written or opened.

    Examples
    --------
    >>> import errno, sqlite3
    >>> is_storage_error(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_storage_error(sqlite3.OperationalError("attempt to write a readonly database"))
    True
    >>> is_storage_error(sqlite3.OperationalError("no such table: runs"))
    False
    """
    if isinstance(exc, OSError) and not isinstance(exc, RetrainerError):
        return exc.errno in STORAGE_ERRNOS
    modules = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    if not modules & {"sqlite3", "sqlalchemy"}:
        return False
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(message in text for message in STORAGE_MESSAGES)


def _os_error_reason(exc: BaseException) -> str:
    """The short reason of an OS or driver error: ``strerror``, else the first line."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class ModelNotFoundError(RetrainerError, LookupError):
    """A model version, alias or pipeline does not exist."""


class TokenNotFoundError(RetrainerError, LookupError):
    """An API token id that the metadata store does not hold (``retrainer token revoke``)."""


class ArtifactIntegrityError(RetrainerError, ValueError):
    """An artifact's content does not match its recorded sha256 (tampered or truncated)."""


class UntrustedArtifactError(RetrainerError, ValueError):
    """A serialized model contains types that are not trusted for loading."""


class SchemaVersionError(RetrainerError, RuntimeError):
    """The metadata database schema is out of date or newer than this version of retrainer."""


class ConcurrencyError(RetrainerError, RuntimeError):
    """A write lost a race with another process (e.g. the database stayed locked)."""


class TrainingError(RetrainerError, RuntimeError):
    """The user's training code raised, or produced something that is not a model."""


class NotifierError(RetrainerError, OSError):
    """A notifier could not deliver an alert (refused, unreachable, timed out...).

    Examples
    --------
    >>> issubclass(NotifierError, OSError)
    True
    """
