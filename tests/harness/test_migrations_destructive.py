"""Destructive operations from the migrations' own operations and offline SQL, and the backup checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from harness.config import load_config
from harness.errors import CheckFailed
from harness.migrations.destructive import Checkpoint, check_checkpoint, find_destructive, narrowing
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
    assert (narrowing(existing, new) is not None) is destructive


def test_a_destructive_migration_without_any_checkpoint_fails(destructive: MigrationProject) -> None:
    found = find_destructive(destructive, ["de1e7e000001"])
    with pytest.raises(
        CheckFailed,
        match=r"revision de1e7e000001: 'ALTER TABLE orders DROP COLUMN currency' drops a column and its values, "
        r"and there is no full backup checkpoint at all",
    ):
        check_checkpoint(found, None, max_age_hours=24, now=NOW)


def test_a_destructive_migration_with_a_stale_checkpoint_fails_naming_its_age(destructive: MigrationProject) -> None:
    found = find_destructive(destructive, ["de1e7e000001"])
    stale = Checkpoint(
        "s3://codeblack-backups/postgres/logical/codeblack-20261123T060000Z.dump", NOW - timedelta(hours=30)
    )
    with pytest.raises(
        CheckFailed,
        match=r"revision de1e7e000001: .* and the newest full backup checkpoint \(s3://codeblack-backups/postgres/"
        r"logical/codeblack-20261123T060000Z.dump\) is 30.0 h old, older than the 24 h allowed",
    ):
        check_checkpoint(found, stale, max_age_hours=24, now=NOW)


def test_a_destructive_migration_passes_after_a_fresh_checkpoint(destructive: MigrationProject) -> None:
    found = find_destructive(destructive, ["de1e7e000001"])
    check_checkpoint(found, Checkpoint("fresh.dump", NOW - timedelta(hours=1)), max_age_hours=24, now=NOW)


def test_nothing_destructive_needs_no_checkpoint() -> None:
    check_checkpoint([], None, max_age_hours=24, now=NOW)


def test_a_migration_that_needs_a_connection_cannot_be_judged_offline(tmp_path: Path) -> None:
    root = build_project("destructive", tmp_path)
    script = root / "versions" / "de1e7e000001_drop_orders_currency.py"
    script.write_text(
        script.read_text().replace(
            '    op.drop_column("orders", "currency")', "    op.get_bind().execute(sa.text('SELECT 1')).fetchall()"
        )
    )
    project = MigrationProject(root, "de1e7e000002", "sandbox.codeblack.models:Base.metadata")
    with pytest.raises(CheckFailed, match=r"revision de1e7e000001: upgrade\(\) cannot run in offline mode"):
        find_destructive(project, ["de1e7e000001"])
