"""The SQL metadata store: one class, the same statements on SQLite and PostgreSQL.

On PostgreSQL, writers that must serialize on a pipeline (version numbers, alias moves, state
compare-and-sets) lock its row with ``SELECT ... FOR UPDATE``, and
``update_run(expected_epoch=...)`` locks the run's row; on SQLite, ``BEGIN IMMEDIATE`` (see
:mod:`~retrainer.adapters.metadata.sql.connection`) serializes every writer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import cache, partial
from typing import Any

import sqlalchemy as sa

from retrainer.adapters.metadata._records import (
    alias_conflict,
    check_expected,
    check_expected_epoch,
    check_run_key,
    check_snapshot_pipeline,
    check_state_key,
    epoch_conflict,
    json_dict,
    normalized_event,
    normalized_monitor_record,
    normalized_run,
    normalized_snapshot,
    normalized_token,
    normalized_version,
    require_run_id,
    state_conflict,
    token_exists,
    unknown_pipeline,
    unknown_token,
    unknown_version,
)
from retrainer.adapters.metadata.memory import InMemoryMetadataStore
from retrainer.adapters.metadata.protocol import ANY, MetadataStore
from retrainer.adapters.metadata.sql.connection import (
    create_engine,
    database_label,
    is_sqlite_memory,
    make_parent_folder,
    parse_url,
    transaction,
)
from retrainer.adapters.metadata.sql.migrate import migrate
from retrainer.adapters.metadata.sql.rows import (
    db_time,
    event_columns,
    event_from,
    monitor_columns,
    monitor_from,
    move_from,
    pipeline_from,
    run_columns,
    run_from,
    snapshot_columns,
    snapshot_from,
    token_columns,
    token_from,
    version_columns,
    version_from,
)
from retrainer.adapters.metadata.sql.schema import (
    alias_moves,
    api_tokens,
    events,
    model_versions,
    monitor_results,
    pipeline_state,
    pipelines,
    runs,
    snapshots,
)
from retrainer.core.clock import as_utc
from retrainer.core.types import (
    AliasMove,
    Event,
    ModelVersion,
    MonitorRecord,
    PipelineRecord,
    Run,
    Snapshot,
    TokenRecord,
)
from retrainer.errors import ConcurrencyError, ConfigError, ModelNotFoundError, StorageError

_VERSION_ATTEMPTS = 5


class SQLMetadataStore(MetadataStore):
    """The metadata store on a SQL database: SQLite (one machine) or PostgreSQL (several).

    Opening checks the schema revision: an empty or out-of-date database is upgraded
    (``auto_migrate=True``) or refused with :class:`~retrainer.errors.SchemaVersionError`
    (``auto_migrate=False``: run ``retrainer db upgrade``); a database written by a newer
    retrainer is always refused. Threads may share one store; processes each open their own,
    on the same database. Behaves exactly like
    :class:`~retrainer.adapters.metadata.InMemoryMetadataStore` otherwise (one contract
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
    >>> event = Event(
    ...     kind="run.requested", at=datetime(2024, 5, 1), message="hello", pipeline="churn"
    ... )
    >>> store.append_event(event).id
    1
    >>> [e.message for e in store.list_events(pipeline="churn")]
    ['hello']
    >>> store.close()
    """

    def __init__(
        self, url: str, *, auto_migrate: bool = True, busy_timeout_s: float = 30.0
    ) -> None:
        parsed = parse_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        self._label = database_label(parsed)
        self._busy_timeout_s = busy_timeout_s
        # An in-memory SQLite database is one shared connection: serialize its users.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if is_sqlite_memory(parsed) else contextlib.nullcontext()
        )
        try:
            make_parent_folder(parsed)
        except OSError as exc:
            raise StorageError(
                f"cannot create the folder of the metadata database {self.url}: {exc}"
            ) from None
        try:
            self._engine = create_engine(parsed, busy_timeout_s)
        except (sa.exc.NoSuchModuleError, ImportError) as exc:
            raise ConfigError(
                f"Metadata store URL {self.url!r}: no database driver for "
                f"{parsed.drivername!r} ({exc}). Expected 'sqlite:///path/to/retrainer.db' or "
                "'postgresql+psycopg://user@host/dbname' (with the [postgres] extra)."
            ) from None
        try:
            migrate(self._engine, self._label, busy_timeout_s, auto_migrate=auto_migrate)
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
            transaction(self._engine, self._label, self._busy_timeout_s, write=write) as conn,
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
        return snapshot_from(row._mapping)

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
        by_id = {s._mapping["id"]: snapshot_from(s._mapping) for s in found}
        return [version_from(row._mapping, by_id[row._mapping["snapshot_id"]]) for row in rows]

    # -- pipelines --

    def ensure_pipeline(self, name: str, definition_hash: str, now: datetime) -> PipelineRecord:
        try:
            return self._ensure_pipeline(name, definition_hash, now)
        except sa.exc.IntegrityError:
            # PostgreSQL: another process created it after our SELECT; now it is there.
            return self._ensure_pipeline(name, definition_hash, now)

    def _ensure_pipeline(self, name: str, definition_hash: str, now: datetime) -> PipelineRecord:
        when = db_time(now)
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
            record = pipeline_from(row._mapping)
            if record.definition_hash == definition_hash:
                return record
            conn.execute(
                sa.update(pipelines)
                .where(pipelines.c.name == name)
                .values(definition_hash=definition_hash, updated_at=when)
            )
            return replace(record, definition_hash=definition_hash, updated_at=as_utc(now))

    def list_pipelines(self) -> list[PipelineRecord]:
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(pipelines).order_by(pipelines.c.name)).all()
            return [pipeline_from(row._mapping) for row in rows]

    # -- snapshots --

    def add_snapshot(self, snapshot: Snapshot) -> Snapshot:
        snapshot = normalized_snapshot(snapshot)
        with self._tx(write=True) as conn:
            self._require_pipeline(conn, snapshot.pipeline)
            new_id = self._insert(conn, snapshots, snapshot_columns(snapshot))
        return replace(snapshot, id=new_id)

    def get_snapshot(self, snapshot_id: int) -> Snapshot:
        with self._tx(write=False) as conn:
            return self._require_snapshot(conn, snapshot_id)

    # -- runs --

    def create_run(self, run: Run, event: Callable[[Run], Event] | None = None) -> tuple[Run, bool]:
        run = normalized_run(run)
        try:
            with self._tx(write=True) as conn:
                row = conn.execute(sa.select(runs).where(runs.c.key == run.key)).first()
                if row is not None:
                    return run_from(row._mapping), False
                self._check_run_refs(conn, run)
                new_id = self._insert(conn, runs, run_columns(run))
                if event is not None:
                    made = normalized_event(event(replace(run, id=new_id)))
                    self._insert(conn, events, event_columns(made))
            return replace(run, id=new_id), True
        except sa.exc.IntegrityError:
            # PostgreSQL: another process inserted the same key after our SELECT.
            with self._tx(write=False) as conn:
                row = conn.execute(sa.select(runs).where(runs.c.key == run.key)).first()
            if row is None:
                raise
            return run_from(row._mapping), False

    def update_run(
        self, run: Run, *, expected_epoch: int | None = ANY, event: Event | None = None
    ) -> Run:
        run_id = require_run_id(run)
        check_expected_epoch(expected_epoch)
        run = normalized_run(run)
        event = None if event is None else normalized_event(event)
        checked = expected_epoch is not ANY
        with self._tx(write=True) as conn:
            # The compare-and-set: the row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) keeps
            # the epoch from changing between this read and the update below.
            current = self._require_run(conn, run_id, lock=checked)
            check_run_key(run_id, current["key"], run)
            check_expected(current["epoch"], expected_epoch, partial(epoch_conflict, run_id))
            self._check_run_refs(conn, run)
            update = sa.update(runs).where(runs.c.id == run_id)
            if checked:
                update = update.where(runs.c.epoch == expected_epoch)
            if conn.execute(update.values(**run_columns(run))).rowcount != 1:
                # Only reachable if a writer changed the epoch without taking the row lock.
                raise epoch_conflict(
                    run_id, self._require_run(conn, run_id)["epoch"], expected_epoch
                )
            if event is not None:
                self._insert(conn, events, event_columns(event))
        return run

    def renew_lease(self, run_id: int, *, epoch: int, until: datetime) -> bool:
        # one guarded UPDATE of one column: a heartbeat never writes a stale copy of the run
        update = (
            sa.update(runs)
            .where(runs.c.id == run_id, runs.c.epoch == epoch, runs.c.status == "running")
            .values(lease_expires_at=db_time(until))
        )
        with self._tx(write=True) as conn:
            renewed: bool = conn.execute(update).rowcount == 1
        return renewed

    def get_run(self, run_id: int) -> Run:
        with self._tx(write=False) as conn:
            return run_from(self._require_run(conn, run_id))

    def list_runs(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = 50,
        *,
        before: int | None = None,
    ) -> list[Run]:
        query = sa.select(runs).order_by(runs.c.id.desc())
        if pipeline is not None:
            query = query.where(runs.c.pipeline == pipeline)
        if status is not None:
            query = query.where(runs.c.status == status)
        if before is not None:
            query = query.where(runs.c.id < before)
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._tx(write=False) as conn:
            return [run_from(row._mapping) for row in conn.execute(query)]

    # -- model versions --

    def register_version(self, draft: ModelVersion, event: Event | None = None) -> ModelVersion:
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
                    snapshot, id=self._insert(conn, snapshots, snapshot_columns(snapshot))
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
            self._insert(conn, model_versions, version_columns(draft, number, snapshot.id))
            if event is not None:
                self._insert(conn, events, event_columns(replace(event, version=number)))
        return replace(draft, version=number, snapshot=snapshot)

    def get_version(self, pipeline: str, version: int, *, profile: bool = True) -> ModelVersion:
        with self._tx(write=False) as conn:
            self._require_pipeline(conn, pipeline)
            found = self._versions(
                conn,
                [model_versions.c.pipeline == pipeline, model_versions.c.version == version],
                profiles=profile,
            )
            if not found:
                self._require_version_number(conn, pipeline, version)
            return found[0]

    def list_versions(self, pipeline: str, *, profiles: bool = True) -> list[ModelVersion]:
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
        at = as_utc(at)
        event = None if event is None else normalized_event(event)
        with self._tx(write=True) as conn:
            # The compare-and-set: the row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) keeps
            # anyone else from moving the alias between this read and the insert below.
            self._require_pipeline(conn, pipeline, lock=True)
            if version is not None:
                self._require_version_number(conn, pipeline, version)
            current = self._current_alias(conn, pipeline, alias)
            check_expected(current, expected, partial(alias_conflict, pipeline, alias))
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
                "at": db_time(at),
                "reason": reason,
                "actor": actor,
            }
            move = replace(move, id=self._insert(conn, alias_moves, values))
            if event is not None:
                self._insert(conn, events, event_columns(event))
        return move

    def get_alias(self, pipeline: str, alias: str) -> int | None:
        with self._tx(write=False) as conn:
            return self._current_alias(conn, pipeline, alias)

    def aliases(self, pipeline: str) -> dict[str, int]:
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

    def alias_history(
        self, pipeline: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasMove]:
        query = (
            sa.select(alias_moves)
            .where(alias_moves.c.pipeline == pipeline)
            .order_by(alias_moves.c.id.desc())
        )
        if alias is not None:
            query = query.where(alias_moves.c.alias == alias)
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._tx(write=False) as conn:
            found = [move_from(row._mapping) for row in conn.execute(query)]
        found.reverse()
        return found

    def alias_heads(
        self, alias: str, pipelines: Sequence[str] | None = None
    ) -> dict[str, AliasMove]:
        def query(where: Sequence[Any]) -> Any:
            last = (
                sa.select(sa.func.max(alias_moves.c.id))
                .where(alias_moves.c.alias == alias, *where)
                .group_by(alias_moves.c.pipeline)
            )
            return sa.select(alias_moves).where(alias_moves.c.id.in_(last))

        with self._tx(write=False) as conn:
            rows = _rows_of(conn, query, alias_moves.c.pipeline, pipelines)
            return {row.pipeline: move_from(row._mapping) for row in rows}

    def alias_at(self, pipeline: str, alias: str, at: datetime) -> int | None:
        query = (
            sa.select(alias_moves.c.version)
            .where(
                alias_moves.c.pipeline == pipeline,
                alias_moves.c.alias == alias,
                alias_moves.c.at <= db_time(at),
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
        record = normalized_monitor_record(record)
        event = None if event is None else normalized_event(event)
        with self._tx(write=True) as conn:
            self._require_pipeline(conn, record.pipeline)
            if record.version is not None:
                self._require_version_number(conn, record.pipeline, record.version)
            new_id = self._insert(conn, monitor_results, monitor_columns(record))
            if event is not None:
                self._insert(conn, events, event_columns(event))
        return replace(record, id=new_id)

    def list_monitor_results(
        self,
        pipeline: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[MonitorRecord]:
        query = (
            sa.select(monitor_results)
            .where(monitor_results.c.pipeline == pipeline)
            .order_by(monitor_results.c.window_end.desc(), monitor_results.c.id.desc())
        )
        if since is not None:
            query = query.where(monitor_results.c.window_start >= db_time(since))
        if until is not None:
            query = query.where(monitor_results.c.window_end <= db_time(until))
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._tx(write=False) as conn:
            found = [monitor_from(row._mapping) for row in conn.execute(query)]
        found.reverse()
        return found

    # -- state --

    def get_state(self, pipeline: str, key: str) -> tuple[dict[str, Any], int] | None:
        query = sa.select(pipeline_state.c.value, pipeline_state.c.revision).where(
            pipeline_state.c.pipeline == pipeline, pipeline_state.c.key == key
        )
        with self._tx(write=False) as conn:
            row = conn.execute(query).first()
        return None if row is None else (row._mapping["value"], row._mapping["revision"])

    def get_states(
        self, keys: Sequence[str], pipelines: Sequence[str] | None = None
    ) -> dict[str, dict[str, tuple[dict[str, Any], int]]]:
        def query(where: Sequence[Any]) -> Any:
            columns = (pipeline_state.c.pipeline, pipeline_state.c.key)
            return sa.select(*columns, pipeline_state.c.value, pipeline_state.c.revision).where(
                pipeline_state.c.key.in_(list(keys)), *where
            )

        out: dict[str, dict[str, tuple[dict[str, Any], int]]] = {}
        if not keys:
            return out
        with self._tx(write=False) as conn:
            for row in _rows_of(conn, query, pipeline_state.c.pipeline, pipelines):
                out.setdefault(row.pipeline, {})[row.key] = (row.value, row.revision)
        return out

    def put_state(
        self,
        pipeline: str,
        key: str,
        value: dict[str, Any],
        *,
        at: datetime,
        expected_revision: int | None = ANY,
        event: Event | None = None,
    ) -> int:
        check_state_key(key)
        value = json_dict(value, f"The value of state {key!r}")
        when = db_time(at)
        event = None if event is None else normalized_event(event)
        where = (pipeline_state.c.pipeline == pipeline, pipeline_state.c.key == key)
        with self._tx(write=True) as conn:
            # The pipeline's row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) serializes the
            # writers of its state, including two that both find the key missing.
            self._require_pipeline(conn, pipeline, lock=True)
            current = conn.scalar(sa.select(pipeline_state.c.revision).where(*where))
            check_expected(current, expected_revision, partial(state_conflict, pipeline, key))
            if event is not None:
                self._insert(conn, events, event_columns(event))
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
        query = sa.select(pipeline_state.c.key, pipeline_state.c.value).where(
            pipeline_state.c.pipeline == pipeline
        )
        with self._tx(write=False) as conn:
            rows = [(row._mapping["key"], row._mapping["value"]) for row in conn.execute(query)]
        # Sorted here, not by ORDER BY: PostgreSQL's collation may order keys differently.
        return dict(sorted(rows))

    # -- events --

    def append_event(self, event: Event) -> Event:
        event = normalized_event(event)
        with self._tx(write=True) as conn:
            new_id = self._insert(conn, events, event_columns(event))
        return replace(event, id=new_id)

    def list_events(
        self,
        pipeline: str | None = None,
        since: datetime | None = None,
        kinds: list[str] | None = None,
        limit: int | None = None,
        *,
        until: datetime | None = None,
        before: int | None = None,
    ) -> list[Event]:
        params: dict[str, Any] = {
            "pipeline": pipeline,
            "since": db_time(since),
            "until": db_time(until),
            "before": before,
            "limit": None if limit is None else max(limit, 0),
        }
        distinct = None if kinds is None else sorted(set(kinds))
        if distinct is not None:
            params.update({f"kind_{i}": kind for i, kind in enumerate(distinct)})
        query = _events_query(
            *(params[k] is not None for k in ("pipeline", "since", "until", "before", "limit")),
            kinds=None if distinct is None else len(distinct),
        )
        with self._tx(write=False) as conn:
            found = [event_from(row._mapping) for row in conn.execute(query, params)]
        found.reverse()
        return found

    # -- tokens --

    def add_token(self, token: TokenRecord, event: Event | None = None) -> TokenRecord:
        token = normalized_token(token)
        event = None if event is None else normalized_event(event)
        try:
            with self._tx(write=True) as conn:
                found = conn.execute(
                    sa.select(api_tokens.c.id).where(api_tokens.c.id == token.id)
                ).first()
                if found is not None:
                    raise token_exists(token.id)
                conn.execute(sa.insert(api_tokens).values(**token_columns(token)))
                if event is not None:
                    self._insert(conn, events, event_columns(event))
        except sa.exc.IntegrityError:
            # PostgreSQL: another process inserted the same id after our SELECT
            raise token_exists(token.id) from None
        return token

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return None if row is None else token_from(row._mapping)

    def list_tokens(self) -> list[TokenRecord]:
        query = sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        with self._tx(write=False) as conn:
            found = [token_from(row._mapping) for row in conn.execute(query)]
        # sorted here too: PostgreSQL's collation may order ids differently
        return sorted(found, key=lambda t: (t.created_at, t.id))

    def revoke_token(
        self, token_id: str, *, at: datetime, event: Event | None = None
    ) -> TokenRecord:
        at = as_utc(at)
        event = None if event is None else normalized_event(event)
        with self._tx(write=True) as conn:
            row = conn.execute(
                sa.select(api_tokens).where(api_tokens.c.id == token_id).with_for_update()
            ).first()
            if row is None:
                raise unknown_token(token_id, conn.scalars(sa.select(api_tokens.c.id)).all())
            token = token_from(row._mapping)
            if token.revoked_at is not None:
                return token
            conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(revoked_at=db_time(at))
            )
            if event is not None:
                self._insert(conn, events, event_columns(event))
        return replace(token, revoked_at=at)

    def mark_token_used(self, token_id: str, *, at: datetime, if_before: datetime) -> bool:
        # one guarded UPDATE: of several processes due at once, the first one writes
        update = (
            sa.update(api_tokens)
            .where(
                api_tokens.c.id == token_id,
                sa.or_(
                    api_tokens.c.last_used_at.is_(None),
                    api_tokens.c.last_used_at < db_time(if_before),
                ),
            )
            .values(last_used_at=db_time(at))
        )
        with self._tx(write=True) as conn:
            changed: bool = conn.execute(update).rowcount == 1
        return changed

    def close(self) -> None:
        self._engine.dispose()


_IN_CHUNK = 900  # names bound per IN (...): below SQLite's old limit of 999 parameters


def _rows_of(
    conn: sa.Connection,
    query: Callable[[Sequence[Any]], Any],
    column: sa.Column[Any],
    names: Sequence[str] | None,
) -> list[sa.Row[Any]]:
    """The rows of ``query(where)`` for every name (``None``: no filter), a chunk of names per
    statement, all in the caller's transaction."""
    if names is None:
        return list(conn.execute(query(())))
    unique = list(dict.fromkeys(names))
    chunks = [unique[i : i + _IN_CHUNK] for i in range(0, len(unique), _IN_CHUNK)]
    return [row for chunk in chunks for row in conn.execute(query((column.in_(chunk),)))]


@cache
def _events_query(
    pipeline: bool, since: bool, until: bool, before: bool, limit: bool, *, kinds: int | None
) -> sa.Select[Any]:
    """The statement of ``list_events`` for the filters given (True: given), built once.

    Its values are bound parameters (``:pipeline``, ``:kind_0``...): building a statement with
    subqueries costs more than running it.
    """
    where = []
    if pipeline:
        where.append(events.c.pipeline == sa.bindparam("pipeline"))
    if since:
        where.append(events.c.at >= sa.bindparam("since", type_=events.c.at.type))
    if until:
        where.append(events.c.at <= sa.bindparam("until", type_=events.c.at.type))
    if before:
        where.append(events.c.id < sa.bindparam("before"))
    if kinds is not None and kinds > 1 and limit:
        # The newest ``limit`` of each kind (each read in order from the (pipeline, kind, id)
        # or (kind, id) index), merged: at most limit x kinds rows are read whether the kinds
        # are common or rare. One ``kind IN (...)`` query either walks the pipeline's events
        # until ``limit`` match (slow for rare kinds) or sorts all that match (slow for common
        # ones); without statistics the planner cannot know which.
        newest = sa.union_all(
            *(
                sa.select(
                    sa.select(events)
                    .where(*where, events.c.kind == sa.bindparam(f"kind_{i}"))
                    .order_by(events.c.id.desc())
                    .limit(sa.bindparam("limit", type_=sa.Integer()))
                    .subquery()
                )
                for i in range(kinds)
            )
        ).subquery()
        return (
            sa.select(newest)
            .order_by(newest.c.id.desc())
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )
    query = sa.select(events).where(*where).order_by(events.c.id.desc())
    if kinds is not None:
        query = query.where(events.c.kind.in_([sa.bindparam(f"kind_{i}") for i in range(kinds)]))
    if limit:
        query = query.limit(sa.bindparam("limit", type_=sa.Integer()))
    return query


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
