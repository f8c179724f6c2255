"""A target's ``env.py`` is untrusted: it decides where to connect, and the gates must not let it leave the throwaway.

The stand-in production is a real PostgreSQL with every statement and connection logged. A control first shows
that the harness's own process can reach it with the URL the hostile ``env.py`` holds (so nothing but the
migration child's isolation stops it). The gates then run the project: the ``env.py`` that connects to that URL
fails with one line naming ``env.py`` and where it tried to go, and production's log shows no connection and no
statement after the control; an ``env.py`` that migrates a SQLite file instead is caught because the
throwaway's ``alembic_version`` did not move.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text

from harness.migrations.drift import check_drift
from harness.migrations.history import load_graph
from harness.migrations.isolation import EnvEscaped
from harness.migrations.project import MigrationProject, connected
from harness.migrations.roundtrip import check_roundtrip
from harness.services import postgres
from harness.services.postgres import LocalPostgres
from tests.data.migration_sets import build_project

METADATA = "sandbox.codeblack.models:Base.metadata"

HOSTILE_ENV = """
from alembic import context
from sqlalchemy import create_engine, pool

from sandbox.codeblack.models import Base

PRODUCTION_URL = {url!r}  # "from the project's own settings": never the URL the gates hand over

engine = create_engine(PRODUCTION_URL, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
"""


ENV_DUMP = """
import json, os
from sqlalchemy import create_engine, text
with create_engine(os.environ["DATABASE_URL"]).begin() as seen:
    seen.execute(text("CREATE TABLE seen_environment (body text)"))
    seen.execute(text("INSERT INTO seen_environment VALUES (:body)"), {"body": json.dumps(dict(os.environ))})
"""


@pytest.fixture(scope="module")
def production() -> Iterator[LocalPostgres]:
    """A PostgreSQL standing in for production, logging every connection and statement."""
    server = LocalPostgres.create(
        "standin-production",
        settings={"log_statement": "all", "log_connections": "on", "logging_collector": "off"},
        throwaway=False,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def socket_production() -> Iterator[tuple[LocalPostgres, Path]]:
    """A production stand-in whose Unix socket, in a directory anyone may enter, lets anyone in (``trust``).

    A network namespace does not cover filesystem sockets: only the jail (a root without the host's ``/tmp`` or
    ``/var/run``) and the unprivileged account keep the migration child from it.
    """
    sockets = Path(tempfile.mkdtemp(prefix="standin-socket-"))
    sockets.chmod(0o1777)
    hba = sockets / "pg_hba.conf"
    hba.write_text("local all all trust\n")
    hba.chmod(0o644)

    def trusting(workdir: Path) -> dict[str, str]:  # the harness's own socket too, and the public one
        return {"hba_file": str(hba), "unix_socket_directories": f"{workdir / 'sock'},{sockets}"}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postgres, "_admit_only_the_harness", trusting)
        server = LocalPostgres.create(
            "standin-socket-production",
            settings={"log_statement": "all", "log_connections": "on", "logging_collector": "off",
                      "unix_socket_permissions": "0777"},
            throwaway=False,
        )  # fmt: skip
    yield server, sockets
    server.stop()
    shutil.rmtree(sockets, ignore_errors=True)


def _log_after(server: LocalPostgres, offset: int) -> str:
    return (server.workdir / "postgres.log").read_bytes()[offset:].decode(errors="replace")


def _hostile_project(tmp_path: Path, env_py: str) -> MigrationProject:
    location = build_project("hostile_env", tmp_path)
    (location / "env.py").write_text(env_py)
    return MigrationProject(location, "b6e8dcb19a40", METADATA)


def _log_offset_after_control(server: LocalPostgres, url: str) -> int:
    """Show the harness's own process reaches ``server`` with ``url``; return where its log ends now."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()
    return (server.workdir / "postgres.log").stat().st_size


def _assert_escape_named(project: MigrationProject, message: str, error: str) -> None:
    """The gate's one line: env.py, the step, the connection error (a regular expression) and the contract."""
    assert re.fullmatch(
        rf"{re.escape(str(project.script_location / 'env.py'))}: env\.py did not reach the throwaway database for "
        rf"alembic upgrade 3f1c2a9d7b10: it connected elsewhere \(OperationalError: {error}, at env\.py:\d+\); "
        r"the migration child can reach only the throwaway, so it must migrate DATABASE_URL, sqlalchemy\.url or "
        r"config\.attributes\['connection'\]",
        message,
    ), message


def _assert_untouched(server: LocalPostgres, offset: int) -> None:
    log = _log_after(server, offset)
    assert "connection received" not in log, log
    assert "statement:" not in log, log


def test_an_env_py_aimed_at_production_reaches_nothing_and_the_gate_names_it(
    production: LocalPostgres, tmp_path: Path, pg_database: Any
) -> None:
    url = production.sqlalchemy_url("postgres", "postgres", with_password=True)
    offset = _log_offset_after_control(production, url)
    project = _hostile_project(tmp_path, HOSTILE_ENV.format(url=url))

    with pytest.raises(EnvEscaped) as escaped:
        check_roundtrip(project, load_graph(project), pg_database)
    with pytest.raises(EnvEscaped):
        check_drift(project, pg_database)

    _assert_escape_named(
        project,
        str(escaped.value),
        rf'connection failed: connection to server at "127\.0\.0\.1", port {production.port} failed: '
        "Connection refused",
    )
    assert production.passwords["postgres"] not in str(escaped.value)
    _assert_untouched(production, offset)


def test_an_env_py_aimed_at_a_trusting_local_socket_reaches_nothing_and_the_gate_names_it(
    socket_production: tuple[LocalPostgres, Path], tmp_path: Path, pg_database: Any
) -> None:
    server, sockets = socket_production
    url = f"postgresql+psycopg://postgres@/postgres?host={sockets}&port={server.port}"
    offset = _log_offset_after_control(server, url)  # the socket lets anyone in, with no password
    project = _hostile_project(tmp_path, HOSTILE_ENV.format(url=url))

    with pytest.raises(EnvEscaped) as escaped:
        check_roundtrip(project, load_graph(project), pg_database)

    _assert_escape_named(
        project,
        str(escaped.value),
        rf'connection is bad: connection to server on socket "{re.escape(str(sockets))}/\.s\.PGSQL\.{server.port}" '
        "failed: No such file or directory",
    )
    _assert_untouched(server, offset)


def test_an_env_py_that_migrates_something_else_is_caught_by_the_throwaways_alembic_version(
    tmp_path: Path, pg_database: Any
) -> None:
    env_py = HOSTILE_ENV.format(url="sqlite:////tmp/elsewhere.sqlite").replace("Base.metadata)", "None)")
    project = _hostile_project(tmp_path, env_py)
    sqlite_friendly = tmp_path / "hostile_env" / "versions"
    for script in sqlite_friendly.glob("*.py"):
        script.unlink()
    (sqlite_friendly / "5e1f00000001_notes.py").write_text(
        '"""notes"""\nimport sqlalchemy as sa\nfrom alembic import op\n\nrevision = "5e1f00000001"\n'
        "down_revision = None\n\n\ndef upgrade():\n    op.create_table('notes', sa.Column('id', sa.Integer, "
        "primary_key=True))\n\n\ndef downgrade():\n    op.drop_table('notes')\n"
    )
    with pytest.raises(
        EnvEscaped,
        match=r"env\.py: env\.py did not migrate the throwaway database: alembic upgrade 5e1f00000001 succeeded, "
        r"yet the throwaway's alembic_version is empty \(was empty, expected 5e1f00000001\), so it migrated "
        r"another database; it must migrate DATABASE_URL",
    ):
        check_roundtrip(project, load_graph(project), pg_database)


def test_the_migration_child_holds_no_secret_of_the_harness(
    tmp_path: Path, pg_database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = "planted-secret-" + tmp_path.name
    monkeypatch.setenv("DRILL_S3_SECRET_ACCESS_KEY", planted)
    monkeypatch.setenv("CODEBLACK_SIGNING_KEY", planted)
    env_py = build_project("env_dump", tmp_path) / "env.py"
    env_py.write_text(env_py.read_text() + ENV_DUMP)  # the jail has no writable host path: it tells the database
    project = MigrationProject(env_py.parent, "b6e8dcb19a40", METADATA)
    project.upgrade(pg_database, "head")
    with connected(pg_database) as connection:
        seen = connection.execute(text("SELECT body FROM seen_environment")).scalar_one()
    environment = json.loads(seen)
    assert planted not in seen
    assert {"DRILL_S3_SECRET_ACCESS_KEY", "CODEBLACK_SIGNING_KEY"}.isdisjoint(environment)
    assert environment["DATABASE_URL"].startswith("postgresql+psycopg://drill_owner:")
    assert "@127.0.0.1:" in environment["DATABASE_URL"]
