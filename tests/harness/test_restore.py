"""Logical restore into throwaway staging from real pg_dump backups in moto: the good case and each broken one.

The "production" here is a migrated database with rows spread over three days and real dumps taken by the
backup side (:func:`harness.backup.postgres.backup_postgres`), so manifests are written the way production
writes them. After every case no staging server or directory of that case may be left behind.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import psycopg
import pytest
from alembic import command
from pydantic import SecretStr

from harness import progress
from harness.backup.postgres import backup_postgres, dump_options
from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError, UnsafeTargetError
from harness.integrity import check_amcheck
from harness.measure import Stopwatch
from harness.restore.staging import Staging, restore_logical
from harness.services.base import LABEL, run_id, wait_until
from harness.services.postgres import OWNER_ROLE
from harness.services.provider import Provider
from harness.storage.catalogue import BackupObject
from harness.storage.manifest import GLOBALS_SUFFIX, BackupManifest
from sandbox.codeblack.revisions import alembic_config

TAKEN_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def seed_production(dsn: str, sqlalchemy_url: str, *, newest: datetime, orders: int = 60) -> None:
    """Migrate to head and insert rows into every critical table, spread over the 3 days up to ``newest``."""
    command.upgrade(alembic_config(sqlalchemy_url), "head")
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Hourly steps back from `newest`: rows fall both inside and outside the 24 h before the backup.
        conn.execute(
            "INSERT INTO applications (applicant_name, email, amount, created_at) "
            "SELECT 'a' || i, 'a' || i || '@example.org', i, %s - make_interval(hours => i %% 72) "
            "FROM generate_series(1, 40) i",
            [newest],
        )
        conn.execute(
            "INSERT INTO orders (application_id, amount, created_at) "
            "SELECT (SELECT min(id) FROM applications), i, %s - make_interval(hours => i %% 72) "
            "FROM generate_series(1, %s) i",
            [newest, orders],
        )
        conn.execute(
            "INSERT INTO blacklist_entries (kind, value, created_at) "
            "SELECT 'email', 'b' || i, %s - make_interval(hours => i %% 72) FROM generate_series(1, 30) i",
            [newest],
        )
        conn.execute(
            "INSERT INTO config_change_history (config_key, action, actor, status, created_at) "
            "SELECT 'limits.daily', 'applied', 'ops-bob', 'applied', %s - make_interval(hours => i %% 72) "
            "FROM generate_series(1, 30) i",
            [newest],
        )


@dataclass
class Production:
    """A source database, a backup bucket holding its dump, and the deployment pointing at that bucket."""

    deployment: Deployment
    manifest: BackupManifest
    client: Any

    def body(self) -> bytes:
        """The dump's bytes as stored."""
        response = self.client.get_object(Bucket=self.deployment.backup_bucket, Key=self.manifest.key)
        return bytes(response["Body"].read())

    def restore(self, provider: Provider, manifest: BackupManifest | None = None, *, name: str) -> Staging:
        """Restore ``manifest``'s dump (default: the good one) as the drill would."""
        dump = manifest or self.manifest
        return restore_logical(provider, self.deployment, self.deployment.config, as_object(dump), dump,
                               watch=Stopwatch(), name=name)  # fmt: skip

    def variant(self, data: bytes | None = None, **manifest_changes: Any) -> BackupManifest:
        """Store a copy of the dump (optionally different bytes) under a new key, with a changed manifest."""
        body = self.body()
        key = self.manifest.key.replace(".dump", f"-{uuid.uuid4().hex[:6]}.dump")
        stored = body if data is None else data
        self.client.put_object(Bucket=self.deployment.backup_bucket, Key=key, Body=stored)
        if self.manifest.globals is not None:  # the roles go with the dump
            bucket, roles = self.deployment.backup_bucket, self.manifest.key + GLOBALS_SUFFIX
            source = {"Bucket": bucket, "Key": roles}
            self.client.copy_object(Bucket=bucket, Key=key + GLOBALS_SUFFIX, CopySource=source)
        return self.manifest.model_copy(update={"key": key, **manifest_changes})


