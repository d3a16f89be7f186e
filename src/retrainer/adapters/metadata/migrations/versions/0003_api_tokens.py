"""API tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2024-07-01

``api_tokens`` holds the bearer tokens of the HTTP API: an id (the public part of the token),
a name, the scopes, and the sha256 of the secret (never the secret itself), with when it was
made, revoked and last used. The primary key on ``id`` is the one lookup a request makes. Only
a new table: existing rows are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
