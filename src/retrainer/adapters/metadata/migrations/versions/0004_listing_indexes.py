"""Indexes for the dashboard's listings over a long history.

Revision ID: 0004
Revises: 0003
Create Date: 2024-08-01

Every listing reads the newest rows first (``ORDER BY id DESC LIMIT n``, ``id < cursor`` for
the next page), filtered by pipeline and/or kind. An index that ends in ``id`` gives those rows
in order, so a page reads about n index entries instead of sorting all the matching rows:
``events(pipeline, kind, id)`` (a pipeline's trigger evaluations, a rare kind of a pipeline),
``events(pipeline, id)`` and ``events(kind, id)`` (they replace the single-column indexes on
``pipeline`` and ``kind``, their prefixes), ``runs(pipeline, id)``. Only indexes: rows are
untouched. ``docs/benchmarks.md`` ("Metadata store queries at scale") has the measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_pipeline_kind_id", "events", ["pipeline", "kind", "id"])
    op.create_index("ix_events_pipeline_id", "events", ["pipeline", "id"])
    op.create_index("ix_events_kind_id", "events", ["kind", "id"])
    op.drop_index("ix_events_pipeline", table_name="events")
    op.drop_index("ix_events_kind", table_name="events")
    op.create_index("ix_runs_pipeline_id", "runs", ["pipeline", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_pipeline_id", table_name="runs")
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_index("ix_events_pipeline", "events", ["pipeline"])
    op.drop_index("ix_events_kind_id", table_name="events")
    op.drop_index("ix_events_pipeline_id", table_name="events")
    op.drop_index("ix_events_pipeline_kind_id", table_name="events")
