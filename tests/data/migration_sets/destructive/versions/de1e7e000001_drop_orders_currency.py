"""Drop orders.currency: every order loses its currency.

Revision ID: de1e7e000001
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "de1e7e000001"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_column("orders", "currency")


def downgrade():
    op.add_column("orders", sa.Column("currency", sa.Text(), server_default=sa.text("'EUR'"), nullable=False))
