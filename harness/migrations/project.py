"""The target's Alembic project: where its scripts live, which head they must reach, which models they build.

Every gate starts from a :class:`MigrationProject` resolved once from ``[migrations]`` of ``drill.toml``, so the
gates agree on one script directory and one metadata object. Alembic's own objects (``Config``,
``ScriptDirectory``, ``MigrationContext``) do the work; nothing parses Alembic's console output.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from harness.config import DrillConfig
from harness.errors import CheckFailed, ConfigError, HarnessError
from harness.services.postgres import ensure_throwaway

__all__ = ["COMPARE_OPTIONS", "Database", "MigrationFailed", "MigrationProject", "connected", "current_revision"]

#: What the drift comparison looks at besides tables and columns (types and server defaults).
COMPARE_OPTIONS = {"compare_type": True, "compare_server_default": True}


class Database(Protocol):
    """A throwaway database the gates may write to (``pg_database``, the staging copy)."""

    @property
    def dsn(self) -> str:
        """A libpq URL, checked with ``ensure_throwaway`` before any write."""

    @property
    def sqlalchemy_url(self) -> str:
        """The same database as a SQLAlchemy URL."""


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
    """One Alembic script directory with its expected head and the models it must build."""

    script_location: Path
    expected_head: str
    metadata_path: str

    @classmethod
    def from_config(cls, config: DrillConfig) -> MigrationProject:
        """The project named by ``[migrations]``, with ``script_location`` taken relative to the file.

        Raises:
            ConfigError: the script directory or its ``env.py`` is missing.
        """
        settings = config.migrations
        location = config.resolve_path(settings.script_location)
        if not (location / "env.py").is_file():
            raise ConfigError(
                f"{config.source}: [migrations] script_location: {location} has no env.py; "
                "point it at the directory holding env.py and versions/"
            )
        return cls(location, settings.expected_head, settings.metadata)

    @property
    def versions_dir(self) -> Path:
        """The directory every migration file must live in."""
        return self.script_location / "versions"

    def alembic_config(self, connection: Connection | None = None, *, output: io.StringIO | None = None) -> Config:
        """An Alembic ``Config`` for this project, migrating ``connection`` or rendering SQL into ``output``."""
        config = Config(stdout=output or io.StringIO())
        config.set_main_option("script_location", str(self.script_location))
        config.set_main_option("path_separator", "os")
        if connection is not None:
            config.attributes["connection"] = connection
        if output is not None:
            config.output_buffer = output
        return config

    def scripts(self) -> ScriptDirectory:
        """The script directory, loaded by Alembic.

        Raises:
            HarnessError: Alembic cannot build the revision graph (the message is Alembic's, one line).
        """
        return ScriptDirectory.from_config(self.alembic_config())

    def metadata(self) -> MetaData:
        """Import the models' ``MetaData`` named ``module:attribute`` (attributes may be dotted).

        Raises:
            ConfigError: the path is malformed, the module does not import, or the object is no MetaData.
        """
        module_name, _, attribute = self.metadata_path.partition(":")
        where = f"[migrations] metadata = {self.metadata_path!r}"
        if not module_name or not attribute:
            raise ConfigError(f"{where}: expected 'package.module:attribute', e.g. 'app.models:Base.metadata'")
        try:
            value: object = importlib.import_module(module_name)
            for part in attribute.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{where}: cannot import it: {exc}") from None
        if not isinstance(value, MetaData):
            raise ConfigError(f"{where}: is a {type(value).__name__}, not a SQLAlchemy MetaData")
        return value

    def upgrade(self, connection: Connection, revision: str) -> None:
        """Upgrade the connection's database to ``revision`` and commit (``alembic upgrade <revision>``).

        Raises:
            MigrationFailed: the migration raised; its transaction is rolled back.
        """
        self._run(command.upgrade, "upgrade", connection, revision)

    def downgrade(self, connection: Connection, revision: str) -> None:
        """Downgrade the connection's database to ``revision`` and commit (``alembic downgrade <revision>``).

        Raises:
            MigrationFailed: the migration raised; its transaction is rolled back.
        """
        self._run(command.downgrade, "downgrade", connection, revision)

    def _run(self, step: Callable[[Config, str], None], verb: str, connection: Connection, revision: str) -> None:
        try:
            step(self.alembic_config(connection), revision)
        except Exception as exc:  # whatever a migration raises (database error, CommandError, a bug in it)
            connection.rollback()
            orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            lines = str(orig).strip().splitlines()
            raise MigrationFailed(verb, revision, f"{type(exc).__name__}: {lines[0] if lines else ''}") from None
        connection.commit()

    def offline_sql(self, revision_range: str) -> str:
        """The SQL ``alembic upgrade <range> --sql`` prints, captured through the config's output buffer."""
        output = io.StringIO()
        try:
            command.upgrade(self.alembic_config(output=output), revision_range, sql=True)
        except CommandError as exc:
            raise HarnessError(f"{self.script_location}: cannot render {revision_range} offline: {exc}") from None
        return output.getvalue()


class MigrationFailed(CheckFailed):
    """An Alembic upgrade or downgrade raised; the message names the target and the first line of the error."""

    def __init__(self, verb: str, target: str, error: str) -> None:
        super().__init__(f"alembic {verb} {target} raises {error}")
        self.error = error


def current_revision(connection: Connection) -> str | None:
    """The revision ``alembic current`` would print for this database (``None`` when unmigrated)."""
    return MigrationContext.configure(connection).get_current_revision()
