"""The SQL metadata store: SQLite on one machine, PostgreSQL at scale, one code path.

SQLite is set up for several processes writing at once: WAL journal (readers never block the
writer), a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for every write transaction
so that a writer takes the write lock before it reads what it will change (a deferred
transaction that upgrades to a write can fail at once with "database is locked", whatever the
timeout). On PostgreSQL the same statements run; writers that must serialize on a pipeline
(version numbers, alias moves, state compare-and-sets) lock its row with ``SELECT ... FOR
UPDATE``, and ``update_run(expected_epoch=...)`` locks the run's row.

JSON columns never hold NaN or infinities (PostgreSQL's json type refuses them): the shared
normalization stores them as null, and the engine's serializer refuses any that slip through.

The schema is owned by the Alembic migrations shipped in ``migrations/``; opening a store
checks the database's revision and upgrades an out-of-date schema (or refuses to, see
:class:`SQLMetadataStore`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from retrainer.adapters.metadata.memory import (
    InMemoryMetadataStore,
    alias_conflict,
    check_expected_epoch,
    check_snapshot_pipeline,
    check_state_key,
    epoch_conflict,
    evidence_from_json,
    evidence_to_json,
    json_dict,
    metrics_from_json,
    metrics_to_json,
    normalized_event,
    normalized_monitor_record,
    normalized_run,
    normalized_snapshot,
    normalized_version,
    optional_utc,
    state_conflict,
    unknown_pipeline,
    unknown_version,
)
from retrainer.adapters.metadata.protocol import ANY, MetadataStore
from retrainer.core.clock import as_utc
from retrainer.core.types import (
    AliasMove,
    CodeVersion,
    Event,
    ModelVersion,
    MonitorRecord,
    PipelineRecord,
    Run,
    Snapshot,
    Verdict,
)
from retrainer.errors import (
    ConcurrencyError,
    ConfigError,
    ModelNotFoundError,
    SchemaVersionError,
    StorageError,
)

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATIONS_DIR",
    "SCHEMA_HEAD",
    "SQLMetadataStore",
    "open_metadata_store",
    "upgrade_schema",
]

SCHEMA_HEAD = "0002"
"""The newest schema revision this version of retrainer knows (the head of ``migrations/``)."""

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_WRITE = "retrainer_write"  # connection execution option: this transaction writes
_VERSION_ATTEMPTS = 5
_MIGRATION_LOCK_KEY = 7_301_154_882  # pg_advisory_xact_lock key: one migrator at a time

# The shared normalization (memory.json_value) already turned every non-finite float into null;
# refusing NaN here makes a slip fail on SQLite too, as PostgreSQL's json type would. Reading
# the NaN tokens a SQLite file written before revision 0002 may hold as null keeps old rows
# under the same rule as new ones.
_json_serializer = functools.partial(json.dumps, allow_nan=False)
_json_deserializer = functools.partial(json.loads, parse_constant=lambda token: None)

# -- tables (queries only: the schema itself is created by the migrations) --------------------

_metadata = sa.MetaData()

pipelines = sa.Table(
    "pipelines",
    _metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("definition_hash", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(255), sa.ForeignKey("pipelines.name"), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("window_start", sa.DateTime(), nullable=True),
    sa.Column("window_end", sa.DateTime(), nullable=True),
    sa.Column("min_time", sa.DateTime(), nullable=True),
    sa.Column("max_time", sa.DateTime(), nullable=True),
    sa.Column("row_count", sa.BigInteger(), nullable=False),
    sa.Column("data_schema", sa.JSON(), nullable=False),
    sa.Column("fingerprint", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Index("ix_snapshots_pipeline", "pipeline"),
)

runs = sa.Table(
    "runs",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("pipeline", sa.String(255), sa.ForeignKey("pipelines.name"), nullable=False),
    sa.Column("cause", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("evidence", sa.JSON(), nullable=False),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("snapshot_id", sa.Integer(), sa.ForeignKey("snapshots.id"), nullable=True),
    sa.Column("code_pipeline_hash", sa.String(128), nullable=True),
    sa.Column("code_git_commit", sa.String(64), nullable=True),
    sa.Column("code_git_dirty", sa.Boolean(), nullable=True),
    sa.Column("started_at", sa.DateTime(), nullable=True),
    sa.Column("finished_at", sa.DateTime(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
    sa.Column("epoch", sa.Integer(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("timings", sa.JSON(), nullable=False),
    sa.Index("ix_runs_key", "key", unique=True),
    sa.Index("ix_runs_pipeline_status", "pipeline", "status"),
)

model_versions = sa.Table(
    "model_versions",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(255), sa.ForeignKey("pipelines.name"), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("artifact_size", sa.BigInteger(), nullable=False),
    sa.Column("artifact_format", sa.String(64), nullable=False),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("snapshot_id", sa.Integer(), sa.ForeignKey("snapshots.id"), nullable=False),
    sa.Column("code_pipeline_hash", sa.String(128), nullable=False),
    sa.Column("code_git_commit", sa.String(64), nullable=True),
    sa.Column("code_git_dirty", sa.Boolean(), nullable=True),
    sa.Column("environment", sa.JSON(), nullable=False),
    sa.Column("blessed", sa.Boolean(), nullable=False),
    sa.Column("blessing_reason", sa.Text(), nullable=False),
    sa.Column("blessing_champion_version", sa.Integer(), nullable=True),
    sa.Column("blessing_evidence", sa.JSON(), nullable=False),
    sa.Column("profile", sa.JSON(none_as_null=True), nullable=True),
    sa.UniqueConstraint("pipeline", "version", name="uq_model_versions_pipeline_version"),
    sa.Index("ix_model_versions_artifact_sha256", "artifact_sha256"),
)

alias_moves = sa.Table(
    "alias_moves",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(255), sa.ForeignKey("pipelines.name"), nullable=False),
    sa.Column("alias", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("previous", sa.Integer(), nullable=True),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.ForeignKeyConstraint(
        ["pipeline", "version"], ["model_versions.pipeline", "model_versions.version"]
    ),
    sa.Index("ix_alias_moves_pipeline_alias", "pipeline", "alias", "id"),
)

events = sa.Table(
    "events",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("pipeline", sa.String(255), nullable=True),
    sa.Column("run_id", sa.Integer(), nullable=True),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Index("ix_events_pipeline", "pipeline"),
    sa.Index("ix_events_kind", "kind"),
    sa.Index("ix_events_at", "at"),
)

monitor_results = sa.Table(
    "monitor_results",
    _metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(255), sa.ForeignKey("pipelines.name"), nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("window_start", sa.DateTime(), nullable=False),
    sa.Column("window_end", sa.DateTime(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("drifted", sa.Boolean(), nullable=True),
    sa.Column("summary", sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(
        ["pipeline", "version"], ["model_versions.pipeline", "model_versions.version"]
    ),
    sa.Index("ix_monitor_results_pipeline_window_end", "pipeline", "window_end", "id"),
)

pipeline_state = sa.Table(
    "pipeline_state",
    _metadata,
    sa.Column("pipeline", sa.String(255), sa.ForeignKey("pipelines.name"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.JSON(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)


# -- conversions ------------------------------------------------------------------------------


def _db_time(value: datetime | None) -> datetime | None:
    """Naive UTC, the form every DateTime column holds."""
    return None if value is None else as_utc(value).replace(tzinfo=None)


def _code_columns(code: CodeVersion | None) -> dict[str, Any]:
    return {
        "code_pipeline_hash": None if code is None else code.pipeline_hash,
        "code_git_commit": None if code is None else code.git_commit,
        "code_git_dirty": None if code is None else code.git_dirty,
    }


def _code_from(row: sa.RowMapping) -> CodeVersion | None:
    if row["code_pipeline_hash"] is None:
        return None
    return CodeVersion(
        pipeline_hash=row["code_pipeline_hash"],
        git_commit=row["code_git_commit"],
        git_dirty=row["code_git_dirty"],
    )


def _pipeline_from(row: sa.RowMapping) -> PipelineRecord:
    return PipelineRecord(
        name=row["name"],
        definition_hash=row["definition_hash"],
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
    )


def _snapshot_columns(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "pipeline": snapshot.pipeline,
        "source": snapshot.source,
        "window_start": _db_time(snapshot.window_start),
        "window_end": _db_time(snapshot.window_end),
        "min_time": _db_time(snapshot.min_time),
        "max_time": _db_time(snapshot.max_time),
        "row_count": snapshot.rows,
        "data_schema": snapshot.schema,
        "fingerprint": snapshot.fingerprint,
        "created_at": _db_time(snapshot.created_at),
    }


def _snapshot_from(row: sa.RowMapping) -> Snapshot:
    return Snapshot(
        id=row["id"],
        pipeline=row["pipeline"],
        source=row["source"],
        window_start=optional_utc(row["window_start"]),
        window_end=optional_utc(row["window_end"]),
        min_time=optional_utc(row["min_time"]),
        max_time=optional_utc(row["max_time"]),
        rows=row["row_count"],
        schema=row["data_schema"],
        fingerprint=row["fingerprint"],
        created_at=as_utc(row["created_at"]),
    )


def _run_columns(run: Run) -> dict[str, Any]:
    return {
        "key": run.key,
        "pipeline": run.pipeline,
        "cause": run.cause,
        "created_at": _db_time(run.created_at),
        "status": run.status,
        "evidence": run.evidence,
        "params": run.params,
        "snapshot_id": run.snapshot_id,
        **_code_columns(run.code),
        "started_at": _db_time(run.started_at),
        "finished_at": _db_time(run.finished_at),
        "error": run.error,
        "metrics": metrics_to_json(run.metrics),
        "version": run.version,
        "outcome": run.outcome,
        "owner": run.owner,
        "lease_expires_at": _db_time(run.lease_expires_at),
        "epoch": run.epoch,
        "attempts": run.attempts,
        "timings": run.timings,
    }


def _run_from(row: sa.RowMapping) -> Run:
    return Run(
        id=row["id"],
        key=row["key"],
        pipeline=row["pipeline"],
        cause=row["cause"],
        created_at=as_utc(row["created_at"]),
        status=row["status"],
        evidence=row["evidence"],
        params=row["params"],
        snapshot_id=row["snapshot_id"],
        code=_code_from(row),
        started_at=optional_utc(row["started_at"]),
        finished_at=optional_utc(row["finished_at"]),
        error=row["error"],
        metrics=metrics_from_json(row["metrics"]),
        version=row["version"],
        outcome=row["outcome"],
        owner=row["owner"],
        lease_expires_at=optional_utc(row["lease_expires_at"]),
        epoch=row["epoch"],
        attempts=row["attempts"],
        timings=row["timings"],
    )


def _version_columns(version: ModelVersion, number: int, snapshot_id: int) -> dict[str, Any]:
    return {
        "pipeline": version.pipeline,
        "version": number,
        "created_at": _db_time(version.created_at),
        "run_id": version.run_id,
        "artifact_sha256": version.artifact_sha256,
        "artifact_size": version.artifact_size,
        "artifact_format": version.artifact_format,
        "metrics": metrics_to_json(version.metrics),
        "params": version.params,
        "snapshot_id": snapshot_id,
        **_code_columns(version.code),
        "environment": version.environment,
        "blessed": version.blessing.passed,
        "blessing_reason": version.blessing.reason,
        "blessing_champion_version": version.blessing.champion_version,
        "blessing_evidence": evidence_to_json(version.blessing.evidence),
        "profile": version.profile,
    }


def _version_from(row: sa.RowMapping, snapshot: Snapshot) -> ModelVersion:
    code = _code_from(row)
    assert code is not None  # the column is NOT NULL
    return ModelVersion(
        pipeline=row["pipeline"],
        version=row["version"],
        created_at=as_utc(row["created_at"]),
        run_id=row["run_id"],
        artifact_sha256=row["artifact_sha256"],
        artifact_size=row["artifact_size"],
        artifact_format=row["artifact_format"],
        metrics=metrics_from_json(row["metrics"]),
        params=row["params"],
        snapshot=snapshot,
        code=code,
        environment=row["environment"],
        blessing=Verdict(
            passed=bool(row["blessed"]),
            evidence=evidence_from_json(row["blessing_evidence"]),
            champion_version=row["blessing_champion_version"],
            reason=row["blessing_reason"],
        ),
        profile=row.get("profile"),
    )


def _move_from(row: sa.RowMapping) -> AliasMove:
    return AliasMove(
        id=row["id"],
        pipeline=row["pipeline"],
        alias=row["alias"],
        version=row["version"],
        previous=row["previous"],
        at=as_utc(row["at"]),
        reason=row["reason"],
        actor=row["actor"],
    )


def _monitor_columns(record: MonitorRecord) -> dict[str, Any]:
    return {
        "pipeline": record.pipeline,
        "version": record.version,
        "window_start": _db_time(record.window_start),
        "window_end": _db_time(record.window_end),
        "created_at": _db_time(record.created_at),
        "drifted": record.drifted,
        "summary": record.summary,
    }


def _monitor_from(row: sa.RowMapping) -> MonitorRecord:
    return MonitorRecord(
        id=row["id"],
        pipeline=row["pipeline"],
        version=row["version"],
        window_start=as_utc(row["window_start"]),
        window_end=as_utc(row["window_end"]),
        created_at=as_utc(row["created_at"]),
        drifted=row["drifted"],
        summary=row["summary"],
    )


def _event_columns(event: Event) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "at": _db_time(event.at),
        "message": event.message,
        "pipeline": event.pipeline,
        "run_id": event.run_id,
        "version": event.version,
        "data": event.data,
    }


def _event_from(row: sa.RowMapping) -> Event:
    return Event(
        id=row["id"],
        kind=row["kind"],
        at=as_utc(row["at"]),
        message=row["message"],
        pipeline=row["pipeline"],
        run_id=row["run_id"],
        version=row["version"],
        data=row["data"],
    )


# -- engine -----------------------------------------------------------------------------------


def _parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"Metadata store URL {url!r} is not a database URL. Expected 'memory://', "
            "'sqlite:///path/to/retrainer.db' or 'postgresql+psycopg://user@host/dbname'."
        ) from None


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _is_sqlite_memory(url: URL) -> bool:
    return _is_sqlite(url) and url.database in (None, "", ":memory:")


def _sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL (``None`` for in-memory or ``file:`` URI databases)."""
    if not _is_sqlite(url) or _is_sqlite_memory(url) or url.database is None:
        return None
    if url.database.startswith("file:"):
        return None
    return Path(url.database)


