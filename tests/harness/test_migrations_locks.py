"""Lock and duration budget measured from pg_locks while each revision runs on a table of real size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from harness.errors import CheckFailed
from harness.migrations.deploy import DeployRehearsal
from harness.migrations.history import load_graph
from harness.migrations.locks import RevisionTiming, check_budgets
from harness.migrations.project import MigrationProject, connected
from tests.data.migration_sets import build_project

ORDERS = 100_000


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


def test_a_concurrent_index_holds_no_access_exclusive_lock(tmp_path: Path, pg_database: Any) -> None:
    rehearsal = _rehearse("lock_safe", "5afe00000001", tmp_path, pg_database)
    [timing] = rehearsal.timings
    assert (timing.revision, timing.lock_s, timing.table) == ("5afe00000001", 0.0, None)
    check_budgets(rehearsal.timings, lock_budget_s=0.01, duration_budget_s=60)


def test_a_revision_over_its_duration_budget_fails_naming_it() -> None:
    slow = RevisionTiming("b6e8dcb19a40", wall_s=75.0, lock_s=0.0, table=None)
    with pytest.raises(CheckFailed, match=r"revision b6e8dcb19a40 ran for 75.00 s \(budget 60 s"):
        check_budgets([slow], lock_budget_s=5, duration_budget_s=60)
