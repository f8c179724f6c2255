"""A second branch off d2a7c3e9f165, written while b6e8dcb19a40 was being written: two heads.

Revision ID: c0ffee000001
Revises: d2a7c3e9f165
"""

import sqlalchemy as sa
from alembic import op

revision = "c0ffee000001"
down_revision = "d2a7c3e9f165"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_heartbeats_source", "heartbeats", ["source"])


def downgrade():
    op.drop_index("ix_heartbeats_source", table_name="heartbeats")
