"""Narrow applications.status from text to varchar(16): longer statuses are refused.

Revision ID: de1e7e000002
Revises: de1e7e000001
"""

import sqlalchemy as sa
from alembic import op

revision = "de1e7e000002"
down_revision = "de1e7e000001"
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column("applications", "status", type_=sa.String(16), existing_type=sa.Text())


def downgrade():
    op.alter_column("applications", "status", type_=sa.Text(), existing_type=sa.String(16))
