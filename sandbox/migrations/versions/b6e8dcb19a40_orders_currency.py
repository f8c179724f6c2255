"""Add orders.currency with a constant server default.

Non-destructive and reversible: on PostgreSQL 11+ a constant default is stored in the catalogue, so adding
the NOT NULL column does not rewrite the table and existing orders read as EUR.

Revision ID: b6e8dcb19a40
Revises: d2a7c3e9f165
Create Date: 2025-11-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b6e8dcb19a40"
down_revision: str | Sequence[str] | None = "d2a7c3e9f165"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("currency", sa.Text(), server_default=sa.text("'EUR'"), nullable=False))


def downgrade() -> None:
    op.drop_column("orders", "currency")
