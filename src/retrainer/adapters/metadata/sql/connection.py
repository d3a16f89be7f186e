"""Database URLs, engines and transactions: SQLite set up for several writing processes.

SQLite gets a WAL journal (readers never block the writer), a busy timeout, foreign keys on,
and ``BEGIN IMMEDIATE`` for every write transaction, so that a writer takes the write lock
before it reads what it will change (a deferred transaction that upgrades to a write can fail
at once with "database is locked", whatever the timeout).

JSON columns never hold NaN or infinities (PostgreSQL's json type refuses them): the shared
normalization (``_records.json_value``) already turned every non-finite float into null;
refusing NaN here makes a slip fail on SQLite too, as PostgreSQL's json type would. Reading
the NaN tokens a SQLite file written before revision 0002 may hold as null keeps old rows
under the same rule as new ones.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from retrainer.errors import ConcurrencyError, ConfigError, StorageError, is_storage_error
from retrainer.extras import missing_extra

WRITE = "retrainer_write"  # connection execution option: this transaction writes

_json_serializer = functools.partial(json.dumps, allow_nan=False)
# one decoder for every value: json.loads(..., parse_constant=...) builds a new one per call,
# a quarter of the decoding time of a listing
_json_decoder = json.JSONDecoder(parse_constant=lambda token: None)


def _json_deserializer(text: str | bytes) -> Any:
    # psycopg hands the driver's bytes over; json.loads would take those too
    return _json_decoder.decode(text if isinstance(text, str) else bytes(text).decode("utf-8"))


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"Metadata store URL {url!r} is not a database URL. Expected 'memory://', "
            "'sqlite:///path/to/retrainer.db' or 'postgresql+psycopg://user@host/dbname'."
        ) from None


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def is_sqlite_memory(url: URL) -> bool:
    return is_sqlite(url) and url.database in (None, "", ":memory:")


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL (``None`` for in-memory or ``file:`` URI databases)."""
    if not is_sqlite(url) or is_sqlite_memory(url) or url.database is None:
        return None
    if url.database.startswith("file:"):
        return None
    return Path(url.database)


def database_label(url: URL) -> str:
    path = sqlite_path(url)
    if path is not None:
        return str(path.resolve())
    return url.render_as_string(hide_password=True)


def _on_sqlite_connect(busy_timeout_s: float, wal: bool) -> Any:
    def connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take transaction control away from the sqlite3 module: it would BEGIN (DEFERRED)
        # itself, only before DML; _on_sqlite_begin emits the BEGIN instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                # The journal mode is stored in the file: switch once, not on every connect.
                mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    return connect


def _on_sqlite_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock now (waiting up to busy_timeout); a DEFERRED transaction
    # that reads, then writes, fails at once if another writer got in between.
    immediate = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: URL, busy_timeout_s: float) -> sa.Engine:
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            if is_sqlite_memory(url):
                # One connection shared by every thread (the store serializes with a lock):
                # each new connection to ":memory:" would be a different, empty database.
                engine = sa.create_engine(
                    url,
                    poolclass=sa.StaticPool,
                    connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
                    json_serializer=_json_serializer,
                    json_deserializer=_json_deserializer,
                )
            else:
                engine = sa.create_engine(
                    url,
                    connect_args={"timeout": busy_timeout_s},
                    json_serializer=_json_serializer,
                    json_deserializer=_json_deserializer,
                )
            sa.event.listen(
                engine,
                "connect",
                _on_sqlite_connect(busy_timeout_s, wal=not is_sqlite_memory(url)),
            )
            sa.event.listen(engine, "begin", _on_sqlite_begin)
            return engine
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            json_serializer=_json_serializer,
            json_deserializer=_json_deserializer,
        )
    except ModuleNotFoundError as exc:
        if backend == "postgresql":
            raise missing_extra(
                "postgres", exc.name or "psycopg", f"A {url.drivername} URL"
            ) from None
        raise ConfigError(
            f"SQLMetadataStore needs the {exc.name!r} package for {url.drivername} URLs."
        ) from exc


def _is_locked(exc: sa.exc.OperationalError) -> bool:
    return "database is locked" in str(exc.orig) or "database table is locked" in str(exc.orig)


@contextlib.contextmanager
def transaction(
    engine: sa.Engine, label: str, busy_timeout_s: float, *, write: bool
) -> Iterator[sa.Connection]:
    try:
        with engine.connect() as conn:
            if write:
                conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn
    except sa.exc.OperationalError as exc:
        if engine.dialect.name == "sqlite" and _is_locked(exc):
            raise ConcurrencyError(
                f"The metadata database {label} stayed locked for more than {busy_timeout_s:g} s:"
                " another process holds a long write transaction on it. Retry, or raise the "
                "store's busy_timeout_s."
            ) from exc
        if engine.dialect.name == "sqlite" and is_storage_error(exc):
            raise StorageError.from_os_error(
                exc,
                doing=f"cannot {'write' if write else 'read'} the metadata database",
                path=label,
                setting="storage.db_url (or RETRAINER_DB_URL)",
            ) from exc
        raise


def make_parent_folder(url: URL) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
