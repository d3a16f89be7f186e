"""Schema revisions: check the database's revision on open, upgrade it with Alembic.

The migration scripts stay in ``adapters/metadata/migrations`` (:data:`MIGRATIONS_DIR`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from retrainer.adapters.metadata.sql.connection import (
    create_engine,
    database_label,
    make_parent_folder,
    parse_url,
    transaction,
)
from retrainer.errors import SchemaVersionError

if TYPE_CHECKING:
    from alembic.config import Config

SCHEMA_HEAD = "0004"
"""The newest schema revision this version of retrainer knows (the head of ``migrations/``)."""

MIGRATIONS_DIR = Path(__file__).parents[1] / "migrations"

_MIGRATION_LOCK_KEY = 7_301_154_882  # pg_advisory_xact_lock key: one migrator at a time


def current_revision(conn: sa.Connection) -> str | None:
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


def check_revision(current: str | None, label: str, *, auto_migrate: bool) -> bool:
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


def alembic_config(conn: sa.Connection | None) -> Config:
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolates '%': a path containing one must be escaped.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def migrate(
    engine: sa.Engine, label: str, busy_timeout_s: float, *, auto_migrate: bool
) -> tuple[str | None, str]:
    """Bring the schema to ``SCHEMA_HEAD``; return (revision before, revision after)."""
    # Fast path: a read transaction and one SELECT when the schema is already current.
    with transaction(engine, label, busy_timeout_s, write=False) as conn:
        before = current_revision(conn)
    if not check_revision(before, label, auto_migrate=auto_migrate):
        return before, SCHEMA_HEAD

    from alembic import command
    from alembic.script import ScriptDirectory

    # Import alembic and read the migration scripts before taking the write lock, so the lock
    # is held only for the DDL itself (other processes opening the database wait on it).
    ScriptDirectory.from_config(alembic_config(None)).get_revisions("heads")
    with transaction(engine, label, busy_timeout_s, write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        # Another process may have migrated while we waited for the write lock: look again.
        before = current_revision(conn)
        if check_revision(before, label, auto_migrate=auto_migrate):
            command.upgrade(alembic_config(conn), SCHEMA_HEAD)
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
    (None, '0004')
    """
    parsed = parse_url(url)
    make_parent_folder(parsed)
    engine = create_engine(parsed, busy_timeout_s)
    try:
        return migrate(engine, database_label(parsed), busy_timeout_s, auto_migrate=True)
    finally:
        engine.dispose()
