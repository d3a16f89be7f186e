"""The tables of the SQL metadata store, as SQLAlchemy Core sees them.

For queries only: the schema itself is created and changed by the Alembic migrations in
``adapters/metadata/migrations`` (a test compares the two).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

pipelines = sa.Table(
    "pipelines",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("definition_hash", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
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
    metadata,
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
    sa.Index("ix_runs_pipeline_id", "pipeline", "id"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
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
    metadata,
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
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("pipeline", sa.String(255), nullable=True),
    sa.Column("run_id", sa.Integer(), nullable=True),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("data", sa.JSON(), nullable=False),
    # every listing reads newest first by id, filtered by pipeline and/or kind (0004)
    sa.Index("ix_events_pipeline_kind_id", "pipeline", "kind", "id"),
    sa.Index("ix_events_pipeline_id", "pipeline", "id"),
    sa.Index("ix_events_kind_id", "kind", "id"),
    sa.Index("ix_events_at", "at"),
)

monitor_results = sa.Table(
    "monitor_results",
    metadata,
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
    metadata,
    sa.Column("pipeline", sa.String(255), sa.ForeignKey("pipelines.name"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.JSON(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("scopes", sa.JSON(), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("revoked_at", sa.DateTime(), nullable=True),
    sa.Column("last_used_at", sa.DateTime(), nullable=True),
)
