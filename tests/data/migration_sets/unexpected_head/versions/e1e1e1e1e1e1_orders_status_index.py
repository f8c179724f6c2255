"""A new revision on top of the reviewed head that drill.toml does not expect yet.

Revision ID: e1e1e1e1e1e1
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "e1e1e1e1e1e1"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_orders_status", "orders", ["status"])


def downgrade():
    op.drop_index("ix_orders_status", table_name="orders")
