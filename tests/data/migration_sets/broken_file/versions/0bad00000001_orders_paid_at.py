"""A migration whose import fails (a module that was renamed)."""

from sandbox.codeblack.no_such_module import helper  # noqa: F401

revision = "0bad00000001"
down_revision = "b6e8dcb19a40"


def upgrade():
    pass


def downgrade():
    pass
