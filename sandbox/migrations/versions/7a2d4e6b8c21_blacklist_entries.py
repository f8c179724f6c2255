"""Create blacklist_entries.

Revision ID: 7a2d4e6b8c21
Revises: 3f1c2a9d7b10
Create Date: 2025-09-15 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7a2d4e6b8c21"
down_revision: str | Sequence[str] | None = "3f1c2a9d7b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blacklist_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('email', 'phone', 'device')", name="ck_blacklist_entries_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_blacklist_entries"),
        sa.UniqueConstraint("kind", "value", name="uq_blacklist_entries_kind_value"),
    )


def downgrade() -> None:
    op.drop_table("blacklist_entries")
