"""Drop blacklist_entries.reason: destructive, so it needs maintenance mode and a fresh backup.

Revision ID: dd0000000001
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "dd0000000001"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_column("blacklist_entries", "reason")


def downgrade():
    op.add_column("blacklist_entries", sa.Column("reason", sa.Text(), nullable=True))
