"""Alembic environment of the shelf project, written the way many real projects write it.

It insists on running from alembic.ini, builds its own engine from the project's settings (SHELF_DATABASE_URL),
and ignores any connection a caller may offer: it trusts nothing but its settings.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.orm import configure_mappers

from shelf.models import Base
from shelf.settings import load

config = context.config
assert config.config_file_name, "run alembic with the project's alembic.ini"
fileConfig(config.config_file_name, disable_existing_loggers=False)
configure_mappers()  # the string-annotated relationships must resolve, as they do when the app starts

settings = load()
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=settings.database_url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(settings.database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