def make_production(
    pg_server: Any, s3_server: Any, config: DrillConfig, *, newest: datetime, orders: int = 60, extra_sql: str = ""
) -> Production:
    """Seed a database on ``pg_server`` and dump it into a fresh bucket, as production's backup job would.

    ``extra_sql`` runs as superuser after the seed, before the dump (e.g. to plant hostile objects).
    """
    name = f"prod_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name)
    seed_production(pg_server.dsn(name), pg_server.sqlalchemy_url(name), newest=newest, orders=orders)
    if extra_sql:
        with pg_server.connect(name) as conn:
            conn.execute(extra_sql)
    client = s3_server.client()
    bucket = f"backups-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    config = config.with_changes(storage={"backup_bucket": bucket})
    manifest = backup_postgres(
        pg_server.dsn(name), client, bucket, config.storage.logical_prefix,
        pg_dump=pg_server.binaries.tool("pg_dump"), options=dump_options(config), taken_at=TAKEN_AT,
    )  # fmt: skip
    deployment = Deployment(
        name="test", config=config, storage=s3_server.endpoint, redis_url=None, database_host="127.0.0.1",
        verify_key="", app_secrets={"CODEBLACK_SIGNING_KEY": SecretStr("B" * 43 + "=")},
    )  # fmt: skip
    return Production(deployment, manifest, client)


@pytest.fixture(scope="module")
def production(pg_server: Any, s3_server: Any, drill_config: DrillConfig) -> Production:
    return make_production(pg_server, s3_server, drill_config, newest=TAKEN_AT - timedelta(minutes=1))


def as_object(manifest: BackupManifest) -> BackupObject:
    """The listing entry of a dump, as the catalogue would give it."""
    return BackupObject(manifest.key, manifest.taken_at, manifest.size, "")


def leftovers(name: str) -> list[str]:
    """Processes and directories of this run labelled with the staging ``name``."""
    label = f"{LABEL}-{run_id()}-"
    procs = [
        " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
        if any(f"cluster_name={label}{name}" == part.removeprefix("-c ") for part in p.info["cmdline"] or [])
    ]
    dirs = (
        glob.glob(f"/tmp/{label}pg-{name}-*")
        + glob.glob(f"/tmp/{label}pgpass-{name}-*")
        + glob.glob(f"/tmp/{label}dump-*")
        + glob.glob(f"/tmp/{label}pgdata-ahead-*")  # the template copy made while the header was on its way
    )
    return procs + dirs


@pytest.fixture
def staging_name() -> Iterator[str]:
    name = f"stg{uuid.uuid4().hex[:6]}"
    yield name
    assert leftovers(name) == []


def test_the_newest_dump_restores_with_its_counts_and_timings(
    provider: Provider, production: Production, staging_name: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="harness.progress"):
        staging = production.restore(provider, name=staging_name)
    watch = staging.timings
    try:
        with staging.postgres.connect(staging.dbname) as conn:
            row = conn.execute("SELECT count(*) FROM orders").fetchone()
        assert row == (production.manifest.tables["orders"].rows,)
        assert staging.download.sha256 == production.manifest.sha256
        assert set(watch.phases) == {"download", "provision", "restore", "checks"}
        assert "processing data for table" in staging.restore_log
        assert staging.jobs == (os.cpu_count() or 1)
        # pg_restore's progress: items done of the dump's TOC entries, counted from its verbose log.
        restored = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pg_restore of ")]
        total = int(restored[0].split(" of ")[2].split()[0])
        assert total > 20  # tables, data, sequences, constraints, indexes of the migrated schema
        counts = [int(line.split(": ")[1].split()[0]) for line in restored[:-1]]
        assert (counts[0], counts[-1]) == (1, total), counts  # one line per item seen, ending at the total
        assert counts == sorted(set(counts)), counts
        assert re.fullmatch(rf"pg_restore of {production.manifest.key}: done, {total} items in [\d.]+ s "
                            rf"\(\d+ items/s\), {staging.jobs} jobs", restored[-1])  # fmt: skip
    finally:
        staging.stop()


