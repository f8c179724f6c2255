"""Alembic environment of the CodeBlack sandbox.

Three ways in, by precedence: a connection (or an engine, as pytest-alembic passes by default) the caller
puts in ``config.attributes["connection"]`` (the drill harness migrates inside its own transaction this way),
else ``sqlalchemy.url``, else the ``CODEBLACK_DATABASE_URL`` environment variable. Offline mode
(``alembic upgrade --sql``) renders the SQL for the migration linter without a database.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection, Engine

from sandbox.codeblack.models import Base

config = context.config
target_metadata = Base.metadata

# Only the CLI configures logging: a programmatic caller (the harness) keeps its own loggers.
if config.cmd_opts is not None and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

_COMPARE = {"compare_type": True, "compare_server_default": True}

# Bound how long a migration may wait for a lock or run, so a deploy fails fast instead of queueing every
# query of the live app behind an ACCESS EXCLUSIVE lock. SET LOCAL ends with the migration's transaction and
# leaves a caller's connection as it was; offline mode renders the same lines for the linter.
_TIMEOUTS = ("SET LOCAL lock_timeout = '5s'", "SET LOCAL statement_timeout = '10min'")


def _run_in_transaction() -> None:
    with context.begin_transaction():
        for statement in _TIMEOUTS:
            context.execute(statement)
        context.run_migrations()


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CODEBLACK_DATABASE_URL")
    if not url:
        raise RuntimeError(
            "no database to migrate: pass a connection in config.attributes['connection'], "
            "set sqlalchemy.url, or export CODEBLACK_DATABASE_URL=postgresql+psycopg://..."
        )
    return url


def run_migrations_offline() -> None:
    """Render the migrations as SQL, for review and for the SQL linter."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url")
        or os.environ.get("CODEBLACK_DATABASE_URL")
        or "postgresql+psycopg://",
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_COMPARE,
    )
    _run_in_transaction()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, **_COMPARE)
    _run_in_transaction()


def run_migrations_online() -> None:
    """Migrate a live database: the caller's connection or engine when given, else one opened from the URL."""
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run_on(given)
        return
    engine = given if isinstance(given, Engine) else create_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as fresh:
            _run_on(fresh)
    finally:
        if engine is not given:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
