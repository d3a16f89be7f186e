"""The DuckDB connection the log stores query through: one in-process database for them all."""

from __future__ import annotations

import threading

import duckdb

_CONNECTION_LOCK = threading.Lock()
_SHARED: duckdb.DuckDBPyConnection | None = None


def shared_connection() -> duckdb.DuckDBPyConnection:
    """One in-process DuckDB database for every store; each query runs on its own cursor."""
    global _SHARED
    with _CONNECTION_LOCK:
        if _SHARED is None:
            _SHARED = new_connection()
        return _SHARED


def new_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    # Aware timestamps (feature columns) must come back in UTC, not the machine's zone.
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    return con
