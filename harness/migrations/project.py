"""The target's Alembic project: where its scripts live, which head they must reach, which models they build.

Every gate starts from a :class:`MigrationProject` resolved once from ``[migrations]`` of ``drill.toml``, so the
gates agree on one script directory, one metadata path and one way to run the project's own Alembic: an
isolated :class:`~harness.migrations.isolation.MigrationChild` with the project's interpreter, ``alembic.ini``
and settings, which can reach only the throwaway it is given. Alembic's own objects do the work; nothing parses
Alembic's console output.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from harness.config import DrillConfig
from harness.errors import ConfigError
from harness.migrations.isolation import MigrationChild, MigrationFailed, Throwaway, default_python
from harness.services.postgres import ensure_throwaway

__all__ = ["Database", "MigrationFailed", "MigrationProject", "connected", "current_revision"]


Database = Throwaway
"""A throwaway database the gates may write to (``pg_database``, the staging copy)."""


@contextlib.contextmanager
def connected(database: Database) -> Iterator[Connection]:
    """Open one connection to a throwaway database, refusing any server this run did not create."""
    ensure_throwaway(database.dsn)
    engine = create_engine(database.sqlalchemy_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


@dataclass(frozen=True)
class MigrationProject:
    """One Alembic script directory with its expected head, the models it must build, and how to run it.

    Alembic itself (``env.py``, the models, the migration files, even to read their revision ids) runs only in
    a :class:`~harness.migrations.isolation.MigrationChild` (see :meth:`child`), never in the harness.
    """

    script_location: Path
    expected_head: str
    metadata_path: str
    ini: Path | None = None
    python: str = field(default_factory=default_python)
    env: Mapping[str, str] = field(default_factory=dict)
    pythonpath: tuple[Path, ...] = ()
    driver: str = "psycopg"
    cwd: Path | None = None

    @classmethod
    def from_config(cls, config: DrillConfig) -> MigrationProject:
        """The project named by ``[migrations]``, with its paths taken relative to the file.

        Raises:
            ConfigError: the script directory, its ``env.py``, the ini file or the interpreter is missing.
        """
        settings = config.migrations
        location = config.resolve_path(settings.script_location)
        if not (location / "env.py").is_file():
            raise ConfigError(
                f"{config.source}: [migrations] script_location: {location} has no env.py; "
                "point it at the directory holding env.py and versions/"
            )
        ini = config.resolve_path(settings.ini) if settings.ini else None
        if ini is not None and not ini.is_file():
            raise ConfigError(f"{config.source}: [migrations] ini: {ini} does not exist")
        python = default_python()
        if settings.python:  # checked when a child starts (every gate, even reading the graph)
            # Not resolved: a virtual environment's python is a symlink, and only its own path finds pyvenv.cfg.
            relative = os.path.join(config.source.parent, settings.python)
            python = os.path.abspath(relative) if "/" in settings.python else settings.python
        return cls(
            location,
            settings.expected_head,
            settings.metadata,
            ini=ini,
            python=python,
            env=dict(settings.env),
            pythonpath=tuple(config.resolve_path(path) for path in settings.pythonpath),
            driver=settings.driver,
            cwd=ini.parent if ini is not None else config.source.parent,
        )

    @property
    def versions_dir(self) -> Path:
        """The directory every migration file must live in."""
        return self.script_location / "versions"

    def child(self, database: Database | None = None) -> MigrationChild:
        """An isolated child that runs this project's Alembic against ``database`` (``None``: offline only)."""
        return MigrationChild(
            python=self.python,
            script_location=self.script_location,
            env_py=self.script_location / "env.py",
            ini=self.ini,
            cwd=self.cwd,
            env=dict(self.env),
            pythonpath=self.pythonpath,
            driver=self.driver,
            database=database,
        )

    def upgrade(self, database: Database, revision: str) -> str | None:
        """``alembic upgrade <revision>`` of a throwaway in a child of its own; returns the revision reached.

        Raises:
            MigrationFailed: the migration raised (see :meth:`MigrationChild.upgrade` for the rest).
        """
        with self.child(database) as child:
            return child.upgrade(revision)

    def offline_sql(self, revision_range: str) -> str:
        """The SQL ``alembic upgrade <range> --sql`` prints, rendered by an isolated child."""
        with self.child() as child:
            return child.offline_sql(revision_range)


def current_revision(connection: Connection) -> str | None:
    """The revision ``alembic current`` would print for this database (``None`` when unmigrated)."""
    return MigrationContext.configure(connection).get_current_revision()
