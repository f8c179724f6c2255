"""Add orders.channel NOT NULL without a default: passes on an empty database, fails on production's orders.

Revision ID: dd0000000002
Revises: dd0000000001
"""

import sqlalchemy as sa
from alembic import op

revision = "dd0000000002"
down_revision = "dd0000000001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("channel", sa.Text(), nullable=False))


def downgrade():
    op.drop_column("orders", "channel")