def _database_label(url: URL) -> str:
    path = _sqlite_path(url)
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
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _create_engine(url: URL, busy_timeout_s: float) -> sa.Engine:
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            if _is_sqlite_memory(url):
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
                _on_sqlite_connect(busy_timeout_s, wal=not _is_sqlite_memory(url)),
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
        hint = (
            " Install it with: pip install 'retrainer[postgres]'" if backend == "postgresql" else ""
        )
        raise ConfigError(
            f"SQLMetadataStore needs the {exc.name!r} package for {url.drivername} URLs.{hint}"
        ) from exc


def _is_locked(exc: sa.exc.OperationalError) -> bool:
    return "database is locked" in str(exc.orig) or "database table is locked" in str(exc.orig)


@contextlib.contextmanager
def _transaction(
    engine: sa.Engine, label: str, busy_timeout_s: float, *, write: bool
) -> Iterator[sa.Connection]:
    try:
        with engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn
    except sa.exc.OperationalError as exc:
        if engine.dialect.name == "sqlite" and _is_locked(exc):
            raise ConcurrencyError(
                f"The metadata database {label} stayed locked for more than {busy_timeout_s:g} s:"
                " another process holds a long write transaction on it. Retry, or raise the "
                "store's busy_timeout_s."
            ) from exc
        raise


