"""Where the migrations live and which revision is their head.

The deep health check compares the database's ``alembic_version`` with the head of the scripts shipped with
the code, and the harness and tests run the same scripts; locating them in one place keeps those three in
agreement and independent of the current working directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

__all__ = ["ALEMBIC_INI", "EXPECTED_HEAD", "MIGRATIONS_DIR", "alembic_config", "head_revision"]

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
MIGRATIONS_DIR = ALEMBIC_INI.parent / "migrations"
EXPECTED_HEAD = "b6e8dcb19a40"
"""The head the plan names ("b6e8dcb19a40 at time of this document update")."""


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """Build the Alembic configuration of the sandbox migrations.

    Args:
        url: SQLAlchemy URL to migrate; when omitted, ``env.py`` falls back to ``CODEBLACK_DATABASE_URL``.
        connection: An open connection to migrate inside the caller's transaction (pytest-alembic style);
            it wins over ``url``.

    Returns:
        A config whose ``script_location`` is absolute, so it works from any working directory.
    """
    config = Config(str(ALEMBIC_INI))
    if url is not None:
        # ConfigParser interpolation would choke on a percent-encoded password.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """Return the single head of the migration scripts (``None`` only if there are no scripts)."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
