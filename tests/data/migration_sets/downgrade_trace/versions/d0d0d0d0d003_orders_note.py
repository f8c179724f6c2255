"""Add orders.note and a check on amount; the downgrade forgets the check constraint.

Revision ID: d0d0d0d0d003
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "d0d0d0d0d003"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("note", sa.Text(), nullable=True))
    op.create_check_constraint("amount_positive", "orders", "amount > 0")


def downgrade():
    op.drop_column("orders", "note")
