"""The offline SQL of pending migrations, linted by the real squawk binary, findings named per revision."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import MigrationSettings, load_config
from harness.errors import CheckFailed
from harness.migrations.history import load_graph
from harness.migrations.lint import check_lint, lint_revisions
from harness.migrations.project import MigrationProject
from tests.data.migration_sets import build_project

BLOCKING = MigrationSettings().lint_blocking_rules


def test_the_sandbox_chain_has_warnings_only() -> None:
    project = MigrationProject.from_config(load_config())
    graph = load_graph(project)
    report = lint_revisions(project, graph, graph.order, blocking_rules=BLOCKING)
    check_lint(report)
    assert list(report.sql) == graph.order
    assert "CREATE TABLE alembic_version" in report.sql["3f1c2a9d7b10"]
    assert "ALTER TABLE orders ADD COLUMN currency TEXT DEFAULT 'EUR' NOT NULL" in report.sql["b6e8dcb19a40"]
    # alembic_version's VARCHAR(32) is Alembic's own table: a warning, not a blocker.
    assert [(f.revision, f.rule, f.blocking) for f in report.findings] == [("3f1c2a9d7b10", "prefer-text-field", False)]


def test_nothing_pending_lints_nothing() -> None:
    project = MigrationProject.from_config(load_config())
    report = lint_revisions(project, load_graph(project), [], blocking_rules=BLOCKING)
    assert report.findings == ()
    assert report.script() == ""


def test_a_blocking_rule_fails_naming_the_revision_and_the_rule(tmp_path: Path) -> None:
    project = MigrationProject(build_project("destructive", tmp_path), "de1e7e000002", "unused:metadata")
    graph = load_graph(project)
    report = lint_revisions(project, graph, ["de1e7e000001", "de1e7e000002"], blocking_rules=BLOCKING)
    assert "-- revision de1e7e000002\n" in report.script()
    with pytest.raises(
        CheckFailed,
        match=r"1 blocking lint finding\(s\) in the pending migrations: revision de1e7e000001 line \d+: "
        r"ban-drop-column: Dropping a column may break existing clients\.",
    ):
        check_lint(report)
    warnings = {(f.revision, f.rule) for f in report.findings if not f.blocking}
    assert ("de1e7e000002", "changing-column-type") in warnings
