"""Monitoring results and per-pipeline state.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-15

``monitor_results`` holds the figures of each monitoring window (drift, data quality, online
performance) with the version that was serving. ``pipeline_state`` is a small versioned
key/value store per pipeline (streaming detector state, trigger state): ``revision`` is the
compare-and-set counter. Only new tables: existing rows are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("window_end", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_results"),
        sa.ForeignKeyConstraint(
            ["pipeline"], ["pipelines.name"], name="fk_monitor_results_pipeline_pipelines"
        ),
        sa.ForeignKeyConstraint(
            ["pipeline", "version"],
            ["model_versions.pipeline", "model_versions.version"],
            name="fk_monitor_results_version_model_versions",
        ),
    )
    op.create_index(
        "ix_monitor_results_pipeline_window_end",
        "monitor_results",
        ["pipeline", "window_end", "id"],
    )

    op.create_table(
        "pipeline_state",
        sa.Column("pipeline", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "key", name="pk_pipeline_state"),
        sa.ForeignKeyConstraint(
            ["pipeline"], ["pipelines.name"], name="fk_pipeline_state_pipeline_pipelines"
        ),
    )


def downgrade() -> None:
    op.drop_table("pipeline_state")
    op.drop_index("ix_monitor_results_pipeline_window_end", table_name="monitor_results")
    op.drop_table("monitor_results")
