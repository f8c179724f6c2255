"""Create config_entries, config_changes and config_change_history; seed the default entries.

Revision ID: 9c4e1f2a3b54
Revises: 7a2d4e6b8c21
Create Date: 2025-10-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sandbox.codeblack.seed import seed_config

revision: str = "9c4e1f2a3b54"
down_revision: str | Sequence[str] | None = "7a2d4e6b8c21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "config_entries",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("critical", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("sensitive", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_config_entries"),
    )
    op.create_table(
        "config_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("config_key", sa.Text(), nullable=False),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("proposed_by", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'applied')", name="ck_config_changes_status"
        ),
        sa.ForeignKeyConstraint(
            ["config_key"], ["config_entries.key"], name="fk_config_changes_config_key_config_entries"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_config_changes"),
    )
    op.create_index("ix_config_changes_config_key", "config_changes", ["config_key"])
    op.create_index("ix_config_changes_status", "config_changes", ["status"])
    op.create_table(
        "config_change_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=True),
        sa.Column("config_key", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "action IN ('proposed', 'approved', 'rejected', 'applied', 'refused')",
            name="ck_config_change_history_action",
        ),
        sa.ForeignKeyConstraint(
            ["change_id"], ["config_changes.id"], name="fk_config_change_history_change_id_config_changes"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_config_change_history"),
    )
    op.create_index("ix_config_change_history_change_id", "config_change_history", ["change_id"])
    op.create_index("ix_config_change_history_created_at", "config_change_history", ["created_at"])
    seed_config(op)


def downgrade() -> None:
    op.drop_table("config_change_history")
    op.drop_table("config_changes")
    op.drop_table("config_entries")
