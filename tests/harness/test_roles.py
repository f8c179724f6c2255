"""Roles, owners and grants restored as a real recovery restores them, from real globals and dumps.

Production here has an owner role that owns the shop's tables and an app role with SELECT and INSERT on one of
them, backed up by ``backup postgres`` (globals included). The drill must give the tables their owner and the app
role its grants, let the app connect as that role, refuse a dump whose owner the globals lack, ignore everything
in a hostile globals file but role names and memberships, and restore a dump without globals as before.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from harness.backup.postgres import DumpOptions, backup_postgres
from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.measure import Stopwatch
from harness.restore.roles import parse_globals
from harness.restore.staging import Staging, restore_logical
from harness.services.postgres import OWNER_ROLE, LocalPostgres, PostgresServer
from harness.services.provider import Provider
from harness.services.s3 import MotoS3
from harness.storage.catalogue import BackupObject, list_backups
from harness.storage.manifest import GLOBALS_SUFFIX, BackupManifest, Companion
from tests.harness.test_restore import TAKEN_AT
from tests.security.test_hostile_dump import canary_dir  # noqa: F401  (a fixture)


@dataclass
class Shop:
    """A production database with an owner role and an app role, dumped with its globals."""

    owner: str
    app: str
    deployment: Deployment
    manifest: BackupManifest
    client: Any

    @property
    def bucket(self) -> str:
        return self.deployment.backup_bucket

    def globals_text(self) -> str:
        body = self.client.get_object(Bucket=self.bucket, Key=self.manifest.key + GLOBALS_SUFFIX)["Body"].read()
        return bytes(body).decode()

    def with_globals(self, text: str | None) -> BackupManifest:
        """A copy of the dump under a new key, with ``text`` as its globals (``None``: without globals)."""
        key = self.manifest.key.replace(".dump", f"-{uuid.uuid4().hex[:6]}.dump")
        source = {"Bucket": self.bucket, "Key": self.manifest.key}
        self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source)
        if text is None:
            return self.manifest.model_copy(update={"key": key, "globals": None})
        raw = text.encode()
        self.client.put_object(Bucket=self.bucket, Key=key + GLOBALS_SUFFIX, Body=raw)
        described = Companion(sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))
        return self.manifest.model_copy(update={"key": key, "globals": described})

    def restore(self, provider: Provider, manifest: BackupManifest | None = None, *, app_role: str = "") -> Staging:
        dump = manifest or self.manifest
        config = self.deployment.config.with_changes(app={"database_role": app_role})
        return restore_logical(provider, self.deployment, config, BackupObject(dump.key, dump.taken_at, dump.size, ""),
                               dump, watch=Stopwatch(), name=f"roles-{uuid.uuid4().hex[:6]}")  # fmt: skip


@pytest.fixture(scope="module")
def shop(pg_server: PostgresServer, s3_server: MotoS3, drill_config: DrillConfig) -> Shop:
    tag = uuid.uuid4().hex[:6]
    owner, app = f"shop_owner_{tag}", f"shop_app_{tag}"
    name = f"shop_{tag}"
    pg_server.create_database(name)
    with pg_server.connect() as conn:
        conn.execute(f"CREATE ROLE {owner} NOLOGIN")
        conn.execute(f"CREATE ROLE {app} LOGIN")
    with pg_server.connect(name) as conn:
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
        conn.execute(f"SET ROLE {owner}")
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, created_at timestamptz DEFAULT now())")
        conn.execute("CREATE TABLE secrets (id int)")
        conn.execute("INSERT INTO orders (id) SELECT generate_series(1, 20)")
        conn.execute(f"GRANT SELECT, INSERT ON orders TO {app}")
        conn.execute("RESET ROLE")
        conn.execute("CREATE TABLE audit (id int)")  # owned by the bootstrap superuser, as often in production
    client = s3_server.client()
    bucket = f"roles-{tag}"
    client.create_bucket(Bucket=bucket)
    database = {"name": name, "critical_tables": ["orders"], "audit_table": ""}
    config = drill_config.with_changes(storage={"backup_bucket": bucket}, database=database)
    options = DumpOptions(critical_tables=("orders",), key_name="shop")
    pg_dump = pg_server.binaries.tool("pg_dump")
    manifest = backup_postgres(pg_server.dsn(name), client, bucket, config.storage.logical_prefix, pg_dump=pg_dump,
                               options=options, taken_at=TAKEN_AT)  # fmt: skip
    deployment = Deployment(name="roles", config=config, storage=s3_server.endpoint, redis_url=None,
                            database_host="127.0.0.1", verify_key="",
                            app_secrets={"CODEBLACK_SIGNING_KEY": SecretStr("B" * 43 + "=")})  # fmt: skip
    return Shop(owner, app, deployment, manifest, client)


@pytest.fixture
def restored(shop: Shop, provider: Provider) -> Iterator[Staging]:
    staging = shop.restore(provider, app_role=shop.app)
    yield staging
    staging.stop()


def test_the_backup_stores_the_roles_beside_the_dump_and_the_catalogue_keeps_them_apart(shop: Shop) -> None:
    assert shop.manifest.globals is not None
    raw = shop.globals_text().encode()
    assert (shop.manifest.globals.sha256, shop.manifest.globals.size) == (hashlib.sha256(raw).hexdigest(), len(raw))
    assert "PASSWORD" not in shop.globals_text()
    found = parse_globals(shop.globals_text())
    assert {shop.owner, shop.app} <= set(found.names)
    catalogue = list_backups(shop.client, shop.bucket, shop.deployment.config.storage.logical_prefix)
    assert [obj.key for obj in catalogue.objects] == [shop.manifest.key]
    assert shop.manifest.key + GLOBALS_SUFFIX in catalogue.companions


def test_owners_and_grants_are_restored_and_the_app_connects_as_its_role(shop: Shop, restored: Staging) -> None:
    with restored.postgres.connect(restored.dbname) as conn:
        owners = dict(conn.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"))
        granted = conn.execute(
            "SELECT has_table_privilege(%(a)s, 'orders', 'SELECT'), has_table_privilege(%(a)s, 'orders', 'INSERT'), "
            "has_table_privilege(%(a)s, 'orders', 'DELETE'), has_table_privilege(%(a)s, 'secrets', 'SELECT')",
            {"a": shop.app},
        ).fetchone()
        powers = conn.execute(
            "SELECT bool_or(rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication) FROM pg_roles "
            "WHERE rolname = ANY(%s)",
            ([shop.owner, shop.app],),
        ).fetchone()
        schema_create = conn.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (shop.owner,)).fetchone()
    assert owners == {"orders": shop.owner, "secrets": shop.owner, "audit": OWNER_ROLE}
    assert granted == (True, True, False, False)
    assert powers == (False,)
    assert schema_create == (True,)  # production's own grant, restored after the restore's temporary ones went
    assert restored.roles is not None
    assert restored.app_role == shop.app
    assert "1 object(s) of postgres owned by drill_owner" in restored.roles.describe()
    url = restored.app_database_url.replace("postgresql+psycopg://", "postgresql://")
    assert shop.app in url
    with psycopg.connect(url, connect_timeout=5) as app:
        assert app.execute("SELECT count(*) FROM orders").fetchone() == (20,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table secrets"):
            app.execute("SELECT count(*) FROM secrets")


def test_a_dump_whose_owner_the_globals_lack_fails_naming_the_role(shop: Shop, provider: Provider) -> None:
    kept = [line for line in shop.globals_text().splitlines() if shop.owner not in line]
    dump = shop.with_globals("\n".join(kept))
    with pytest.raises(CheckFailed) as failed:
        shop.restore(provider, dump)
    assert str(failed.value) == (
        f"{dump.key}: the dump's objects are owned by role '{shop.owner}' (e.g. TABLE public orders), which the "
        f"backup's globals ({dump.key}{GLOBALS_SUFFIX}) do not hold: a recovery would not restore their owner; "
        "back up the globals of the cluster the dump comes from"
    )


def test_a_grant_to_a_role_the_globals_lack_fails_naming_the_role(shop: Shop, provider: Provider) -> None:
    kept = [line for line in shop.globals_text().splitlines() if shop.app not in line]
    dump = shop.with_globals("\n".join(kept))
    with pytest.raises(CheckFailed) as failed:
        shop.restore(provider, dump)
    assert str(failed.value).startswith(
        f"{dump.key}: does not restore: the dump grants to or is owned by role '{shop.app}', which the backup's "
        f"globals ({dump.key}{GLOBALS_SUFFIX}) do not hold ("
    )


def test_the_app_role_must_be_a_role_of_the_globals(shop: Shop, provider: Provider) -> None:
    with pytest.raises(CheckFailed) as failed:
        shop.restore(provider, app_role="nobody_here")
    assert str(failed.value) == (
        f"[app] database_role 'nobody_here' is not a role of the backup's globals ({shop.manifest.key}"
        f"{GLOBALS_SUFFIX}): the app could not connect after a real recovery; fix [app] database_role or back up "
        "the globals of production's cluster"
    )


def test_a_hostile_globals_file_gives_no_role_any_power(
    shop: Shop, provider: Provider, canary_dir: Path  # noqa: F811
) -> None:  # fmt: skip
    canary = canary_dir / "globals"
    hostile = shop.globals_text() + "\n".join([
        f"ALTER ROLE {shop.app} WITH SUPERUSER;",
        f"ALTER ROLE {shop.app} SUPERUSER;",
        f"GRANT pg_execute_server_program TO {shop.app};",
        f"GRANT pg_read_server_files TO {shop.app} WITH INHERIT TRUE GRANTED BY postgres;",
        f"GRANT postgres TO {shop.app};",
        f"GRANT {OWNER_ROLE} TO {shop.app};",
        "CREATE ROLE evil SUPERUSER;",
        "CREATE ROLE evil2;",
        "ALTER ROLE evil2 WITH SUPERUSER LOGIN REPLICATION BYPASSRLS;",
        f"COPY (SELECT 1) TO PROGRAM 'touch {canary}';",
        f"\\! touch {canary}",
        f"CREATE ROLE x; COPY (SELECT 1) TO PROGRAM 'touch {canary}';",
    ]) + "\n"  # fmt: skip
    staging = shop.restore(provider, shop.with_globals(hostile), app_role=shop.app)
    try:
        with staging.postgres.connect() as conn:
            powerful = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname <> 'postgres' AND (rolsuper OR rolreplication OR "
                "rolbypassrls OR rolcreaterole OR rolcreatedb)"
            ).fetchall()
            builtin = conn.execute(
                "SELECT r.rolname, m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
                "JOIN pg_roles m ON m.oid = a.member WHERE m.rolname NOT LIKE 'pg\\_%%' "
                "AND (r.rolname LIKE 'pg\\_%%' OR r.rolname IN ('postgres', %s))",
                (OWNER_ROLE,),
            ).fetchall()
            names = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
        assert powerful == []
        assert builtin == []
        assert "evil" not in names
        assert "x" not in names
        assert not canary.exists()
        assert staging.roles is not None
        assert "pg_execute_server_program" in staging.roles.describe()
    finally:
        staging.stop()


def test_a_dump_without_globals_restores_as_before_with_a_warning(
    shop: Shop, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    dump = shop.with_globals(None)
    with caplog.at_level(logging.WARNING, logger="harness.restore"):
        staging = shop.restore(provider, dump, app_role=shop.app)
    try:
        with staging.postgres.connect(staging.dbname) as conn:
            owners = {row[0] for row in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
        assert owners == {OWNER_ROLE}
        assert staging.roles is None
        assert staging.app_role == OWNER_ROLE
        assert staging.roles_warning == (
            f"{dump.key} has no globals in its manifest (a dump taken by other tools, or before backup postgres "
            f"stored roles): restored with --no-owner --no-privileges as {OWNER_ROLE}; owners and grants were not "
            "verified"
        )
        assert staging.roles_warning in caplog.text
    finally:
        staging.stop()


def test_a_backup_user_that_cannot_read_the_roles_fails_naming_the_setting(s3_server: MotoS3) -> None:
    server = LocalPostgres.create(f"locked-{uuid.uuid4().hex[:6]}")
    try:
        with server.connect() as conn:
            conn.execute("REVOKE SELECT ON pg_catalog.pg_auth_members FROM PUBLIC")
        server.set_password("drill_owner")
        client = s3_server.client()
        bucket = f"locked-{uuid.uuid4().hex[:6]}"
        client.create_bucket(Bucket=bucket)
        pg_dump, dsn = server.binaries.tool("pg_dump"), server.dsn("postgres", OWNER_ROLE)
        with pytest.raises(HarnessError) as failed:
            backup_postgres(dsn, client, bucket, "postgres/logical/", pg_dump=pg_dump,
                            options=DumpOptions(critical_tables=()))  # fmt: skip
        message = str(failed.value)
        assert message.startswith("cannot store the roles beside postgres/logical/backup-")
        assert message.endswith(
            "; the backup user must be able to read the cluster's roles (pg_roles, pg_auth_members), or set [backup] "
            "globals = false in drill.toml (the drill then cannot verify owners and grants)"
        )
        assert "\n" not in message
        assert ": pg_dumpall: error: query failed: ERROR:  permission denied for table pg_auth_members; " in message
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing stored
        taken = backup_postgres(dsn, client, bucket, "postgres/logical/", pg_dump=pg_dump,
                                options=DumpOptions(critical_tables=(), globals=False))  # fmt: skip
        assert taken.globals is None
    finally:
        server.stop()
