"""A migration moved into a subdirectory, which Alembic never loads.

Revision ID: f00d00000001
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "f00d00000001"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("note", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("orders", "note")
