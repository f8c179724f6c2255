"""A logical dump from the bucket is untrusted: what it holds must not run with power over the drill host.

Each case plants a payload in a real production database, takes a real dump of it with the backup side's own
``backup postgres`` (so its manifest is genuine) and restores it as the drill does, into a local staging
server and into a container (``either_provider``; the container case is skipped with the reason where no
engine or image is ready). The payload is a function that runs ``COPY ... TO PROGRAM`` to write the server's
environment into a canary file; it is reached the ways a restore reaches code: an expression index (built by
``pg_restore``, evaluated again by amcheck), a materialized view (refreshed by ``pg_restore``) and an event
trigger (fired by later DDL). Controls show the payload is live: run by a superuser of production, and of the
staging server itself afterwards, it writes the canary (in a container, in the container's own filesystem).
Restored by the drill, it never does, and no server the drill starts holds a secret of the harness in its
environment.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import redis

from harness.config import DrillConfig
from harness.errors import CheckFailed
from harness.integrity import check_amcheck
from harness.services.base import RUN_ENV, ManagedProcess, ServiceUser, child_setup, run_tool, service_user
from harness.services.docker import ContainerPostgres
from harness.services.postgres import OWNER_ROLE, LocalPostgres, PostgresServer
from harness.services.provider import Provider
from harness.services.redis import LocalRedis
from tests.harness.test_containers import (
    docker_provider_fixture,  # noqa: F401 - the fixture
    either_provider_fixture,  # noqa: F401 - the fixture
    needs_docker,
)
from tests.harness.test_restore import TAKEN_AT, leftovers, make_production

PLANTED = "planted-secret-" + uuid.uuid4().hex


@pytest.fixture
def canary_dir() -> Iterator[Path]:
    """A directory any server user could write a canary into (so only the privilege check stops it).

    Not under pytest's base temp: another pytest session on the machine resets that to mode 0700.
    """
    path = Path(tempfile.mkdtemp(prefix="hostile-dump-canary-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def payload(canary: Path) -> str:
    """SQL that makes ``pwn``: it writes the server's environment to ``canary`` when allowed, else nothing.

    The error is swallowed, as an attacker would, so a refused command does not stop the restore: only the
    restore role's lack of power keeps the host safe. The canary's directory is made when missing: a staging
    container has a filesystem of its own, where the payload must be able to write too.
    """
    command = f"mkdir -p {canary.parent} && env > {canary}"
    return f"""
        CREATE OR REPLACE FUNCTION public.pwn(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            BEGIN
                EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', {command!r});
            EXCEPTION WHEN others THEN NULL;
            END;
            RETURN x;
        END $$;
    """


def plant_index_and_view(canary: Path) -> str:
    """An expression index and a materialized view that call ``pwn``, built while it is still harmless.

    ``pwn`` is then replaced by the payload, so the dump holds the live body and production never ran it.
    """
    return """
        CREATE FUNCTION public.pwn(x bigint) RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT x';
        CREATE FUNCTION public.pwn_indexed(x bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS
            $$ BEGIN RETURN public.pwn(x); END $$;
        CREATE INDEX orders_pwn ON orders (public.pwn_indexed(id));
        CREATE MATERIALIZED VIEW pwned AS SELECT public.pwn(1) AS one;
        -- Production's autovacuum would ANALYZE orders, evaluate the index expression as its superuser owner
        -- and write the canary after the control removed it: only the drill's own acts may be observed.
        ALTER TABLE orders SET (autovacuum_enabled = false);
    """ + payload(canary)


def prove_live(server: Any, dbname: str, canary: Path) -> None:
    """The control: as a superuser the payload runs, so its absence later is the drill's doing."""
    with server.connect(dbname) as conn:
        conn.execute("SELECT public.pwn(1)")
    assert canary.exists(), "control: the payload did not run even as superuser"
    environment = canary.read_text()
    assert RUN_ENV in environment
    assert PLANTED not in environment, "a server inherited the harness's environment"
    canary.unlink()


def canary_text(server: PostgresServer, canary: Path) -> str | None:
    """What the payload wrote to ``canary`` where ``server`` runs (this machine, or its container); None: nothing."""
    if isinstance(server, ContainerPostgres):
        done = server.container.exec(["cat", str(canary)])
        return done.output.decode(errors="replace") if done.exit_code == 0 else None
    return canary.read_text() if canary.exists() else None


def prove_live_on_staging(server: PostgresServer, dbname: str, canary: Path) -> None:
    """The control on staging itself, afterwards: its superuser runs the payload, which writes the canary there.

    So only the restore role's lack of power kept it from running, locally and in a container alike; and what it
    wrote, the staging server's environment, holds no secret of the harness.
    """
    with server.connect(dbname) as conn:
        conn.execute("SELECT public.pwn(1)")
    environment = canary_text(server, canary)
    assert environment is not None, f"control: the payload did not run on {server.provider} staging as superuser"
    assert PLANTED not in environment, "staging inherited the harness's environment"


def test_a_dump_that_runs_commands_through_an_index_and_a_view_restores_without_running_them(
    either_provider: Provider, pg_server: Any, s3_server: Any, drill_config: DrillConfig, canary_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DRILL_PLANTED_SECRET", PLANTED)
    canary = canary_dir / "index-and-view"
    production = make_production(pg_server, s3_server, drill_config, newest=TAKEN_AT - timedelta(minutes=1),
                                 extra_sql=plant_index_and_view(canary))  # fmt: skip
    prove_live(pg_server, production.manifest.database, canary)
    name = f"stg{uuid.uuid4().hex[:6]}"
    staging = production.restore(either_provider, name=name)
    try:
        assert staging.postgres.provider == either_provider.kind
        with staging.postgres.connect(staging.dbname, OWNER_ROLE) as conn:
            conn.execute("REFRESH MATERIALIZED VIEW pwned")
            owner = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        check_amcheck(staging.postgres, staging.dbname)  # evaluates the index expression again
        assert owner == (False,)
        assert not canary.exists(), canary.read_text()
        assert canary_text(staging.postgres, canary) is None
        prove_live_on_staging(staging.postgres, staging.dbname, canary)
    finally:
        staging.stop()
    assert leftovers(name) == []


def test_a_dump_with_an_event_trigger_is_refused_and_runs_nothing(
    either_provider: Provider, pg_server: Any, s3_server: Any, drill_config: DrillConfig, canary_dir: Path
) -> None:
    canary = canary_dir / "event-trigger"
    trigger = (
        payload(canary)
        + """
        CREATE FUNCTION public.pwn_ddl() RETURNS event_trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM public.pwn(1); END $$;
        CREATE EVENT TRIGGER pwn_on_ddl ON ddl_command_end EXECUTE FUNCTION public.pwn_ddl();
    """
    )
    production = make_production(pg_server, s3_server, drill_config, newest=TAKEN_AT - timedelta(minutes=1),
                                 extra_sql=trigger)  # fmt: skip
    try:
        name = f"stg{uuid.uuid4().hex[:6]}"
        with pytest.raises(CheckFailed, match=rf"^{production.manifest.key}: does not restore: .*permission denied "
                           rf"to create event trigger \"pwn_on_ddl\".* \(the drill restores as {OWNER_ROLE}, a "
                           "role without superuser power"):  # fmt: skip
            production.restore(either_provider, name=name)
        assert not canary.exists()
        assert leftovers(name) == []
    finally:  # the trigger fires on the session server's DDL too: drop it before the next test creates anything
        with pg_server.connect(production.manifest.database) as conn:
            conn.execute("DROP EVENT TRIGGER pwn_on_ddl")


def plant_search_path_trap(canary: Path) -> str:
    """A dump whose restore re-points the database's search path at a view shadowing ``pg_extension``.

    The index function runs ``ALTER DATABASE ... SET search_path = public, pg_catalog`` during the restore (the
    owner role may), so every later session resolves an unqualified ``pg_extension`` to ``public.pg_extension``,
    a view that calls ``pwn``. A superuser session of the harness that wrote ``pg_extension`` ran it (found by
    a hostile-bucket review).
    """
    return (
        payload(canary)
        + """
        CREATE FUNCTION public.set_path(x bigint) RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT x';
        CREATE FUNCTION public.set_path_indexed(x bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS
            $$ BEGIN RETURN public.set_path(x); END $$;
        CREATE INDEX orders_set_path ON orders (public.set_path_indexed(id));
        ALTER TABLE orders SET (autovacuum_enabled = false);  -- see plant_index_and_view
        CREATE OR REPLACE FUNCTION public.set_path(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            EXECUTE format('ALTER DATABASE %I SET search_path = public, pg_catalog', current_database());
            RETURN x;
        END $$;
        CREATE FUNCTION public.shadow() RETURNS SETOF pg_catalog.pg_extension LANGUAGE plpgsql VOLATILE AS
            $$ BEGIN PERFORM public.pwn(1); RETURN QUERY SELECT * FROM pg_catalog.pg_extension; END $$;
        CREATE VIEW public.pg_extension AS SELECT * FROM public.shadow();
    """
    )


def test_a_dump_that_repoints_the_search_path_runs_nothing_as_superuser(
    either_provider: Provider, pg_server: Any, s3_server: Any, drill_config: DrillConfig, canary_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    canary = canary_dir / "search-path"
    production = make_production(pg_server, s3_server, drill_config, newest=TAKEN_AT - timedelta(minutes=1),
                                 extra_sql=plant_search_path_trap(canary))  # fmt: skip
    with pg_server.connect(production.manifest.database) as conn:  # control: the shadow is live for a superuser
        conn.execute("SET search_path = public, pg_catalog")
        conn.execute("SELECT count(*) FROM pg_extension")
    assert canary.exists(), "control: the shadowing view did not run even as superuser"
    canary.unlink()
    name = f"stg{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.WARNING, logger="harness.restore"):
        staging = production.restore(either_provider, name=name)
    try:
        assert staging.postgres.provider == either_provider.kind
        assert f"the restore of {staging.dbname} set session defaults, removed: every role in {staging.dbname}: " \
            "search_path=public, pg_catalog" in caplog.messages  # fmt: skip
        check_amcheck(staging.postgres, staging.dbname)  # its index check runs set_path again: only as the owner
        assert not canary.exists(), canary.read_text()
        assert canary_text(staging.postgres, canary) is None
        prove_live_on_staging(staging.postgres, staging.dbname, canary)
    finally:
        staging.stop()
    assert leftovers(name) == []


@needs_docker
def test_the_dumps_directory_is_read_only_to_a_containers_tools(docker_provider: Provider, tmp_path: Path) -> None:
    """A staging container's tools read the dump's directory, and must not change it.

    ``pg_restore`` runs in the container by ``docker exec`` as the harness's uid (root, when the drill runs as
    root, with every capability dropped). Root owns the dump's directory, so only the mount keeps a crafted
    archive (or whatever runs in the container) from rewriting the dump the drill verified: it is read-only.
    Locally the tools run as the harness, which owns the dump in any case.
    """
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "nightly.dump").write_bytes(b"PGDMP")
    server = docker_provider.postgres("rodump", files=dump)
    try:
        assert isinstance(server, ContainerPostgres)
        as_tool = ["docker", "exec", "-u", f"{os.geteuid()}:{os.getegid()}", server.container.get_container_id()]
        done = subprocess.run([*as_tool, "sh", "-c", f"echo forged > {dump}/nightly.dump; touch {dump}/planted"],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    finally:
        server.stop()
    assert "Read-only file system" in done.stderr, done.stderr
    assert (dump / "nightly.dump").read_bytes() == b"PGDMP"
    assert sorted(path.name for path in dump.iterdir()) == ["nightly.dump"]


def test_throwaway_servers_and_tools_start_with_no_secret_of_the_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server's own /proc environ is overwritten by its process title, so the launcher every server uses
    # starts `env` here; the payload control above shows a real PostgreSQL's environment the same way.
    monkeypatch.setenv("DRILL_PLANTED_SECRET", PLANTED)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED)
    process = ManagedProcess(name="env", argv=["env"], log_path=tmp_path / "env.log").start()
    assert process.process is not None
    process.process.wait(30)
    tool = run_tool(["env"], what="env", timeout=30).stdout.decode()
    for environment in (process.log_path.read_text(), tool):
        assert RUN_ENV in environment
        assert PLANTED not in environment


ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other local users (CI runs as root)")


def _as(user: ServiceUser, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` (a stranger, or a server's own account), with a bare environment."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
                          preexec_fn=child_setup(user, signal.SIGKILL), check=False)  # fmt: skip


@ROOT_ONLY
def test_another_local_user_cannot_connect_to_a_throwaway_postgres(provider: Provider) -> None:
    server = LocalPostgres.create(f"uid{uuid.uuid4().hex[:6]}", binaries=provider.binaries)
    stranger, own = service_user(), server.account
    assert stranger is not None
    assert own is not None
    assert own.dedicated, "the server runs under an account of its own"
    psql = str(server.binaries.tool("psql"))

    def refused(user: ServiceUser, *argv: str) -> str:
        result = _as(user, [psql, *argv, "-w", "-c", "SELECT 1"])
        assert result.returncode != 0, f"{user.name} connected: {result.stdout}"
        return result.stderr

    try:
        socket = ("-h", str(server.workdir / "sock"), "-p", str(server.port), "-U", "postgres")
        assert "Permission denied" in refused(stranger, *socket)  # it cannot even reach the socket
        # The server's own account reaches its socket; peer authentication still says no.
        assert "Peer authentication failed" in refused(own.user, *socket)
        for user in (stranger, own.user):
            for role in ("postgres", OWNER_ROLE):
                tcp = refused(user, "-h", "127.0.0.1", "-p", str(server.port), "-U", role, "postgres")
                assert "no password supplied" in tcp
        with psycopg.connect(server.dsn(), connect_timeout=5) as conn:  # the harness itself still can
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))


def test_a_throwaway_redis_needs_its_password_and_sanitizes_what_it_loads() -> None:
    store = LocalRedis.create(f"auth{uuid.uuid4().hex[:6]}")
    try:
        with (
            redis.Redis(host=store.host, port=store.port, socket_timeout=5) as stranger,
            pytest.raises(redis.exceptions.AuthenticationError),
        ):
            stranger.ping()
        with store.client() as client:
            assert client.config_get("sanitize-dump-payload") == {"sanitize-dump-payload": "yes"}
        expected = store.account.user.uid if store.account is not None else os.geteuid()
        assert _uid(store.process.pid) == expected
    finally:
        store.stop()


@ROOT_ONLY
def test_one_servers_account_cannot_reach_another_server_and_leaves_nothing_running(provider: Provider) -> None:
    # What code a restored cluster runs as its server's OS user (the hostile-bucket review did it through a
    # base backup's catalog): read another Redis's password, rewrite another PostgreSQL's pg_hba, signal its
    # postmaster, plant a link where the harness writes, outlive the drill.
    victim_pg = LocalPostgres.create(f"vic{uuid.uuid4().hex[:6]}", binaries=provider.binaries)
    victim_redis = LocalRedis.create(f"vic{uuid.uuid4().hex[:6]}")
    attacker = LocalPostgres.create(f"atk{uuid.uuid4().hex[:6]}", binaries=provider.binaries)
    try:
        assert attacker.account is not None
        assert victim_pg.account is not None
        assert victim_redis.account is not None
        assert len({attacker.account.user.uid, victim_pg.account.user.uid, victim_redis.account.user.uid}) == 3
        own = attacker.account.user
        assert _as(own, ["cat", str(victim_redis.workdir / "redis.conf")]).returncode != 0
        assert _as(own, ["sh", "-c", f"echo 'host all all 127.0.0.1/32 trust' >> {victim_pg.workdir}/pg_hba.conf"]
                   ).returncode != 0  # fmt: skip
        assert _as(own, ["sh", "-c", f"echo x >> {victim_pg.data_dir}/postgresql.auto.conf"]).returncode != 0
        assert _as(own, ["kill", "-HUP", str(victim_pg.process.pid)]).returncode != 0
        assert _as(own, ["ln", "-s", "/root/.bashrc", str(attacker.workdir / "planted.log")]).returncode != 0
        lingering = subprocess.Popen(["sleep", "300"], preexec_fn=child_setup(own, signal.SIGKILL),
                                     start_new_session=True)  # fmt: skip
    finally:
        attacker.stop()
        victim_pg.stop()
        victim_redis.stop()
    # Reaped by the harness's kill (it waits for what it kills), so it is gone rather than our zombie.
    lingering.wait(10)
    assert not psutil.pid_exists(lingering.pid), "a process of the server's account outlived its server"
