"""Destructive operations from the migrations' own operations and offline SQL, and the backup checkpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from harness.config import load_config
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.migrations.checkpoint import newest_checkpoint
from harness.migrations.child import describe_type
from harness.migrations.destructive import (
    Checkpoint,
    ColumnType,
    check_checkpoint,
    find_destructive,
    narrowing,
)
from harness.migrations.history import load_graph
from harness.migrations.project import MigrationProject
from tests.data.migration_sets import build_project

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def destructive(tmp_path_factory: pytest.TempPathFactory) -> MigrationProject:
    root = build_project("destructive", tmp_path_factory.mktemp("sets"))
    return MigrationProject(root, "de1e7e000002", "sandbox.codeblack.models:Base.metadata")


def test_the_sandbox_chain_has_no_destructive_operation() -> None:
    project = MigrationProject.from_config(load_config())
    assert find_destructive(project, load_graph(project).order) == []


def test_a_dropped_column_and_a_narrowed_type_are_found_per_revision(destructive: MigrationProject) -> None:
    found = find_destructive(destructive, ["de1e7e000001", "de1e7e000002"])
    assert [operation.row() for operation in found] == [
        ["de1e7e000001", "ALTER TABLE orders DROP COLUMN currency", "drops a column and its values"],
        [
            "de1e7e000002",
            "ALTER TABLE applications ALTER COLUMN status TYPE VARCHAR(16)",
            "narrows TEXT to VARCHAR(16): longer values fail or are cut",
        ],
    ]


@pytest.mark.parametrize(
    ("existing", "new", "destructive"),
    [
        (sa.Integer(), sa.BigInteger(), False),
        (sa.BigInteger(), sa.Integer(), True),
        (sa.String(20), sa.String(40), False),
        (sa.String(40), sa.String(20), True),
        (sa.String(40), sa.Text(), False),
        (sa.Numeric(12, 2), sa.Numeric(10, 2), True),
        (sa.Text(), sa.Integer(), True),
        (None, sa.Text(), True),
    ],
)
def test_type_changes_that_can_lose_data_are_narrowing(existing: Any, new: Any, destructive: bool) -> None:
    new_type = ColumnType.of(describe_type(new))  # as the migration child describes them
    assert new_type is not None
    assert (narrowing(ColumnType.of(describe_type(existing)), new_type) is not None) is destructive


STALE_KEY = "s3://codeblack-backups/postgres/logical/codeblack-20261123T060000Z.dump"


@pytest.mark.parametrize(
    ("checkpoint", "reason"),
    [
        (None, r"and there is no full backup checkpoint at all"),
        (
            Checkpoint(STALE_KEY, NOW - timedelta(hours=30)),
            r"and the newest full backup checkpoint \(s3://codeblack-backups/postgres/logical/"
            r"codeblack-20261123T060000Z.dump\) is 30.0 h old, older than the 24 h allowed",
        ),
    ],
    ids=["no checkpoint", "stale checkpoint"],
)
def test_a_destructive_migration_without_a_fresh_checkpoint_fails_naming_revision_operation_and_age(
    destructive: MigrationProject, checkpoint: Checkpoint | None, reason: str
) -> None:
    found = find_destructive(destructive, ["de1e7e000001"])
    with pytest.raises(
        CheckFailed,
        match=r"revision de1e7e000001 \(de1e7e000001_drop_orders_currency\.py\): "
        r"'ALTER TABLE orders DROP COLUMN currency' drops a column and its values, " + reason,
    ):
        check_checkpoint(found, checkpoint, max_age_hours=24, now=NOW)


def test_a_destructive_migration_passes_after_a_fresh_checkpoint(destructive: MigrationProject) -> None:
    found = find_destructive(destructive, ["de1e7e000001"])
    check_checkpoint(found, Checkpoint("fresh.dump", NOW - timedelta(hours=1)), max_age_hours=24, now=NOW)


def test_nothing_destructive_needs_no_checkpoint() -> None:
    check_checkpoint([], None, max_age_hours=24, now=NOW)


def test_a_migration_that_needs_a_connection_counts_as_destructive(tmp_path: Path) -> None:
    root = build_project("destructive", tmp_path)
    script = root / "versions" / "de1e7e000001_drop_orders_currency.py"
    script.write_text(
        script.read_text().replace(
            '    op.drop_column("orders", "currency")', "    op.get_bind().execute(sa.text('SELECT 1')).fetchall()"
        )
    )
    project = MigrationProject(root, "de1e7e000002", "sandbox.codeblack.models:Base.metadata")
    [found] = find_destructive(project, ["de1e7e000001"])
    assert (found.revision, found.statement) == ("de1e7e000001", "upgrade()")
    assert found.reason.startswith("cannot run in offline mode, so it cannot be shown not to lose data (")
    with pytest.raises(CheckFailed, match=r"revision de1e7e000001 \(\S+\): 'upgrade\(\)' cannot run in offline mode"):
        check_checkpoint([found], None, max_age_hours=24, now=NOW)


def _deployment(s3_server: Any, bucket: str) -> Deployment:
    config = load_config().with_changes(storage={"backup_bucket": bucket})
    return Deployment(
        name="checkpoint", config=config, storage=s3_server.endpoint, redis_url=None, database_host="127.0.0.1",
        verify_key="",
    )  # fmt: skip


def test_the_checkpoint_is_the_newest_dump_or_base_backup_in_storage(s3_server: Any) -> None:
    bucket = f"codeblack-backups-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    deployment = _deployment(s3_server, bucket)
    assert newest_checkpoint(deployment) is None
    for key in (
        "postgres/logical/codeblack-20261124T060000Z.dump",
        "postgres/logical/codeblack-20261124T060000Z.dump.manifest.json",
        "postgres/base/daily/20261124T090000Z/base.tar.gz",
        "postgres/base/daily/20261124T090000Z/pg_wal.tar.gz",
    ):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert newest_checkpoint(deployment) == Checkpoint(
        f"s3://{bucket}/postgres/base/daily/20261124T090000Z/base.tar.gz", datetime(2026, 11, 24, 9, tzinfo=UTC)
    )


def test_unreadable_storage_is_a_setup_error_not_a_missing_checkpoint(s3_server: Any) -> None:
    with pytest.raises(HarnessError, match=r"codeblack-backups-missing"):
        newest_checkpoint(_deployment(s3_server, "codeblack-backups-missing"))