# -- schema revisions -------------------------------------------------------------------------


def _current_revision(conn: sa.Connection) -> str | None:
    # plain SQL: every open runs this, and importing alembic takes longer than the command
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(found) > 1:  # several heads: let alembic say what is wrong
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()
    return found[0] if found else None


@cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return frozenset(s.revision for s in script.walk_revisions())


def _check_revision(current: str | None, label: str, *, auto_migrate: bool) -> bool:
    """Whether the schema needs an upgrade; raise if it is unknown, or behind and not allowed."""
    if current == SCHEMA_HEAD:
        return False
    if current is not None and current not in _known_revisions():
        raise SchemaVersionError(
            f"The metadata database {label} is at schema revision {current!r}, which this "
            f"version of retrainer does not know (it knows revisions up to {SCHEMA_HEAD!r}): a "
            "newer retrainer wrote it. Upgrade retrainer (pip install -U retrainer) to use "
            "this database."
        )
    if not auto_migrate:
        shown = "none (an empty database)" if current is None else repr(current)
        raise SchemaVersionError(
            f"The metadata database {label} is at schema revision {shown}, but this version of "
            f"retrainer needs revision {SCHEMA_HEAD!r}. Upgrade it with: retrainer db upgrade "
            "(or open the store with auto_migrate=True)."
        )
    return True


