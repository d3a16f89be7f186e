"""Alembic environment for retrainer's metadata schema.

retrainer runs these migrations itself: ``SQLMetadataStore`` on open, and ``retrainer db
upgrade`` through :func:`retrainer.adapters.metadata.sql.upgrade_schema`. Both pass an open
connection, already inside a write transaction, as ``config.attributes["connection"]``, so the
revision check and the upgrade happen under one lock. Without a connection, alembic's usual
``sqlalchemy.url`` option is used; offline mode (``--sql``) prints the DDL for review.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context


def run_migrations() -> None:
    """Run the pending migrations on the connection (or URL) alembic was given."""
    config = context.config
    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "retrainer's migrations need a database: run `retrainer db upgrade` or call "
            "retrainer.adapters.metadata.upgrade_schema(url)."
        )
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, target_metadata=None)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


# pytest --doctest-modules imports every module of the package; alembic's ``context`` only has
# a ``config`` while alembic itself runs this file.
if getattr(context, "config", None) is not None:
    run_migrations()
