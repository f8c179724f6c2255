"""Index orders.status; the downgrade names an index that does not exist, so it raises.

Revision ID: d0d0d0d0d001
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "d0d0d0d0d001"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_orders_status", "orders", ["status"])


def downgrade():
    op.drop_index("ix_order_status", table_name="orders")  # typo: the index is ix_orders_status
