"""A ``[[databases]]`` entry restores only a dump of its own database, whatever prefix the dump sits under.

Two tenants' databases of the same schema count alike: a dump of one stored under the other's prefix (the cron
job of the second kept the first's DSN) restores and counts clean, so the second database, which has no
backup at all, would earn a GO. Its manifest, signed by the backup host, records the database it dumped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.backup.postgres import backup_postgres, dump_options
from harness.config import DrillConfig, load_config
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.measure.stopwatch import Stopwatch
from harness.restore.dump_header import parse_dump_header
from harness.restore.select import check_dumped_database, newest_backup
from harness.restore.staging import restore_logical
from harness.services.postgres import PostgresServer
from harness.services.provider import Provider
from harness.services.s3 import S3Server
from harness.storage.manifest import MANIFEST_SUFFIX
from sandbox.target import toml_text

SCHEMA = "CREATE TABLE accounts (id int PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());" \
         "INSERT INTO accounts SELECT g FROM generate_series(1, 3) g;"  # fmt: skip


@pytest.fixture
def tenants(pg_server: PostgresServer, tmp_path: Path) -> Iterator[tuple[DrillConfig, str, str]]:
    """Two tenants' databases of one schema, listed as ``[[databases]]``."""
    suffix = uuid.uuid4().hex[:6]
    first, second = f"tenant_a_{suffix}", f"tenant_b_{suffix}"
    for name in (first, second):
        pg_server.create_database(name)
        with pg_server.connect(name) as conn:
            conn.execute(SCHEMA)
    entries = [{"name": name, "critical_tables": ["accounts"], "require_recent_inserts": False}
               for name in (first, second)]  # fmt: skip
    (tmp_path / "drill.toml").write_text(toml_text({
        "target": {"name": "tenants", "sandbox": False},
        "storage": {"backup_bucket": f"tenants-{suffix}", "uploads_bucket": "", "base_backups": False},
        "databases": entries, "redis": {"enabled": False}, "app": {"enabled": False},
        "migrations": {"enabled": False}}))  # fmt: skip
    yield load_config(tmp_path / "drill.toml"), first, second
    for name in (first, second):
        pg_server.drop_database(name)


def test_a_dump_of_another_database_under_an_entry_s_prefix_is_refused(
    tenants: tuple[DrillConfig, str, str], pg_server: PostgresServer, s3_server: S3Server, provider: Provider
) -> None:
    config, first, second = tenants
    client = s3_server.client()
    client.create_bucket(Bucket=config.storage.backup_bucket)
    target = Deployment(name="tenants", config=config, storage=s3_server.endpoint, redis_url=None,
                        database_host="", verify_key="")  # fmt: skip
    view = config.for_database(second)
    # The second tenant's cron, with the first tenant's DSN, on a backup host whose codeblack-drills does not yet
    # hold the DSN to the entry (test_the_backup_refuses_...): the first's data under the second's prefix.
    older = replace(dump_options(view), database_name="")
    backup_postgres(pg_server.dsn(first), client, config.storage.backup_bucket, view.storage.logical_prefix,
                    pg_dump=pg_server.binaries.tool("pg_dump"), options=older)  # fmt: skip
    dump, manifest = newest_backup(target, [view.storage.logical_prefix])
    assert manifest is not None
    with pytest.raises(CheckFailed) as refused:
        restore_logical(provider, target, view, dump, manifest, watch=Stopwatch(), name="mislabelled")
    assert str(refused.value) == (
        f"{dump.key!r}: its manifest records a dump of database {first!r}, not of {second!r} ([[databases]]); "
        f"back {second!r} up with a DSN of that database (backup postgres --database {second})"
    )
    # Without its manifest (a dump taken by other tools), the dump's own header still names the first tenant.
    client.delete_object(Bucket=config.storage.backup_bucket, Key=dump.key + MANIFEST_SUFFIX)
    assert newest_backup(target, [view.storage.logical_prefix]) == (dump, None)
    with pytest.raises(CheckFailed) as refused:
        restore_logical(provider, target, view, dump, None, watch=Stopwatch(), name="mislabelled")
    assert str(refused.value) == (
        f"{dump.key!r}: its header records a dump of database {first!r}, not of {second!r} ([[databases]]); "
        f"back {second!r} up with a DSN of that database (backup postgres --database {second})"
    )
    # The control: the second tenant's own dump, taken later, is its newest and is its own.
    backup_postgres(pg_server.dsn(second), client, config.storage.backup_bucket, view.storage.logical_prefix,
                    pg_dump=pg_server.binaries.tool("pg_dump"), options=dump_options(view))  # fmt: skip
    chosen, own = newest_backup(target, [view.storage.logical_prefix])
    assert own is not None
    assert own.database == second
    head = client.get_object(Bucket=config.storage.backup_bucket, Key=chosen.key, Range="bytes=0-4095")
    header = parse_dump_header(head["Body"].read())
    assert header is not None
    assert header.database == second
    check_dumped_database(view, chosen.key, own, header)


def test_the_backup_refuses_a_dsn_of_another_database_than_the_entry_s(
    tenants: tuple[DrillConfig, str, str], pg_server: PostgresServer, s3_server: S3Server
) -> None:
    """The cron job that kept the first tenant's DSN fails at once, before anything is stored under the prefix."""
    config, first, second = tenants
    client = s3_server.client()
    client.create_bucket(Bucket=config.storage.backup_bucket)
    view = config.for_database(second)
    with pytest.raises(HarnessError) as refused:
        backup_postgres(pg_server.dsn(first), client, config.storage.backup_bucket, view.storage.logical_prefix,
                        pg_dump=pg_server.binaries.tool("pg_dump"), options=dump_options(view))  # fmt: skip
    assert str(refused.value) == (
        f"the DSN connects to database {first!r}, not to {second!r} of [[databases]] (whose dumps this prefix "
        "holds): point --dsn-env at that database"
    )
    assert client.list_objects_v2(Bucket=config.storage.backup_bucket).get("KeyCount") == 0