def _alembic_config(conn: sa.Connection | None) -> Config:
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolates '%': a path containing one must be escaped.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def _migrate(
    engine: sa.Engine, label: str, busy_timeout_s: float, *, auto_migrate: bool
) -> tuple[str | None, str]:
    """Bring the schema to ``SCHEMA_HEAD``; return (revision before, revision after)."""
    # Fast path: a read transaction and one SELECT when the schema is already current.
    with _transaction(engine, label, busy_timeout_s, write=False) as conn:
        before = _current_revision(conn)
    if not _check_revision(before, label, auto_migrate=auto_migrate):
        return before, SCHEMA_HEAD

    from alembic import command
    from alembic.script import ScriptDirectory

    # Import alembic and read the migration scripts before taking the write lock, so the lock
    # is held only for the DDL itself (other processes opening the database wait on it).
    ScriptDirectory.from_config(_alembic_config(None)).get_revisions("heads")
    with _transaction(engine, label, busy_timeout_s, write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        # Another process may have migrated while we waited for the write lock: look again.
        before = _current_revision(conn)
        if _check_revision(before, label, auto_migrate=auto_migrate):
            command.upgrade(_alembic_config(conn), SCHEMA_HEAD)
    return before, SCHEMA_HEAD


def upgrade_schema(url: str, *, busy_timeout_s: float = 30.0) -> tuple[str | None, str]:
    """Upgrade the metadata database at ``url`` to the schema this retrainer needs.

    What ``retrainer db upgrade`` runs. An empty database gets the whole schema; a database
    already at the head is left alone.

    Parameters
    ----------
    url
        SQLAlchemy URL of the database (``sqlite:///path.db``, ``postgresql+psycopg://...``).
    busy_timeout_s
        How long to wait for another process's write lock (SQLite).

    Returns
    -------
    tuple
        The revision before (``None`` for an empty database) and after the upgrade.

    Raises
    ------
    SchemaVersionError
        The database was written by a newer retrainer (a revision this code does not know).

    Examples
    --------
    >>> upgrade_schema("sqlite://")  # an in-memory database starts empty
    (None, '0002')
    """
    parsed = _parse_url(url)
    _make_parent_folder(parsed)
    engine = _create_engine(parsed, busy_timeout_s)
    try:
        return _migrate(engine, _database_label(parsed), busy_timeout_s, auto_migrate=True)
    finally:
        engine.dispose()


def _make_parent_folder(url: URL) -> None:
    path = _sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


# -- the store --------------------------------------------------------------------------------


class SQLMetadataStore:
    """The metadata store on a SQL database: SQLite (one machine) or PostgreSQL (several).

    Opening checks the schema revision: an empty or out-of-date database is upgraded
    (``auto_migrate=True``) or refused with :class:`~retrainer.errors.SchemaVersionError`
    (``auto_migrate=False``: run ``retrainer db upgrade``); a database written by a newer
    retrainer is always refused. Threads may share one store; processes each open their own,
    on the same database. Behaves exactly like
    :class:`~retrainer.adapters.metadata.memory.InMemoryMetadataStore` otherwise (one contract
    suite checks both).

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/to/retrainer.db``, ``sqlite://`` (in memory, one
        process), or ``postgresql+psycopg://user:password@host/dbname`` (needs
        ``pip install 'retrainer[postgres]'``).
    auto_migrate
        Upgrade an empty or out-of-date schema on open instead of refusing it.
    busy_timeout_s
        SQLite: how long a write waits for another process's write lock before raising
        :class:`~retrainer.errors.ConcurrencyError`.

    Attributes
    ----------
    url
        The URL the store was opened with, password hidden.

    Examples
    --------
    >>> from datetime import datetime
    >>> from retrainer.core.types import Event
    >>> store = SQLMetadataStore("sqlite://")
    >>> store.ensure_pipeline("churn", "d41d8cd9", datetime(2024, 5, 1)).created_at.isoformat()
    '2024-05-01T00:00:00+00:00'
    >>> event = Event(kind="note", at=datetime(2024, 5, 1), message="hello", pipeline="churn")
    >>> store.append_event(event).id
    1
    >>> [e.message for e in store.list_events(pipeline="churn")]
    ['hello']
    >>> store.close()
    """

    def __init__(
        self, url: str, *, auto_migrate: bool = True, busy_timeout_s: float = 30.0
    ) -> None:
        parsed = _parse_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        self._label = _database_label(parsed)
        self._busy_timeout_s = busy_timeout_s
        # An in-memory SQLite database is one shared connection: serialize its users.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if _is_sqlite_memory(parsed) else contextlib.nullcontext()
        )
        try:
            _make_parent_folder(parsed)
        except OSError as exc:
            raise StorageError(
                f"cannot create the folder of the metadata database {self.url}: {exc}"
            ) from None
        try:
            self._engine = _create_engine(parsed, busy_timeout_s)
        except (sa.exc.NoSuchModuleError, ImportError) as exc:
            raise ConfigError(
                f"Metadata store URL {self.url!r}: no database driver for "
                f"{parsed.drivername!r} ({exc}). Expected 'sqlite:///path/to/retrainer.db' or "
                "'postgresql+psycopg://user@host/dbname' (with the [postgres] extra)."
            ) from None
        try:
            _migrate(self._engine, self._label, busy_timeout_s, auto_migrate=auto_migrate)
        except sa.exc.OperationalError as exc:
            self._engine.dispose()
            reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
            raise StorageError(
                f"cannot open the metadata database {self.url}: "
                f"{reason[0] if reason else type(exc).__name__}"
            ) from None
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SQLMetadataStore({self.url!r})"

    def __enter__(self) -> SQLMetadataStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self, *, write: bool) -> Iterator[sa.Connection]:
        with (
            self._lock,
            _transaction(self._engine, self._label, self._busy_timeout_s, write=write) as conn,
        ):
            yield conn

    # -- helpers (inside a transaction) --

    def _require_pipeline(self, conn: sa.Connection, name: str, *, lock: bool = False) -> None:
        query = sa.select(pipelines.c.name).where(pipelines.c.name == name)
        if lock:
            # PostgreSQL: serialize writers of this pipeline (SQLite ignores FOR UPDATE; its
            # BEGIN IMMEDIATE already serializes every writer).
            query = query.with_for_update()
        if conn.execute(query).first() is None:
            known = conn.scalars(sa.select(pipelines.c.name)).all()
            raise unknown_pipeline(name, known)

    def _require_snapshot(self, conn: sa.Connection, snapshot_id: int) -> Snapshot:
        row = conn.execute(sa.select(snapshots).where(snapshots.c.id == snapshot_id)).first()
        if row is None:
            raise ModelNotFoundError(f"No snapshot with id {snapshot_id}.")
        return _snapshot_from(row._mapping)

    def _require_run(
        self, conn: sa.Connection, run_id: int, *, lock: bool = False
    ) -> sa.RowMapping:
        query = sa.select(runs).where(runs.c.id == run_id)
        if lock:
            query = query.with_for_update()  # PostgreSQL; SQLite's BEGIN IMMEDIATE suffices
        row = conn.execute(query).first()
        if row is None:
            raise ModelNotFoundError(f"No run with id {run_id}.")
        return row._mapping

    def _require_version_number(self, conn: sa.Connection, pipeline: str, version: int) -> None:
        found = conn.execute(
            sa.select(model_versions.c.id).where(
                model_versions.c.pipeline == pipeline, model_versions.c.version == version
            )
        ).first()
        if found is None:
            numbers = conn.scalars(
                sa.select(model_versions.c.version).where(model_versions.c.pipeline == pipeline)
            ).all()
            raise unknown_version(pipeline, version, numbers)

    def _check_run_refs(self, conn: sa.Connection, run: Run) -> None:
        self._require_pipeline(conn, run.pipeline)
        if run.snapshot_id is not None:
            self._require_snapshot(conn, run.snapshot_id)

    def _insert(self, conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> int:
        key = conn.execute(sa.insert(table).values(**values)).inserted_primary_key
        assert key is not None  # an INSERT always has one
        new_id: int = key[0]
        return new_id

    def _current_alias(self, conn: sa.Connection, pipeline: str, alias: str) -> int | None:
        row = conn.execute(
            sa.select(alias_moves.c.version)
            .where(alias_moves.c.pipeline == pipeline, alias_moves.c.alias == alias)
            .order_by(alias_moves.c.id.desc())
            .limit(1)
        ).first()
        return None if row is None else row[0]

    def _versions(
        self, conn: sa.Connection, where: Sequence[Any], *, profiles: bool = True
    ) -> list[ModelVersion]:
        columns = [c for c in model_versions.c if profiles or c.name != "profile"]
        rows = conn.execute(
            sa.select(*columns).where(*where).order_by(model_versions.c.version)
        ).all()
        ids = {row._mapping["snapshot_id"] for row in rows}
        found = (
            conn.execute(sa.select(snapshots).where(snapshots.c.id.in_(ids))).all() if ids else []
        )
        by_id = {s._mapping["id"]: _snapshot_from(s._mapping) for s in found}
        return [_version_from(row._mapping, by_id[row._mapping["snapshot_id"]]) for row in rows]

    # -- pipelines --

    def ensure_pipeline(self, name: str, definition_hash: str, now: datetime) -> PipelineRecord:
        """Create the pipeline or update its definition hash; return the record.

        ``updated_at`` only moves when the hash changes.
        """
        try:
            return self._ensure_pipeline(name, definition_hash, now)
        except sa.exc.IntegrityError:
            # PostgreSQL: another process created it after our SELECT; now it is there.
            return self._ensure_pipeline(name, definition_hash, now)

    def _ensure_pipeline(self, name: str, definition_hash: str, now: datetime) -> PipelineRecord:
        when = _db_time(now)
        with self._tx(write=True) as conn:
            row = conn.execute(
                sa.select(pipelines).where(pipelines.c.name == name).with_for_update()
            ).first()
            if row is None:
                conn.execute(
                    sa.insert(pipelines).values(
                        name=name, definition_hash=definition_hash, created_at=when, updated_at=when
                    )
                )
                return PipelineRecord(
                    name=name,
                    definition_hash=definition_hash,
                    created_at=as_utc(now),
                    updated_at=as_utc(now),
                )
            record = _pipeline_from(row._mapping)
            if record.definition_hash == definition_hash:
                return record
            conn.execute(
                sa.update(pipelines)
                .where(pipelines.c.name == name)
                .values(definition_hash=definition_hash, updated_at=when)
            )
            return replace(record, definition_hash=definition_hash, updated_at=as_utc(now))

    def list_pipelines(self) -> list[PipelineRecord]:
        """All pipelines, by name."""
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(pipelines).order_by(pipelines.c.name)).all()
            return [_pipeline_from(row._mapping) for row in rows]

    # -- snapshots --

    def add_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """Store a snapshot and return it with its ``id`` set."""
        snapshot = normalized_snapshot(snapshot)
        with self._tx(write=True) as conn:
            self._require_pipeline(conn, snapshot.pipeline)
            new_id = self._insert(conn, snapshots, _snapshot_columns(snapshot))
        return replace(snapshot, id=new_id)

    def get_snapshot(self, snapshot_id: int) -> Snapshot:
        with self._tx(write=False) as conn:
            return self._require_snapshot(conn, snapshot_id)

    # -- runs --

    def create_run(self, run: Run) -> tuple[Run, bool]:
        """Insert ``run`` unless a run with its key exists; return (the stored run, created)."""
        run = normalized_run(run)
        try:
            with self._tx(write=True) as conn:
                row = conn.execute(sa.select(runs).where(runs.c.key == run.key)).first()
                if row is not None:
                    return _run_from(row._mapping), False
                self._check_run_refs(conn, run)
                new_id = self._insert(conn, runs, _run_columns(run))
            return replace(run, id=new_id), True
        except sa.exc.IntegrityError:
            # PostgreSQL: another process inserted the same key after our SELECT.
            with self._tx(write=False) as conn:
                row = conn.execute(sa.select(runs).where(runs.c.key == run.key)).first()
            if row is None:
                raise
            return _run_from(row._mapping), False

    def update_run(self, run: Run, *, expected_epoch: int | None = ANY) -> Run:
        """Overwrite the run with ``run.id`` with every field of ``run``; return it.

        A run's ``key`` cannot change (it is what makes ``create_run`` idempotent). If
        ``expected_epoch`` is given and the stored run's ``epoch`` differs, raise
        ``ConcurrencyError`` and change nothing.
        """
        run_id = run.id
        if run_id is None:
            raise ValueError("update_run needs a run with an id: pass the run create_run returned")
        check_expected_epoch(expected_epoch)
        run = normalized_run(run)
        checked = expected_epoch is not ANY
        with self._tx(write=True) as conn:
            # The compare-and-set: the row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) keeps
            # the epoch from changing between this read and the update below.
            current = self._require_run(conn, run_id, lock=checked)
            if current["key"] != run.key:
                raise ValueError(
                    f"A run's key cannot change: run {run_id} has key {current['key']!r}, "
                    f"got {run.key!r}."
                )
            if checked and current["epoch"] != expected_epoch:
                raise epoch_conflict(run_id, current["epoch"], expected_epoch)
            self._check_run_refs(conn, run)
            update = sa.update(runs).where(runs.c.id == run_id)
            if checked:
                update = update.where(runs.c.epoch == expected_epoch)
            if conn.execute(update.values(**_run_columns(run))).rowcount != 1:
                # Only reachable if a writer changed the epoch without taking the row lock.
                raise epoch_conflict(
                    run_id, self._require_run(conn, run_id)["epoch"], expected_epoch
                )
        return run

    def get_run(self, run_id: int) -> Run:
        with self._tx(write=False) as conn:
            return _run_from(self._require_run(conn, run_id))

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int | None = 50
    ) -> list[Run]:
        """Runs, newest first (by id); ``limit=None`` returns them all."""
        query = sa.select(runs).order_by(runs.c.id.desc())
        if pipeline is not None:
            query = query.where(runs.c.pipeline == pipeline)
        if status is not None:
            query = query.where(runs.c.status == status)
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._tx(write=False) as conn:
            return [_run_from(row._mapping) for row in conn.execute(query)]

    # -- model versions --

    def register_version(self, draft: ModelVersion, event: Event | None = None) -> ModelVersion:
        """Assign the next version number of ``draft.pipeline`` and store it.

        ``draft.version`` is ignored. A snapshot without an ``id`` is stored first; one with an
        ``id`` must exist and is returned as stored. ``event`` (if given) is stored in the same
        transaction with its ``version`` set to the assigned number.
        """
        draft = normalized_version(draft)
        event = None if event is None else normalized_event(event)
        for attempt in range(1, _VERSION_ATTEMPTS + 1):
            try:
                return self._register_version(draft, event)
            except sa.exc.IntegrityError as exc:
                # The unique (pipeline, version) index turned a race into an error (possible on
                # PostgreSQL only if a writer skipped the row lock): take the next number.
                if "version" not in str(exc.orig) or attempt == _VERSION_ATTEMPTS:
                    raise ConcurrencyError(
                        f"Could not register a version of pipeline {draft.pipeline!r} in "
                        f"{self._label} after {attempt} attempts: {exc.orig}"
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _register_version(self, draft: ModelVersion, event: Event | None) -> ModelVersion:
        with self._tx(write=True) as conn:
            self._require_pipeline(conn, draft.pipeline, lock=True)
            if draft.run_id is not None:
                self._require_run(conn, draft.run_id)
            snapshot = draft.snapshot
            if snapshot.id is not None:
                snapshot = self._require_snapshot(conn, snapshot.id)
            check_snapshot_pipeline(draft.pipeline, snapshot)
            if snapshot.id is None:
                snapshot = replace(
                    snapshot, id=self._insert(conn, snapshots, _snapshot_columns(snapshot))
                )
            assert snapshot.id is not None
            number = (
                conn.scalar(
                    sa.select(sa.func.coalesce(sa.func.max(model_versions.c.version), 0)).where(
                        model_versions.c.pipeline == draft.pipeline
                    )
                )
                or 0
            ) + 1
            self._insert(conn, model_versions, _version_columns(draft, number, snapshot.id))
            if event is not None:
                self._insert(conn, events, _event_columns(replace(event, version=number)))
        return replace(draft, version=number, snapshot=snapshot)

    def get_version(self, pipeline: str, version: int) -> ModelVersion:
        with self._tx(write=False) as conn:
            self._require_pipeline(conn, pipeline)
            found = self._versions(
                conn, [model_versions.c.pipeline == pipeline, model_versions.c.version == version]
            )
            if not found:
                self._require_version_number(conn, pipeline, version)
            return found[0]

    def list_versions(self, pipeline: str, *, profiles: bool = True) -> list[ModelVersion]:
        """All versions of ``pipeline``, oldest first (none for an unknown pipeline)."""
        with self._tx(write=False) as conn:
            where = [model_versions.c.pipeline == pipeline]
            return self._versions(conn, where, profiles=profiles)

    # -- aliases --

    def move_alias(
        self,
        pipeline: str,
        alias: str,
        version: int | None,
        *,
        at: datetime,
        reason: str,
        actor: str,
        expected: int | None = ANY,
        event: Event | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``version`` (``None`` clears it), appending to its history.

        If ``expected`` is given (a version or ``None``) and the alias currently points
        elsewhere, raise ``ConcurrencyError`` and change nothing. A version that does not exist
        raises ``ModelNotFoundError``. ``event`` (if given) is stored in the same transaction.
        """
        at = as_utc(at)
        event = None if event is None else normalized_event(event)
        with self._tx(write=True) as conn:
            # The compare-and-set: the row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) keeps
            # anyone else from moving the alias between this read and the insert below.
            self._require_pipeline(conn, pipeline, lock=True)
            if version is not None:
                self._require_version_number(conn, pipeline, version)
            current = self._current_alias(conn, pipeline, alias)
            if expected is not ANY and current != expected:
                raise alias_conflict(pipeline, alias, current, expected)
            move = AliasMove(
                pipeline=pipeline,
                alias=alias,
                version=version,
                previous=current,
                at=at,
                reason=reason,
                actor=actor,
            )
            values = {
                "pipeline": pipeline,
                "alias": alias,
                "version": version,
                "previous": current,
                "at": _db_time(at),
                "reason": reason,
                "actor": actor,
            }
            move = replace(move, id=self._insert(conn, alias_moves, values))
            if event is not None:
                self._insert(conn, events, _event_columns(event))
        return move

    def get_alias(self, pipeline: str, alias: str) -> int | None:
        """The version ``alias`` points at now, or ``None``."""
        with self._tx(write=False) as conn:
            return self._current_alias(conn, pipeline, alias)

    def aliases(self, pipeline: str) -> dict[str, int]:
        """Current aliases of ``pipeline`` that point at a version."""
        last = (
            sa.select(sa.func.max(alias_moves.c.id))
            .where(alias_moves.c.pipeline == pipeline)
            .group_by(alias_moves.c.alias)
        )
        query = (
            sa.select(alias_moves.c.alias, alias_moves.c.version)
            .where(alias_moves.c.id.in_(last), alias_moves.c.version.is_not(None))
            .order_by(alias_moves.c.alias)
        )
        with self._tx(write=False) as conn:
            return {row.alias: row.version for row in conn.execute(query)}

    def alias_history(self, pipeline: str, alias: str | None = None) -> list[AliasMove]:
        """Moves, oldest first."""
        query = (
            sa.select(alias_moves)
            .where(alias_moves.c.pipeline == pipeline)
            .order_by(alias_moves.c.id)
        )
        if alias is not None:
            query = query.where(alias_moves.c.alias == alias)
        with self._tx(write=False) as conn:
            return [_move_from(row._mapping) for row in conn.execute(query)]

    def alias_at(self, pipeline: str, alias: str, at: datetime) -> int | None:
        """The version ``alias`` pointed at, at time ``at`` (None if none).

        That is the last move (by id) made at or before ``at``.
        """
        query = (
            sa.select(alias_moves.c.version)
            .where(
                alias_moves.c.pipeline == pipeline,
                alias_moves.c.alias == alias,
                alias_moves.c.at <= _db_time(at),
            )
            .order_by(alias_moves.c.id.desc())
            .limit(1)
        )
        with self._tx(write=False) as conn:
            row = conn.execute(query).first()
            return None if row is None else row[0]

    # -- monitoring --

    def add_monitor_result(
        self, record: MonitorRecord, event: Event | None = None
    ) -> MonitorRecord:
        """Store the figures of one monitoring window; return them with their ``id`` set.

        ``record.version`` (if not ``None``) must be a version of ``record.pipeline``.
        ``event`` (if given) is stored in the same transaction.
        """
        record = normalized_monitor_record(record)
        event = None if event is None else normalized_event(event)
        with self._tx(write=True) as conn:
            self._require_pipeline(conn, record.pipeline)
            if record.version is not None:
                self._require_version_number(conn, record.pipeline, record.version)
            new_id = self._insert(conn, monitor_results, _monitor_columns(record))
            if event is not None:
                self._insert(conn, events, _event_columns(event))
        return replace(record, id=new_id)

    def list_monitor_results(
        self,
        pipeline: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[MonitorRecord]:
        """Monitoring windows of ``pipeline``, oldest first (by ``window_end``, then id).

        ``since`` and ``until`` keep the windows inside ``[since, until]``; with ``limit``,
        the most recent ``limit`` of them.
        """
        query = (
            sa.select(monitor_results)
            .where(monitor_results.c.pipeline == pipeline)
            .order_by(monitor_results.c.window_end.desc(), monitor_results.c.id.desc())
        )
        if since is not None:
            query = query.where(monitor_results.c.window_start >= _db_time(since))
        if until is not None:
            query = query.where(monitor_results.c.window_end <= _db_time(until))
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._tx(write=False) as conn:
            found = [_monitor_from(row._mapping) for row in conn.execute(query)]
        found.reverse()
        return found

    # -- state --

    def get_state(self, pipeline: str, key: str) -> tuple[dict[str, Any], int] | None:
        """The value stored under ``key`` and its revision, or ``None`` if there is none."""
        query = sa.select(pipeline_state.c.value, pipeline_state.c.revision).where(
            pipeline_state.c.pipeline == pipeline, pipeline_state.c.key == key
        )
        with self._tx(write=False) as conn:
            row = conn.execute(query).first()
        return None if row is None else (row._mapping["value"], row._mapping["revision"])

    def put_state(
        self,
        pipeline: str,
        key: str,
        value: dict[str, Any],
        *,
        at: datetime,
        expected_revision: int | None = ANY,
    ) -> int:
        """Store ``value`` under ``key``; return the new revision (the first is 1).

        If ``expected_revision`` is given (a revision, or ``None`` for "must not exist yet")
        and the stored revision differs, raise ``ConcurrencyError`` and change nothing.
        """
        check_state_key(key)
        value = json_dict(value, f"The value of state {key!r}")
        when = _db_time(at)
        where = (pipeline_state.c.pipeline == pipeline, pipeline_state.c.key == key)
        with self._tx(write=True) as conn:
            # The pipeline's row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) serializes the
            # writers of its state, including two that both find the key missing.
            self._require_pipeline(conn, pipeline, lock=True)
            current = conn.scalar(sa.select(pipeline_state.c.revision).where(*where))
            if expected_revision is not ANY and current != expected_revision:
                raise state_conflict(pipeline, key, current, expected_revision)
            if current is None:
                conn.execute(
                    sa.insert(pipeline_state).values(
                        pipeline=pipeline, key=key, value=value, revision=1, updated_at=when
                    )
                )
                return 1
            updated = conn.execute(
                sa.update(pipeline_state)
                .where(*where, pipeline_state.c.revision == current)
                .values(value=value, revision=current + 1, updated_at=when)
            )
            if updated.rowcount != 1:
                # Only reachable if a writer skipped the pipeline lock.
                now_at = conn.scalar(sa.select(pipeline_state.c.revision).where(*where))
                raise state_conflict(pipeline, key, now_at, current)
            revision: int = current + 1
            return revision

    def list_state(self, pipeline: str) -> dict[str, dict[str, Any]]:
        """Every value stored for ``pipeline``, by key."""
        query = sa.select(pipeline_state.c.key, pipeline_state.c.value).where(
            pipeline_state.c.pipeline == pipeline
        )
        with self._tx(write=False) as conn:
            rows = [(row._mapping["key"], row._mapping["value"]) for row in conn.execute(query)]
        # Sorted here, not by ORDER BY: PostgreSQL's collation may order keys differently.
        return dict(sorted(rows))

    # -- events --

    def append_event(self, event: Event) -> Event:
        """Store ``event`` and return it with its ``id`` set."""
        event = normalized_event(event)
        with self._tx(write=True) as conn:
            new_id = self._insert(conn, events, _event_columns(event))
        return replace(event, id=new_id)

    def list_events(
        self,
        pipeline: str | None = None,
        since: datetime | None = None,
        kinds: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events oldest first (by id); with ``limit``, the most recent ``limit`` of them.

        ``since`` keeps the events at or after it.
        """
        query = sa.select(events).order_by(events.c.id.desc())
        if pipeline is not None:
            query = query.where(events.c.pipeline == pipeline)
        if since is not None:
            query = query.where(events.c.at >= _db_time(since))
        if kinds is not None:
            query = query.where(events.c.kind.in_(kinds))
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._tx(write=False) as conn:
            found = [_event_from(row._mapping) for row in conn.execute(query)]
        found.reverse()
        return found

    def close(self) -> None:
        """Close the store's database connections."""
        self._engine.dispose()


def open_metadata_store(
    url: str, *, auto_migrate: bool = True, busy_timeout_s: float = 30.0
) -> MetadataStore:
    """Open the metadata store at ``url``.

    ``"memory://"`` gives an :class:`InMemoryMetadataStore` (the keyword arguments do not apply
    to it); any other URL a :class:`SQLMetadataStore`. The folder of a SQLite file is created
    if missing.

    Examples
    --------
    >>> open_metadata_store("memory://")
    InMemoryMetadataStore()
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = open_metadata_store(f"sqlite:///{tmp}/new/folder/retrainer.db")
    ...     print(type(store).__name__, store.list_pipelines())
    ...     store.close()
    SQLMetadataStore []
    """
    if url == "memory://":
        return InMemoryMetadataStore()
    return SQLMetadataStore(url, auto_migrate=auto_migrate, busy_timeout_s=busy_timeout_s)
