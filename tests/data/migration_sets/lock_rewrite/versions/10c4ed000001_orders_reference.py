"""Add orders.reference with a volatile default: PostgreSQL rewrites the whole table under ACCESS EXCLUSIVE.

Revision ID: 10c4ed000001
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "10c4ed000001"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("reference", sa.Text(), server_default=sa.text("gen_random_uuid()::text")))


def downgrade():
    op.drop_column("orders", "reference")
