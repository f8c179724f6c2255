"""Restoring into an existing staging server: a second local PostgreSQL the tests start stands in for it.

It is started as a server the harness did not make for staging (``throwaway=False``: the guard refuses it like
any production server), and reached only through an admin DSN in the environment, as a managed database is.
Production is the session's test server, where :func:`make_production` seeds and dumps a database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from psycopg import sql

from harness.app.runner import app_env
from harness.applicability import secret_keys
from harness.config import DrillConfig
from harness.errors import CheckFailed, ConfigError, HarnessError, UnsafeTargetError
from harness.integrity import check_amcheck
from harness.services.base import LABEL, run_id
from harness.services.external import StagingServer, Stamp, database_name, role_name
from harness.services.postgres import LocalPostgres, PostgresServer, ensure_throwaway
from harness.services.provider import Provider
from sandbox.staging_server import admin_dsn, existing_server
from tests.harness.test_restore import TAKEN_AT, Production, make_production
from tests.ports import closed_port

ADMIN_ENV = "DRILL_TEST_STAGING_ADMIN_DSN"
PRODUCTION_ENV = "DRILL_TEST_PRODUCTION_DSN"


@pytest.fixture(scope="module")
def staging_server() -> Iterator[LocalPostgres]:
    """The "existing" staging server."""
    server = existing_server("existing")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def production(pg_server: Any, s3_server: Any, drill_config: DrillConfig) -> Production:
    return make_production(pg_server, s3_server, drill_config, newest=TAKEN_AT)


def on_server(production: Production, **staging: str) -> Production:
    """The same production, drilled into the existing staging server."""
    config = production.deployment.config.with_changes(
        staging={"provider": "server", "admin_dsn_env": ADMIN_ENV, **staging}
    )
    return dataclasses.replace(production, deployment=dataclasses.replace(production.deployment, config=config))


@pytest.fixture
def admin_env(staging_server: LocalPostgres, monkeypatch: pytest.MonkeyPatch) -> str:
    dsn = admin_dsn(staging_server)
    monkeypatch.setenv(ADMIN_ENV, dsn)
    return dsn


def catalog(server: PostgresServer) -> tuple[set[str], set[str]]:
    """The server's databases and roles."""
    with server.connect() as conn:
        databases = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        roles = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
    return databases, roles


def test_a_dump_restores_into_a_database_of_the_run_with_the_counts_of_local_staging(
    provider: Provider, production: Production, staging_server: LocalPostgres, admin_env: str,
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    local = production.restore(provider, name="local")
    local.stop()
    monkeypatch.setenv(PRODUCTION_ENV, pg_server.dsn())  # production is another server: it passes
    drilled = on_server(production, production_dsn_env=PRODUCTION_ENV)
    staging = drilled.restore(provider, name="ext")
    database, role = database_name(run_id(), "ext"), role_name(run_id(), "ext")
    try:
        assert staging.dbname == database
        assert staging.counts.tables == local.counts.tables
        assert staging.counts.newest == local.counts.newest
        with staging_server.connect() as conn:
            comment, owner = conn.execute(
                "SELECT shobj_description(d.oid, 'pg_database'), pg_get_userbyid(d.datdba) FROM pg_database d "
                "WHERE datname = %s", (database,)).fetchone() or ("", "")  # fmt: skip
            powers = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles "
                                  "WHERE rolname = %s", (role,)).fetchone()  # fmt: skip
        stamp = Stamp.parse(comment)
        assert stamp is not None
        assert (stamp.run, stamp.name, stamp.host) == (run_id(), "ext", socket.gethostname())
        assert owner == role
        assert powers == (False, False, False, True)
        # The record's line: version, identity against production's, settings; no secret anywhere it goes.
        assert staging.server_description.startswith(f"PostgreSQL {staging_server.binaries.version} at ")
        assert "production's is " in staging.server_description
        assert "shared_buffers=" in staging.server_description
        password = staging_server.passwords["postgres"]
        app = app_env(
            drilled.deployment.config, drilled.deployment, database_url=staging.app_database_url, redis_url=""
        )
        assert not any(password in text for text in (staging.server_description, staging.dsn, *app.values()))
        assert admin_env not in "\n".join(app.values())
        # The app gets the run's role and that database only; tools and the guard accept it, nothing else there.
        assert staging.app_role == role
        assert f"/{database}" in staging.app_database_url
        with psycopg.connect(staging.app_database_url.replace("+psycopg", ""), connect_timeout=5) as conn:
            restored = conn.execute("SELECT count(*) FROM orders").fetchone()
        assert restored == (production.manifest.tables["orders"].rows,)
        ensure_throwaway(staging.dsn)
        check_amcheck(staging.postgres, staging.dbname)
        with pytest.raises(UnsafeTargetError, match=r"^refusing to write to database 'postgres' on PostgreSQL at "
                           r"127\.0\.0\.1:\d+: this run did not create that database$"):  # fmt: skip
            ensure_throwaway(staging.postgres.dsn())
        with pytest.raises(UnsafeTargetError, match=r"^refusing to drop database 'postgres' on the staging server "
                           r"127\.0\.0\.1:\d+: this run did not create it$"):  # fmt: skip
            staging.postgres.drop_database("postgres")
        with pytest.raises(UnsafeTargetError, match=r"^refusing to change the password of role 'postgres' on the "):
            staging.postgres.set_password("postgres")
        with staging_server.connect() as conn:  # what the restore could do as the database's owner
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS 'mine now'").format(sql.Identifier(database)))
        with pytest.raises(UnsafeTargetError, match=rf"^refusing to write to database '{database}' on PostgreSQL at "
                           r"127\.0\.0\.1:\d+: it no longer carries this run's stamp$"):  # fmt: skip
            ensure_throwaway(staging.dsn)
    finally:
        staging.stop()
    databases, roles = catalog(staging_server)
    assert database not in databases
    assert role not in roles
    assert not list(Path(tempfile.gettempdir()).glob(f"{LABEL}-{run_id()}-pgpass-ext-*"))


