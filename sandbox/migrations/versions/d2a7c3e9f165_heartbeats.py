"""Create heartbeats and its beat_at index.

The app writes a row every few seconds, so the newest beat in a restored dump shows how much time the backup
lost (the drill's RPO evidence).

Revision ID: d2a7c3e9f165
Revises: 9c4e1f2a3b54
Create Date: 2025-10-20 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d2a7c3e9f165"
down_revision: str | Sequence[str] | None = "9c4e1f2a3b54"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_heartbeats"),
    )
    op.create_index("ix_heartbeats_beat_at", "heartbeats", ["beat_at"])


def downgrade() -> None:
    op.drop_table("heartbeats")
