"""Index orders.status concurrently: writes keep flowing while the index builds.

Revision ID: 5afe00000001
Revises: b6e8dcb19a40
"""

from alembic import op

revision = "5afe00000001"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index("ix_orders_status", "orders", ["status"], postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index("ix_orders_status", table_name="orders", postgresql_concurrently=True)