def test_client_tools_alone_of_the_server_s_major_restore_into_it(
    provider: Provider, production: Production, staging_server: LocalPostgres, admin_env: str, tmp_path: Path
) -> None:
    clients = tmp_path / "postgresql-client" / "bin"  # as Debian's postgresql-client-NN: no server programs
    clients.mkdir(parents=True)
    for tool in ("pg_restore", "pg_amcheck"):
        (clients / tool).symlink_to(staging_server.binaries.tool(tool))
    drilled = on_server(production)
    config = drilled.deployment.config.with_changes(services={"postgres_bin_dir": str(clients)})
    drilled = dataclasses.replace(drilled, deployment=dataclasses.replace(drilled.deployment, config=config))
    staging = drilled.restore(provider, name="clients")
    try:
        assert staging.postgres_choice is not None
        assert staging.postgres_choice.binaries.source.startswith("services.postgres_bin_dir")
        assert not staging.postgres_choice.warning
        assert staging.counts.tables["orders"].rows == production.manifest.tables["orders"].rows
        check_amcheck(staging.postgres, staging.dbname)
    finally:
        staging.stop()


def test_another_role_of_the_staging_server_cannot_connect_to_the_restored_copy(
    provider: Provider, production: Production, staging_server: LocalPostgres, admin_env: str
) -> None:
    other = f"someone_{uuid.uuid4().hex[:6]}"
    with staging_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'someone-else'").format(sql.Identifier(other)))
    staging = on_server(production).restore(provider, name="closed")
    try:
        url = f"postgresql://{other}:someone-else@{staging_server.host}:{staging_server.port}/{staging.dbname}"
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(url, connect_timeout=5).close()
    finally:
        staging.stop()
        with staging_server.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))


