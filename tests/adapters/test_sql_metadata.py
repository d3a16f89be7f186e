"""SQLMetadataStore on SQLite: journal mode, schema revisions, several processes at once.

The behaviour every metadata store shares is in ``test_metadata_contract.py``. The upgrade from
an older schema also runs on PostgreSQL when ``RETRAINER_TEST_PG_URL`` is set.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from retrainer.adapters import metadata as metadata_package
from retrainer.adapters.metadata import (
    InMemoryMetadataStore,
    SQLMetadataStore,
    open_metadata_store,
    upgrade_schema,
)
from retrainer.adapters.metadata.sql import MIGRATIONS_DIR, SCHEMA_HEAD, connection, migrate, schema
from retrainer.core.types import Event, MonitorRecord, Run, TokenRecord
from retrainer.errors import ConcurrencyError, ConfigError, SchemaVersionError, StorageError

T0 = datetime(2024, 5, 1, tzinfo=UTC)
TABLES = {"pipelines", "snapshots", "runs", "model_versions", "alias_moves", "events"}
TABLES |= {"monitor_results", "pipeline_state", "api_tokens", "alembic_version"}
PG_URL_VAR = "RETRAINER_TEST_PG_URL"
TOKEN = TokenRecord(
    id="0123456789ab", name="app", scopes=("predict",), secret_sha256="0" * 64, created_at=T0
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "meta" / "retrainer.db"


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def raw_query(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def stamp(path: Path, revision: str) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    finally:
        conn.close()


@pytest.fixture
def store(db: Path) -> Iterator[SQLMetadataStore]:
    opened = SQLMetadataStore(url_of(db))
    yield opened
    opened.close()


# -- SQLite setup -----------------------------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_foreign_keys(store: SQLMetadataStore, db: Path) -> None:
    assert raw_query(db, "PRAGMA journal_mode") == [("wal",)]
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_a_held_write_lock_gives_concurrency_error_naming_the_file(db: Path) -> None:
    store = SQLMetadataStore(url_of(db), busy_timeout_s=0.2)
    store.ensure_pipeline("churn", "h", T0)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(ConcurrencyError, match=str(db.resolve())):
            store.ensure_pipeline("other", "h", T0)
        # WAL: readers are not blocked by the writer
        assert [p.name for p in store.list_pipelines()] == ["churn"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.ensure_pipeline("other", "h", T0)
    assert [p.name for p in store.list_pipelines()] == ["churn", "other"]
    store.close()


def test_in_memory_sqlite_is_one_database_shared_by_threads() -> None:
    with SQLMetadataStore("sqlite://") as store:
        store.ensure_pipeline("churn", "h", T0)
        assert [p.name for p in store.list_pipelines()] == ["churn"]


# -- schema revisions -------------------------------------------------------------------------


def test_a_fresh_database_is_migrated_to_head(store: SQLMetadataStore, db: Path) -> None:
    assert raw_query(db, "SELECT version_num FROM alembic_version") == [(SCHEMA_HEAD,)]
    names = {row[0] for row in raw_query(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == TABLES


def test_schema_head_is_the_head_of_the_shipped_migrations() -> None:
    assert Path(metadata_package.__file__).parent / "migrations" == MIGRATIONS_DIR
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == SCHEMA_HEAD


def test_the_migrations_build_the_schema_the_store_queries(store: SQLMetadataStore) -> None:
    with store._engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert diff == []


@pytest.mark.parametrize("auto_migrate", [True, False])
def test_a_revision_from_a_newer_retrainer_is_refused(db: Path, auto_migrate: bool) -> None:
    SQLMetadataStore(url_of(db)).close()
    stamp(db, "9999_from_the_future")
    with pytest.raises(SchemaVersionError) as caught:
        SQLMetadataStore(url_of(db), auto_migrate=auto_migrate)
    message = str(caught.value)
    assert "'9999_from_the_future'" in message
    assert repr(SCHEMA_HEAD) in message
    assert "Upgrade retrainer" in message
    with pytest.raises(SchemaVersionError, match="9999_from_the_future"):
        upgrade_schema(url_of(db))
    assert raw_query(db, "SELECT version_num FROM alembic_version") == [("9999_from_the_future",)]


def test_an_empty_schema_is_refused_without_auto_migrate_until_upgraded(db: Path) -> None:
    with pytest.raises(SchemaVersionError) as caught:
        SQLMetadataStore(url_of(db), auto_migrate=False)
    message = str(caught.value)
    assert "retrainer db upgrade" in message
    assert repr(SCHEMA_HEAD) in message
    assert "empty" in message
    assert raw_query(db, "SELECT name FROM sqlite_master WHERE type='table'") == []

    assert upgrade_schema(url_of(db)) == (None, SCHEMA_HEAD)
    assert upgrade_schema(url_of(db)) == (SCHEMA_HEAD, SCHEMA_HEAD)
    with SQLMetadataStore(url_of(db), auto_migrate=False) as store:
        assert store.list_pipelines() == []


def test_an_old_schema_is_refused_without_auto_migrate(db: Path) -> None:
    SQLMetadataStore(url_of(db)).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM alembic_version")  # as if written before any migration
    conn.close()
    with pytest.raises(SchemaVersionError, match="retrainer db upgrade"):
        SQLMetadataStore(url_of(db), auto_migrate=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, db: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        yield url_of(db)
        return
    url = os.environ.get(PG_URL_VAR)
    if not url:
        pytest.skip(f"set {PG_URL_VAR}=postgresql+psycopg://user@host/db to run on PostgreSQL")
    schema = f"rt_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def revision_of(store: SQLMetadataStore) -> str | None:
    with store._engine.connect() as conn:
        return migrate.current_revision(conn)


def open_at_0001(url: str, monkeypatch: pytest.MonkeyPatch) -> SQLMetadataStore:
    """The store as the release before 0002 left it: migrated only up to revision 0001."""
    monkeypatch.setattr(migrate, "SCHEMA_HEAD", "0001")
    store = SQLMetadataStore(url)
    assert revision_of(store) == "0001"
    return store


def test_a_0001_database_upgrades_with_its_data(
    any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_at_0001(any_url, monkeypatch) as old:
        old.ensure_pipeline("churn", "h", T0)
        old.create_run(Run(key="k1", pipeline="churn", cause="cron", created_at=T0))
        versions = [_register(old) for _ in range(2)]
        old.move_alias("churn", "champion", versions[1], at=T0, reason="r", actor="a")
        old.append_event(Event(kind="note", at=T0, message="hello", pipeline="churn"))
        before = (
            old.list_pipelines(),
            old.list_runs(),
            old.list_versions("churn"),
            old.alias_history("churn"),
            old.list_events(),
        )
    monkeypatch.undo()

    with pytest.raises(SchemaVersionError, match="'0001'"):
        SQLMetadataStore(any_url, auto_migrate=False)
    with SQLMetadataStore(any_url) as store:
        assert revision_of(store) == SCHEMA_HEAD
        after = (
            store.list_pipelines(),
            store.list_runs(),
            store.list_versions("churn"),
            store.alias_history("churn"),
            store.list_events(),
        )
        assert after == before
        with store._engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
        record = MonitorRecord(
            pipeline="churn",
            version=versions[1],
            window_start=T0,
            window_end=T0 + timedelta(hours=1),
            created_at=T0 + timedelta(hours=1),
            drifted=False,
            summary={"psi": 0.01},
        )
        added = store.add_monitor_result(record)
        assert store.list_monitor_results("churn") == [added]
        assert store.put_state("churn", "ddm", {"n": 1}, at=T0, expected_revision=None) == 1
        assert store.get_state("churn", "ddm") == ({"n": 1}, 1)
        token = store.add_token(TOKEN)
        assert store.get_token(TOKEN.id) == token


def test_a_0002_database_upgrades_with_its_data_and_gets_tokens(
    any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the release before API tokens: its databases are at 0002
    monkeypatch.setattr(migrate, "SCHEMA_HEAD", "0002")
    with SQLMetadataStore(any_url) as old:
        assert revision_of(old) == "0002"
        old.ensure_pipeline("churn", "h", T0)
        old.create_run(Run(key="k1", pipeline="churn", cause="cron", created_at=T0))
        version = _register(old)
        old.move_alias("churn", "champion", version, at=T0, reason="r", actor="a")
        old.put_state("churn", "ddm", {"n": 3}, at=T0)
        old.append_event(Event(kind="run.requested", at=T0, message="hello", pipeline="churn"))
        before = (
            old.list_pipelines(),
            old.list_runs(),
            old.list_versions("churn"),
            old.alias_history("churn"),
            old.list_state("churn"),
            old.list_events(),
        )
    monkeypatch.undo()

    with pytest.raises(SchemaVersionError, match=r"'0002'.*retrainer db upgrade"):
        SQLMetadataStore(any_url, auto_migrate=False)
    assert upgrade_schema(any_url) == ("0002", SCHEMA_HEAD)
    with SQLMetadataStore(any_url, auto_migrate=False) as store:
        after = (
            store.list_pipelines(),
            store.list_runs(),
            store.list_versions("churn"),
            store.alias_history("churn"),
            store.list_state("churn"),
            store.list_events(),
        )
        assert after == before
        assert store.list_tokens() == []
        token = store.add_token(TOKEN)
        assert store.list_tokens() == [token]
        with store._engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []


def test_0003_downgrades_to_0002_and_upgrades_again(db: Path) -> None:
    with SQLMetadataStore(url_of(db)) as store:
        store.add_token(TOKEN)
        with connection.transaction(store._engine, "test", 5.0, write=True) as conn:
            command.downgrade(migrate.alembic_config(conn), "0002")
    names = {row[0] for row in raw_query(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == TABLES - {"api_tokens"}
    assert upgrade_schema(url_of(db)) == ("0002", SCHEMA_HEAD)
    with SQLMetadataStore(url_of(db), auto_migrate=False) as store:
        assert store.list_tokens() == []


def test_nan_an_older_release_wrote_reads_under_the_new_rule(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before 0002 the SQLite store wrote NaN and infinities as bare (non-JSON) tokens.
    with open_at_0001(url_of(db), monkeypatch) as old:
        old.ensure_pipeline("churn", "h", T0)
        run, _ = old.create_run(Run(key="k1", pipeline="churn", cause="cron", created_at=T0))
    monkeypatch.undo()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE runs SET metrics = ?, params = ?",
            ('{"auc": NaN, "acc": 0.5}', '{"alpha": NaN, "grid": [Infinity, -Infinity]}'),
        )
    conn.close()
    with SQLMetadataStore(url_of(db)) as store:
        got = store.get_run(run.id or 0)
    assert math.isnan(got.metrics["auc"])
    assert got.metrics["acc"] == 0.5
    assert got.params == {"alpha": None, "grid": [None, None]}


def test_0002_downgrades_to_0001_and_upgrades_again(db: Path) -> None:
    with SQLMetadataStore(url_of(db)) as store:
        store.ensure_pipeline("churn", "h", T0)
        store.put_state("churn", "ddm", {"n": 1}, at=T0)
        with connection.transaction(store._engine, "test", 5.0, write=True) as conn:
            command.downgrade(migrate.alembic_config(conn), "0001")
    names = {row[0] for row in raw_query(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == TABLES - {"monitor_results", "pipeline_state", "api_tokens"}
    assert upgrade_schema(url_of(db)) == ("0001", SCHEMA_HEAD)
    with SQLMetadataStore(url_of(db), auto_migrate=False) as store:
        assert [p.name for p in store.list_pipelines()] == ["churn"]
        assert store.list_state("churn") == {}


LISTING_INDEXES = {
    "events": {
        "ix_events_pipeline_kind_id": ["pipeline", "kind", "id"],
        "ix_events_pipeline_id": ["pipeline", "id"],
        "ix_events_kind_id": ["kind", "id"],
        "ix_events_at": ["at"],
    },
    "runs": {
        "ix_runs_key": ["key"],
        "ix_runs_pipeline_status": ["pipeline", "status"],
        "ix_runs_pipeline_id": ["pipeline", "id"],
    },
}


def indexes_of(url: str, table: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {i["name"]: i["column_names"] for i in sa.inspect(conn).get_indexes(table)}
    finally:
        engine.dispose()


def test_a_0003_database_upgrades_with_its_data_and_gets_the_listing_indexes(
    any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the release before the dashboard: its databases are at 0003
    monkeypatch.setattr(migrate, "SCHEMA_HEAD", "0003")
    with SQLMetadataStore(any_url) as old:
        assert revision_of(old) == "0003"
        old.ensure_pipeline("churn", "h", T0)
        for i in range(3):
            old.create_run(Run(key=f"k{i}", pipeline="churn", cause="cron", created_at=T0))
            old.append_event(Event(kind="run.requested", at=T0, message="m", pipeline="churn"))
        old.add_token(TOKEN)
        before = (old.list_runs(), old.list_events(), old.list_tokens())
    monkeypatch.undo()
    assert "ix_events_pipeline_kind_id" not in indexes_of(any_url, "events")

    with pytest.raises(SchemaVersionError, match=r"'0003'.*retrainer db upgrade"):
        SQLMetadataStore(any_url, auto_migrate=False)
    assert upgrade_schema(any_url) == ("0003", SCHEMA_HEAD)
    assert {t: indexes_of(any_url, t) for t in LISTING_INDEXES} == LISTING_INDEXES
    with SQLMetadataStore(any_url, auto_migrate=False) as store:
        assert (store.list_runs(), store.list_events(), store.list_tokens()) == before
        runs, events = before[0], before[1]
        assert store.list_runs("churn", before=runs[0].id) == runs[1:]
        assert store.list_events(
            "churn", kinds=["run.requested"], limit=1, before=events[-1].id
        ) == ([events[1]])
        with store._engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []


def test_0004_downgrades_to_0003_and_upgrades_again(any_url: str) -> None:
    with SQLMetadataStore(any_url) as store:
        store.append_event(Event(kind="run.requested", at=T0, message="m", pipeline="churn"))
        with connection.transaction(store._engine, "test", 5.0, write=True) as conn:
            command.downgrade(migrate.alembic_config(conn), "0003")
    assert indexes_of(any_url, "events") == {
        "ix_events_pipeline": ["pipeline"],
        "ix_events_kind": ["kind"],
        "ix_events_at": ["at"],
    }
    assert "ix_runs_pipeline_id" not in indexes_of(any_url, "runs")
    assert upgrade_schema(any_url) == ("0003", SCHEMA_HEAD)
    assert {t: indexes_of(any_url, t) for t in LISTING_INDEXES} == LISTING_INDEXES
    with SQLMetadataStore(any_url, auto_migrate=False) as store:
        assert [e.message for e in store.list_events(pipeline="churn")] == ["m"]


def sqlite_plans(store: SQLMetadataStore, call: Callable[[], object]) -> list[str]:
    """SQLite's plan of each SELECT ``call`` runs."""
    seen: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    sa.event.listen(store._engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", capture)
    with store._engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        return [
            " ; ".join(row[-1] for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in seen
        ]


@pytest.mark.parametrize(
    ("call", "index"),
    [
        (
            lambda s: s.list_events("churn", kinds=["trigger.fired", "trigger.evaluated"], limit=5),
            "ix_events_pipeline_kind_id",
        ),
        (
            lambda s: s.list_events("churn", kinds=["model.promoted"], limit=50, before=9),
            "ix_events_pipeline_kind_id",
        ),
        (lambda s: s.list_events("churn", limit=50, before=9), "ix_events_pipeline_id"),
        (lambda s: s.list_events(kinds=["model.promoted"], limit=50), "ix_events_kind_id"),
        (lambda s: s.list_events(kinds=["a", "b"], limit=50), "ix_events_kind_id"),
        (lambda s: s.list_runs("churn", limit=20, before=9), "ix_runs_pipeline_id"),
    ],
)
def test_listings_read_the_newest_rows_in_index_order(
    store: SQLMetadataStore, call: Callable[[SQLMetadataStore], object], index: str
) -> None:
    # never a scan of the table, never a sort of every matching row: a page reads about
    # ``limit`` index entries (per kind, merged), however long the history
    [plan] = sqlite_plans(store, lambda: call(store))
    steps = [step.strip() for step in plan.split(" ; ")]
    reads = [step for step in steps if step.startswith(("SCAN", "SEARCH")) and "anon" not in step]
    assert reads and all(f"USING INDEX {index} " in step for step in reads), plan
    if "UNION" not in plan:
        assert "TEMP B-TREE" not in plan


def test_the_engine_refuses_nan_that_slipped_past_normalization(store: SQLMetadataStore) -> None:
    # Every store method nulls non-finite floats first; the engine is the backstop, so that
    # SQLite fails where PostgreSQL's json type would.
    insert = sa.insert(schema.events).values(
        kind="k", at=datetime(2024, 5, 1), message="m", data={"x": math.nan}
    )
    with pytest.raises(sa.exc.StatementError, match="JSON compliant"), store._engine.begin() as c:
        c.execute(insert)
    assert store.list_events() == []


def test_opening_a_current_schema_does_not_run_alembic(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLMetadataStore(url_of(db)).close()
    import alembic.command

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("alembic.command.upgrade ran on a current schema")

    monkeypatch.setattr(alembic.command, "upgrade", refuse)
    with SQLMetadataStore(url_of(db), auto_migrate=False) as store:
        assert store.list_pipelines() == []


# -- opening ----------------------------------------------------------------------------------


def test_open_metadata_store_picks_the_adapter(db: Path) -> None:
    assert isinstance(open_metadata_store("memory://"), InMemoryMetadataStore)
    nested = db.parent / "a" / "b" / "retrainer.db"
    store = open_metadata_store(url_of(nested))
    assert isinstance(store, SQLMetadataStore)
    assert nested.is_file()
    store.close()


@pytest.mark.parametrize("url", ["not a url", "memory", ""])
def test_a_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="memory://"):
        open_metadata_store(url)


# -- several processes ------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from retrainer.adapters.metadata.sql import SQLMetadataStore
    from retrainer.core.types import CodeVersion, ModelVersion, Snapshot, Verdict
    from retrainer.errors import ConcurrencyError

    url, mode, arg = sys.argv[1], sys.argv[2], int(sys.argv[3])
    extra = sys.argv[4:]
    now = datetime(2024, 5, 1, tzinfo=UTC)
    store = SQLMetadataStore(url)
    if mode == "register":
        store.ensure_pipeline("churn", "h", now)
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "register":
        snap = Snapshot(
            pipeline="churn", source="s", window_start=None, window_end=None, min_time=None,
            max_time=None, rows=1, schema={}, fingerprint="f", created_at=now,
        )
        draft = ModelVersion(
            pipeline="churn", version=0, created_at=now, run_id=None, artifact_sha256="0" * 64,
            artifact_size=1, artifact_format="skops", metrics={}, params={}, snapshot=snap,
            code=CodeVersion(pipeline_hash="h"), environment={},
            blessing=Verdict(passed=True, evidence=()),
        )
        got = [store.register_version(draft).version for _ in range(arg)]
    elif mode == "state":
        expected = None if extra[0] == "none" else int(extra[0])
        try:
            got = store.put_state(
                "churn", "ddm", {"writer": arg}, at=now, expected_revision=expected
            )
        except ConcurrencyError:
            got = "lost"
    else:
        try:
            store.move_alias(
                "churn", "champion", arg, at=now, reason="race", actor=f"w{arg}", expected=None
            )
            got = "won"
        except ConcurrencyError:
            got = "lost"
    store.close()
    print(json.dumps(got), flush=True)
    """
)


def run_workers(url: str, mode: str, args: list[int], *extra: str) -> list[object]:
    """Start one process per arg, let each open the store, then release them all at once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, mode, str(arg), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for arg in args
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.communicate(timeout=30)[1]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_url_without_its_driver_is_a_config_error_naming_the_url() -> None:
    # "postgres://" is the Heroku-style scheme SQLAlchemy has no dialect for
    with pytest.raises(ConfigError, match=r"'postgres://localhost:1/db': no database driver"):
        open_metadata_store("postgres://localhost:1/db")


def test_a_database_that_cannot_be_reached_is_a_storage_error_without_the_password() -> None:
    # nothing listens on port 1: the connection is refused at once
    with pytest.raises(
        StorageError, match=r"cannot open the metadata database .*localhost:1"
    ) as info:
        open_metadata_store("postgresql+psycopg://user:secret@localhost:1/db")
    assert "secret" not in str(info.value)
    assert "\n" not in str(info.value)


def test_a_sqlite_folder_that_cannot_be_made_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create the folder of the metadata database"):
        open_metadata_store(f"sqlite:///{blocker}/sub/retrainer.db")


def test_processes_registering_at_once_get_distinct_versions(db: Path) -> None:
    # The workers also open the fresh database at the same time: one of them migrates it.
    results = run_workers(url_of(db), "register", [15, 15, 15, 15])
    got = [v for result in results for v in result]  # type: ignore[attr-defined]
    assert sorted(got) == list(range(1, 61))
    assert raw_query(db, "SELECT version_num FROM alembic_version") == [(SCHEMA_HEAD,)]
    with SQLMetadataStore(url_of(db)) as store:
        assert [v.version for v in store.list_versions("churn")] == list(range(1, 61))


def test_a_compare_and_set_race_has_exactly_one_winner(store: SQLMetadataStore) -> None:
    store.ensure_pipeline("churn", "h", T0)
    versions = [_register(store) for _ in range(4)]
    results = run_workers(store.url, "race", versions)
    assert sorted(results) == ["lost"] * 3 + ["won"]  # type: ignore[type-var]
    [move] = store.alias_history("churn")
    assert move.previous is None
    assert move.version == versions[results.index("won")]
    assert move.actor == f"w{move.version}"


@pytest.mark.parametrize("expected", [None, 2])
def test_a_put_state_race_between_processes_has_exactly_one_winner(
    store: SQLMetadataStore, expected: int | None
) -> None:
    store.ensure_pipeline("churn", "h", T0)
    if expected is not None:
        for n in range(expected):
            store.put_state("churn", "ddm", {"writer": None, "n": n}, at=T0)
    writers = [1, 2, 3, 4]
    results = run_workers(store.url, "state", writers, str(expected).lower())
    new_revision = (expected or 0) + 1
    assert sorted(results, key=str) == [new_revision, "lost", "lost", "lost"]
    winner = writers[results.index(new_revision)]
    assert store.get_state("churn", "ddm") == ({"writer": winner}, new_revision)


def _register(store: SQLMetadataStore) -> int:
    from retrainer.core.types import CodeVersion, ModelVersion, Snapshot, Verdict

    snap = Snapshot(
        pipeline="churn",
        source="s",
        window_start=None,
        window_end=None,
        min_time=None,
        max_time=None,
        rows=1,
        schema={},
        fingerprint="f",
        created_at=T0,
    )
    draft = ModelVersion(
        pipeline="churn",
        version=0,
        created_at=T0,
        run_id=None,
        artifact_sha256="0" * 64,
        artifact_size=1,
        artifact_format="skops",
        metrics={},
        params={},
        snapshot=snap,
        code=CodeVersion(pipeline_hash="h"),
        environment={},
        blessing=Verdict(passed=True, evidence=()),
    )
    return store.register_version(draft).version
