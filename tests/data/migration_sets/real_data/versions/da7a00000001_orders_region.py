"""Add orders.region NOT NULL without a default: fine on an empty table, fails on existing orders.

Revision ID: da7a00000001
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "da7a00000001"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("region", sa.Text(), nullable=False))


def downgrade():
    op.drop_column("orders", "region")