def test_a_dump_owned_by_superuser_names_only_restores_without_owners_and_without_refusals(
    provider: Provider, production: Production, staging_name: str
) -> None:
    # Production's objects are all postgres's: each ownership change would be refused (and the refusal would
    # cost the data load its WAL-free TRUNCATE-then-COPY), so none is attempted; the objects end the same.
    staging = production.restore(provider, name=staging_name)
    try:
        assert staging.roles is not None
        assert "must be able to SET ROLE" not in staging.restore_log
        assert (f"every object is owned by postgres (staging's superuser names): restored without owners, all owned "
                f"by {OWNER_ROLE}") in staging.roles.describe()  # fmt: skip
        with staging.postgres.connect(staging.dbname) as conn:
            owners = {row[0] for row in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
        assert owners == {OWNER_ROLE}
    finally:
        staging.stop()


def test_a_dump_whose_hash_differs_from_its_manifest_is_refused(
    provider: Provider, production: Production, staging_name: str
) -> None:
    bad = production.variant(sha256="f" * 64)
    with pytest.raises(
        CheckFailed, match=rf"^{bad.key}: sha256 {production.manifest.sha256} differs from the manifest's f{{64}}$"
    ):
        production.restore(provider, bad, name=staging_name)


def test_a_truncated_dump_is_refused_by_its_size(provider: Provider, production: Production, staging_name: str) -> None:
    body = production.body()
    bad = production.variant(body[: len(body) // 2])
    with pytest.raises(
        CheckFailed,
        match=rf"^{bad.key}: storage holds {len(body) // 2} bytes but its manifest says {len(body)}; not downloaded$",
    ):
        production.restore(provider, bad, name=staging_name)


def test_a_truncated_dump_with_a_matching_manifest_fails_with_pg_restores_message(
    provider: Provider, production: Production, staging_name: str
) -> None:
    body = production.body()
    cut = body[: len(body) * 2 // 3]
    bad = production.variant(cut, size=len(cut), sha256=hashlib.sha256(cut).hexdigest())
    with pytest.raises(
        CheckFailed, match=rf"^{bad.key}: does not restore: pg_restore of {bad.key} failed: pg_restore: error: "
    ):
        production.restore(provider, bad, name=staging_name)


_HOLD = """
CREATE FUNCTION hold_restore() RETURNS event_trigger LANGUAGE plpgsql
    AS $$ BEGIN
        IF current_setting('application_name') = 'pg_restore' THEN  -- not the harness's own grants between passes
            PERFORM pg_advisory_xact_lock_shared(4242);
        END IF;
    END $$;
CREATE EVENT TRIGGER hold_restore ON ddl_command_start EXECUTE FUNCTION hold_restore();
"""
"""Makes pg_restore's first DDL statement in the database wait for advisory lock 4242."""

_HELD = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_restore' "
         "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")  # fmt: skip


def test_staging_killed_during_pg_restore_fails_naming_the_cause(
    provider: Provider, production: Production, staging_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic: the restored database is made to hold pg_restore's first DDL statement on an advisory lock
    # this test holds, set up synchronously when the harness creates that database (before pg_restore starts);
    # the server is killed only once pg_stat_activity shows pg_restore waiting on it.
    killed = threading.Event()
    errors: list[BaseException] = []
    make_server = provider.postgres

    def kill_once_held(server: Any, holder: psycopg.Connection[Any]) -> None:
        try:
            wait_until(lambda: holder.execute(_HELD).fetchone() == (1,), timeout=60, what="pg_restore held")
            server.kill()
            killed.set()
        except BaseException as exc:  # reported by the test body, which would otherwise see only the restore
            errors.append(exc)
        finally:
            with contextlib.suppress(psycopg.Error):
                holder.close()  # releases the lock, if the server still ran

    def holding_postgres(name: str, **kwargs: Any) -> Any:
        server = make_server(name, **kwargs)
        create_database = server.create_database

        def create_and_hold(dbname: str, owner: str | None = None) -> str:
            dsn = create_database(dbname, owner)
            holder = server.connect(dbname)
            holder.execute("SELECT pg_advisory_lock(4242)")
            holder.execute(_HOLD)
            threading.Thread(target=kill_once_held, args=(server, holder), daemon=True).start()
            return dsn

        server.create_database = create_and_hold
        return server

    monkeypatch.setattr(provider, "postgres", holding_postgres)
    try:
        production.restore(provider, name=staging_name).stop()
        died = "the restore finished"
    except HarnessError as exc:
        died = str(exc)
    assert not errors, errors
    assert killed.is_set()
    assert died.startswith(f"staging PostgreSQL {staging_name} died during pg_restore of {production.manifest.key}: ")


def test_a_dump_without_a_manifest_restores_and_says_so(
    provider: Provider, production: Production, staging_name: str
) -> None:
    config = production.deployment.config
    obj = as_object(production.manifest)
    staging = restore_logical(provider, production.deployment, config, obj, None, watch=Stopwatch(), name=staging_name)
    try:
        assert not staging.has_manifest
        assert staging.dump.sha256 == production.manifest.sha256
        assert staging.dump.tables == {}
    finally:
        staging.stop()


def test_the_guard_refuses_a_server_this_run_did_not_create(provider: Provider, staging_name: str) -> None:
    # A real server whose identity is not this run's (as production's would be), though it sits on a loopback port.
    foreign = provider.postgres(staging_name, settings={"cluster_name": "production-main"})
    try:
        with pytest.raises(UnsafeTargetError, match=r"cluster_name is 'production-main', not this run's"):
            check_amcheck(foreign, "postgres")
        with foreign.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'").fetchone() == (0,)
    finally:
        foreign.stop()
