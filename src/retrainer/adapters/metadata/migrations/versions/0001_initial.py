"""The initial metadata schema: pipelines, snapshots, runs, model versions, alias moves, events.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

Datetimes are naive UTC (``sa.DateTime``); dicts are ``sa.JSON``. Only portable types, so the
same migration runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("definition_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_pipelines"),
    )

    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(255), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=True),
        sa.Column("window_end", sa.DateTime(), nullable=True),
        sa.Column("min_time", sa.DateTime(), nullable=True),
        sa.Column("max_time", sa.DateTime(), nullable=True),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("data_schema", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
        sa.ForeignKeyConstraint(
            ["pipeline"], ["pipelines.name"], name="fk_snapshots_pipeline_pipelines"
        ),
    )
    op.create_index("ix_snapshots_pipeline", "snapshots", ["pipeline"])

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("pipeline", sa.String(255), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["pipeline"], ["pipelines.name"], name="fk_runs_pipeline_pipelines"
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name="fk_runs_snapshot_id_snapshots"
        ),
    )
    op.create_index("ix_runs_key", "runs", ["key"], unique=True)
    op.create_index("ix_runs_pipeline_status", "runs", ["pipeline", "status"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger(), nullable=False),
        sa.Column("artifact_format", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("code_pipeline_hash", sa.String(128), nullable=False),
        sa.Column("code_git_commit", sa.String(64), nullable=True),
        sa.Column("code_git_dirty", sa.Boolean(), nullable=True),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.Column("blessed", sa.Boolean(), nullable=False),
        sa.Column("blessing_reason", sa.Text(), nullable=False),
        sa.Column("blessing_champion_version", sa.Integer(), nullable=True),
        sa.Column("blessing_evidence", sa.JSON(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("pipeline", "version", name="uq_model_versions_pipeline_version"),
        sa.ForeignKeyConstraint(
            ["pipeline"], ["pipelines.name"], name="fk_model_versions_pipeline_pipelines"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_model_versions_run_id_runs"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name="fk_model_versions_snapshot_id_snapshots"
        ),
    )
    op.create_index("ix_model_versions_artifact_sha256", "model_versions", ["artifact_sha256"])

    op.create_table(
        "alias_moves",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("previous", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alias_moves"),
        sa.ForeignKeyConstraint(
            ["pipeline"], ["pipelines.name"], name="fk_alias_moves_pipeline_pipelines"
        ),
        sa.ForeignKeyConstraint(
            ["pipeline", "version"],
            ["model_versions.pipeline", "model_versions.version"],
            name="fk_alias_moves_version_model_versions",
        ),
    )
    op.create_index("ix_alias_moves_pipeline_alias", "alias_moves", ["pipeline", "alias", "id"])

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("pipeline", sa.String(255), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_pipeline", "events", ["pipeline"])
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_index("ix_events_at", "events", ["at"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("alias_moves")
    op.drop_table("model_versions")
    op.drop_table("runs")
    op.drop_table("snapshots")
    op.drop_table("pipelines")
