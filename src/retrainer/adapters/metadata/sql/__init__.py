"""The SQL metadata store: SQLite on one machine, PostgreSQL at scale, one code path.

The package: ``schema`` (the tables), ``rows`` (records to rows and back), ``connection``
(URLs, engines, transactions), ``migrate`` (schema revisions, Alembic) and ``store`` (the
class).

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

from retrainer.adapters.metadata.sql.migrate import MIGRATIONS_DIR, SCHEMA_HEAD, upgrade_schema
from retrainer.adapters.metadata.sql.store import SQLMetadataStore, open_metadata_store

__all__ = [
    "MIGRATIONS_DIR",
    "SCHEMA_HEAD",
    "SQLMetadataStore",
    "open_metadata_store",
    "upgrade_schema",
]
