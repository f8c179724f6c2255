"""Lock and duration budget measured from pg_locks while each revision runs on a table of real size."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from harness.errors import CheckFailed
from harness.migrations.deploy import DeployRehearsal
from harness.migrations.history import load_graph
from harness.migrations.locks import RevisionTiming, check_budgets
from harness.migrations.project import MigrationProject, connected
from harness.services.base import wait_until
from tests.data.migration_sets import build_project

ORDERS = 100_000
METADATA = "sandbox.codeblack.models:Base.metadata"


def _rehearse(case: str, head: str, tmp_path: Path, database: Any) -> DeployRehearsal:
    project = MigrationProject(build_project(case, tmp_path), head, "sandbox.codeblack.models:Base.metadata")
    project.upgrade(database, "b6e8dcb19a40")
    with connected(database) as connection:
        connection.execute(text("INSERT INTO applications (applicant_name, email, amount) VALUES ('A', 'a@x', 1)"))
        connection.execute(
            text(f"INSERT INTO orders (application_id, amount) SELECT 1, 1 FROM generate_series(1, {ORDERS})")
        )
        connection.commit()
    rehearsal = DeployRehearsal(project, load_graph(project), database)
    rehearsal.upgrade()
    return rehearsal


def test_a_table_rewrite_is_caught_naming_the_revision_and_the_table(tmp_path: Path, pg_database: Any) -> None:
    rehearsal = _rehearse("lock_rewrite", "10c4ed000001", tmp_path, pg_database)
    [timing] = rehearsal.timings
    assert timing.revision == "10c4ed000001"
    assert timing.table == "orders"
    assert 0 < timing.lock_s <= timing.wall_s + 0.05
    with pytest.raises(
        CheckFailed,
        match=r"revision 10c4ed000001 held an ACCESS EXCLUSIVE lock on orders for \d+\.\d\d s \(budget 0.01 s, "
        r"\[migrations\] lock_budget_s\)",
    ):
        check_budgets(rehearsal.timings, lock_budget_s=0.01, duration_budget_s=60)


def test_the_rehearsal_records_each_statement_its_duration_and_the_locks_it_took(
    tmp_path: Path, pg_database: Any
) -> None:
    rehearsal = _rehearse("lock_rewrite", "10c4ed000001", tmp_path, pg_database)
    [rewrite] = [seen for seen in rehearsal.statements if seen.statement.startswith("ALTER TABLE orders ADD COLUMN")]
    assert rewrite.revision == "10c4ed000001"
    assert 0 < rewrite.running_s <= rehearsal.timings[0].wall_s + 0.05
    assert rewrite.lock_wait_s == 0  # nothing else held a lock on orders
    assert [lock.row()[:3] for lock in rehearsal.locks if lock.table == "orders"] == [
        ["10c4ed000001", "orders", "AccessExclusiveLock"]
    ]


def test_a_statement_waiting_for_a_lock_another_session_holds_is_measured(tmp_path: Path, pg_database: Any) -> None:
    """A reader holds orders open until the watcher has seen the migration wait for it; the wait is then on record."""
    project = MigrationProject(build_project("lock_safe", tmp_path), "5afe00000001", METADATA)
    project.upgrade(pg_database, "b6e8dcb19a40")
    rewrite = tmp_path / "lock_safe" / "versions" / "5afe00000001_orders_index.py"
    for script in rewrite.parent.glob("5afe*.py"):
        script.unlink()
    (rewrite.parent / "10c4ed000002_orders_note.py").write_text(NOTE_REVISION)
    project = MigrationProject(project.script_location, "10c4ed000002", METADATA)
    rehearsal = DeployRehearsal(project, load_graph(project), pg_database)
    with connected(pg_database) as reader:
        reader.execute(text("SELECT count(*) FROM orders"))  # ACCESS SHARE on orders until this transaction ends
        release = threading.Thread(target=_release_when_waiting, args=(rehearsal, reader), daemon=True)
        release.start()
        rehearsal.upgrade()
        release.join(10)
    [note] = [seen for seen in rehearsal.statements if seen.statement.startswith("ALTER TABLE orders ADD COLUMN")]
    assert note.lock_wait_s > 0
    assert note.lock_wait_s <= note.running_s


NOTE_REVISION = '''"""orders.note"""
import sqlalchemy as sa
from alembic import op

revision = "10c4ed000002"
down_revision = "b6e8dcb19a40"


def upgrade():
    op.add_column("orders", sa.Column("note", sa.Text()))


def downgrade():
    op.drop_column("orders", "note")
'''


def _release_when_waiting(rehearsal: DeployRehearsal, reader: Any) -> None:
    """End the reader's transaction once the rehearsal's watcher has seen the migration wait (a known state)."""

    def seen_waiting() -> bool:
        watcher = rehearsal.watching
        return watcher is not None and watcher.wait_seen.is_set()

    try:
        wait_until(seen_waiting, timeout=30, what="the lock watcher to see the migration wait for the reader's lock")
    finally:
        reader.commit()  # the migration goes on either way; a wait never seen leaves the assertion below to fail


def test_a_concurrent_index_holds_no_access_exclusive_lock(tmp_path: Path, pg_database: Any) -> None:
    rehearsal = _rehearse("lock_safe", "5afe00000001", tmp_path, pg_database)
    [timing] = rehearsal.timings
    assert (timing.revision, timing.lock_s, timing.table) == ("5afe00000001", 0.0, None)
    check_budgets(rehearsal.timings, lock_budget_s=0.01, duration_budget_s=60)


def test_a_revision_over_its_duration_budget_fails_naming_it() -> None:
    slow = RevisionTiming("b6e8dcb19a40", wall_s=75.0, lock_s=0.0, table=None)
    with pytest.raises(CheckFailed, match=r"revision b6e8dcb19a40 ran for 75.00 s \(budget 60 s"):
        check_budgets([slow], lock_budget_s=5, duration_budget_s=60)
