"""Create review_marks; the downgrade does nothing.

Revision ID: d0d0d0d0d002
Revises: b6e8dcb19a40
"""

import sqlalchemy as sa
from alembic import op

revision = "d0d0d0d0d002"
down_revision = "b6e8dcb19a40"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("review_marks", sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True))


def downgrade():
    pass