def test_a_staging_server_that_is_production_is_refused_before_anything_is_written(
    provider: Provider, production: Production, staging_server: LocalPostgres, admin_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Production's DSN names the staging server under another spelling: the identity, not the address, decides.
    monkeypatch.setenv(PRODUCTION_ENV, admin_env.replace("127.0.0.1", "localhost"))
    before = catalog(staging_server)
    with pytest.raises(UnsafeTargetError, match=(
        rf"\[staging\] admin_dsn_env \({ADMIN_ENV}\): the staging server 127\.0\.0\.1:\d+ is production \(system "
        rf"identifier \d+, the same as \[staging\] production_dsn_env's\); refusing to restore into it: point "
        r"admin_dsn_env at a staging server$"
    )) as refused:  # fmt: skip
        on_server(production, production_dsn_env=PRODUCTION_ENV).restore(provider, name="prod")
    assert "\n" not in str(refused.value)
    assert staging_server.passwords["postgres"] not in str(refused.value)
    assert catalog(staging_server) == before


def test_a_database_of_the_run_s_name_that_the_drill_did_not_create_is_a_collision(
    provider: Provider, production: Production, staging_server: LocalPostgres, admin_env: str
) -> None:
    database = database_name(run_id(), "clash")
    staging_server.create_database(database)  # someone else's, without the stamp
    try:
        with pytest.raises(UnsafeTargetError, match=(
            rf"^the staging server 127\.0\.0\.1:\d+ already has a database {database} that this drill did not "
            r"create; refusing to touch it: drop or rename it, or run under another CODEBLACK_DRILLS_RUN$"
        )):  # fmt: skip
            on_server(production).restore(provider, name="clash")
        databases, roles = catalog(staging_server)
        assert database in databases  # untouched
        assert role_name(run_id(), "clash") not in roles  # the role it had made is dropped again
    finally:
        staging_server.drop_database(database)


def test_a_restore_that_fails_after_its_database_was_made_drops_it(
    provider: Provider, production: Production, staging_server: LocalPostgres, admin_env: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    database, role = database_name(run_id(), "failed"), role_name(run_id(), "failed")
    cut = production.body()[:-4096]  # pg_restore fails on it, after the database was made and the data began
    bad = production.variant(cut, size=len(cut), sha256=hashlib.sha256(cut).hexdigest())
    logged = caplog.at_level(logging.INFO, logger="harness.services.external")
    with logged, pytest.raises(CheckFailed, match="does not restore"):
        on_server(production).restore(provider, bad, name="failed")
    assert f"staging database {database} (role {role}) created" in caplog.text
    databases, roles = catalog(staging_server)
    assert database not in databases
    assert role not in roles


def test_an_admin_that_cannot_create_roles_fails_in_one_line_and_leaves_nothing(
    provider: Provider, production: Production, staging_server: LocalPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak = f"weak_{uuid.uuid4().hex[:6]}"
    with staging_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD 'weak-admin-pw'").format(sql.Identifier(weak)))
    monkeypatch.setenv(
        ADMIN_ENV, f"postgresql://{weak}:weak-admin-pw@{staging_server.host}:{staging_server.port}/postgres"
    )
    before = catalog(staging_server)
    try:
        with pytest.raises(HarnessError, match=(
            rf"^the staging server 127\.0\.0\.1:\d+: {weak} cannot create the run's role and database \(permission "
            r"denied to create role\); the admin role needs CREATEDB and CREATEROLE$"
        )):  # fmt: skip
            on_server(production).restore(provider, name="weak")
        assert catalog(staging_server) == before
    finally:
        with staging_server.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(weak)))


def _make(server: PostgresServer, kind: str, name: str, comment: str | None, owner: str = "postgres") -> None:
    statement = "CREATE DATABASE {} OWNER {}" if kind == "database" else "CREATE ROLE {}"
    with server.connect() as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name), sql.Identifier(owner)))
        if comment is not None:
            on = sql.SQL("DATABASE" if kind == "database" else "ROLE")
            conn.execute(sql.SQL("COMMENT ON {} {} IS {}").format(on, sql.Identifier(name), sql.Literal(comment)))


def test_the_sweep_drops_only_stamped_leftovers_of_runs_of_this_host_that_ended(
    staging_server: LocalPostgres, admin_env: str, drill_config: DrillConfig
) -> None:
    dead, live, host = f"dead{uuid.uuid4().hex[:6]}", f"live{uuid.uuid4().hex[:6]}", socket.gethostname()
    owner = Path(tempfile.gettempdir()) / f"{LABEL}-{live}-{os.getpid()}.owner"  # this process runs `live`
    owner.write_text(f"{os.getpid()} {psutil.Process().create_time()!r}")

    def stamp(kind: str, run: str, name: str, on_host: str = host) -> str:
        return Stamp(kind, run, name, on_host, "2026-01-01T00:00:00Z").text()

    cut = "staging-catalog"  # a [[databases]] entry's copy; killed between CREATE DATABASE and its stamp
    made = [
        ("role", role_name(dead, "left"), stamp("role", dead, "left")),  # dropped
        ("database", database_name(dead, "left"), stamp("database", dead, "left")),  # dropped
        ("role", role_name(dead, cut), stamp("role", dead, cut)),  # dropped
        ("database", database_name(dead, cut), None, role_name(dead, cut)),  # unstamped, the run's role's: dropped
        ("database", database_name(dead, "bare"), None),  # the pattern without the stamp: never
        ("database", database_name(dead, "moved"), stamp("database", dead, "other")),  # a stamp of another name
        ("database", database_name(dead, "far"), stamp("database", dead, "far", "elsewhere.example")),  # not ours
        ("database", database_name(live, "busy"), stamp("database", live, "busy")),  # a run that still runs
    ]
    for kind, name, comment, *by in made:
        _make(staging_server, kind, name, comment, *by)
    config = drill_config.with_changes(staging={"provider": "server", "admin_dsn_env": ADMIN_ENV})
    try:
        dropped = StagingServer.from_config(config).sweep()
        databases, roles = catalog(staging_server)
    finally:
        owner.unlink()
        for kind, name, *_ in sorted(made):  # databases before the roles that own them
            with staging_server.connect() as conn:
                what = "DATABASE" if kind == "database" else "ROLE"
                conn.execute(sql.SQL(f"DROP {what} IF EXISTS {{}}").format(sql.Identifier(name)))
    assert sorted(dropped) == sorted([f"database {database_name(dead, cut)}", f"database {database_name(dead, 'left')}",
                                      f"role {role_name(dead, cut)}", f"role {role_name(dead, 'left')}"])  # fmt: skip
    assert {name for _, name, *_ in made[4:]} <= databases
    assert not {role_name(dead, "left"), role_name(dead, cut)} & roles


