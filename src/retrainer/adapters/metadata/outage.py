"""Tell a metadata database that is away for a while from a broken request.

A daemon outlives its database's outages (a PostgreSQL restart, a SQLite file locked longer
than the busy timeout): it asks :func:`unavailable` whether an error means "try again later",
backs off, and ticks again. Anything else (a bug, a bad schema) still stops it.
"""

from __future__ import annotations

import sys

from retrainer.errors import ConcurrencyError

_SQLITE_TRANSIENT = ("locked", "unable to open database file", "disk I/O error")


def unavailable(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` says the metadata database cannot be reached or stays
    locked (it may come back), else None.

    Examples
    --------
    >>> unavailable(ConcurrencyError("The metadata database x.db stayed locked for more than 1 s"))
    'The metadata database x.db stayed locked for more than 1 s'
    >>> unavailable(ValueError("a bug")) is None
    True
    """
    if isinstance(exc, ConcurrencyError) and "stayed locked" in str(exc):
        return str(exc).splitlines()[0]
    sa = sys.modules.get("sqlalchemy")  # only a SQL store raises these, and it imported it
    if sa is not None and isinstance(
        exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError)
    ):
        orig = getattr(exc, "orig", None) or exc
        text = " ".join(str(orig).split())
        if type(orig).__module__.startswith("sqlite3") and not any(
            m in text for m in _SQLITE_TRANSIENT
        ):
            return None  # no such table, a read-only file...: waiting will not mend it
        return f"{type(orig).__name__}: {text[:200]}"
    if sa is not None and isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return f"connection lost: {' '.join(str(exc.orig).split())[:200]}"
    return None