def test_a_staging_dsn_that_is_not_one_fails_in_one_line_without_quoting_it(
    drill_config: DrillConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_ENV, "host=staging.internal password=s3cr3t-staging oops")
    config = drill_config.with_changes(staging={"provider": "server", "admin_dsn_env": ADMIN_ENV})
    with pytest.raises(ConfigError, match=rf"^\S+drill\.toml: \[staging\] admin_dsn_env \({ADMIN_ENV}\): its value is "
                       r"not a libpq connection string or URL$") as refused:  # fmt: skip
        StagingServer.from_config(config)
    assert "s3cr3t" not in str(refused.value)


def test_an_unreachable_staging_server_fails_in_one_line(
    drill_config: DrillConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = drill_config.with_changes(staging={"provider": "server", "admin_dsn_env": ADMIN_ENV})
    with closed_port() as port:
        monkeypatch.setenv(ADMIN_ENV, f"postgresql://postgres:s3cr3t-staging@127.0.0.1:{port}/postgres")
        with pytest.raises(HarnessError, match=rf"^\S+: \[staging\] admin_dsn_env \({ADMIN_ENV}\): cannot reach "
                           rf"the staging server 127\.0\.0\.1:{port} as postgres: .+$") as refused:  # fmt: skip
            StagingServer.from_config(config)
    assert "s3cr3t" not in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_staging_server_s_dsns_are_asked_for_only_where_staging_is_restored(drill_config: DrillConfig) -> None:
    config = drill_config.with_changes(staging={"provider": "server", "production_dsn_env": PRODUCTION_ENV})
    assert {"staging.admin_dsn_env", "staging.production_dsn_env"} <= set(secret_keys(config, [{"staging"}]))
    assert not any(key.startswith("staging.") for key in secret_keys(config, [{"backup_policy"}]))
    assert not any(key.startswith("staging.") for key in secret_keys(drill_config, [{"staging"}]))


def test_the_sweep_command_lists_then_drops_a_killed_run_s_leftovers_on_the_staging_server(
    staging_server: LocalPostgres, admin_env: str, tmp_path: Path
) -> None:
    dead = f"dead{uuid.uuid4().hex[:6]}"
    made = [("database", database_name(dead, "staging")), ("role", role_name(dead, "staging"))]
    for kind, name in made:
        _make(
            staging_server,
            kind,
            name,
            Stamp(kind, dead, "staging", socket.gethostname(), "2026-01-01T00:00:00Z").text(),
        )
    config = tmp_path / "drill.toml"
    config.write_text(f'[staging]\nprovider = "server"\nadmin_dsn_env = "{ADMIN_ENV}"\n')
    program = [str(Path(sys.executable).parent / "codeblack-drills"), "--config", str(config), "sweep"]
    listed = subprocess.run([*program, "--dry-run"], capture_output=True, text=True, timeout=60, check=True)
    where = f"{staging_server.host}:{staging_server.port}"
    assert [f"{kind} {name} on {where}" for kind, name in made] == [
        line for line in listed.stdout.splitlines() if line.endswith(f" on {where}")
    ]
    assert {name for _, name in made} <= set.union(*catalog(staging_server))  # a dry run drops nothing
    subprocess.run(program, capture_output=True, text=True, timeout=60, check=True)
    assert not {name for _, name in made} & set.union(*catalog(staging_server))


def test_a_password_a_dump_gave_the_restore_role_is_replaced_and_its_sessions_closed(
    production: Production, staging_server: LocalPostgres, admin_env: str
) -> None:
    """Any role may set its own password: SQL a dump runs as the restore role could open the shared server."""
    server = StagingServer.from_config(on_server(production).deployment.config).provision("pw", staging_server.binaries)
    try:
        with server.connect(server.database, server.owner_role) as conn:  # what the dump's SQL can do
            conn.execute("ALTER ROLE CURRENT_USER PASSWORD 'known-to-the-dump'")
        stolen = f"host={server.host} port={server.port} dbname=postgres user={server.owner_role}"
        intruder = psycopg.connect(stolen, password="known-to-the-dump", autocommit=True, connect_timeout=5)
        assert server.reseal() == 1
        with pytest.raises(psycopg.OperationalError):
            intruder.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(stolen, password="known-to-the-dump", connect_timeout=5)
        with server.connect(server.database, server.owner_role) as conn:  # the drill's own password still works
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
