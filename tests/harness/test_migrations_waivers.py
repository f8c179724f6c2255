"""Waivers: one rule for one subject, approved and reasoned in drill.toml, reported when used."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.config import MigrationSettings, Waiver, load_config
from harness.errors import CheckFailed, ConfigError
from harness.migrations.destructive import check_checkpoint, find_destructive
from harness.migrations.history import check_linear_history, load_graph
from harness.migrations.lint import check_lint, lint_revisions
from harness.migrations.project import MigrationProject
from harness.migrations.roundtrip import check_roundtrip
from harness.migrations.waivers import DESTRUCTIVE, EXPECTED_HEAD, REVERSIBLE, Waivers
from tests.data.migration_sets import build_project

METADATA = "sandbox.codeblack.models:Base.metadata"


def _waiver(rule: str, subject: str) -> Waiver:
    return Waiver(rule=rule, subject=subject, approved_by="ops-carol", reason="deliberate, reviewed in CHG-1042")


@pytest.fixture
def destructive(tmp_path: Path) -> MigrationProject:
    return MigrationProject(build_project("destructive", tmp_path), "de1e7e000002", METADATA)


def test_a_waived_destructive_revision_passes_and_the_waiver_is_returned(destructive: MigrationProject) -> None:
    found = find_destructive(destructive, ["de1e7e000001", "de1e7e000002"])
    first = _waiver(DESTRUCTIVE, "de1e7e000001")
    now = datetime.now(UTC)
    with pytest.raises(
        CheckFailed,
        match=r"^revision de1e7e000002 \(de1e7e000002_narrow_application_status\.py\): "
        r".* narrows TEXT to VARCHAR\(16\)",
    ):
        check_checkpoint(found, None, max_age_hours=24, now=now, waivers=Waivers.of([first]))
    both = Waivers.of([first, _waiver(DESTRUCTIVE, "de1e7e000002")])
    assert check_checkpoint(found, None, max_age_hours=24, now=now, waivers=both) == list(both.entries)


def test_a_waived_lint_finding_does_not_block(destructive: MigrationProject) -> None:
    graph = load_graph(destructive)
    rules = MigrationSettings().lint_blocking_rules
    report = lint_revisions(destructive, graph, ["de1e7e000001"], blocking_rules=rules)
    waiver = _waiver("ban-drop-column", "de1e7e000001")
    assert check_lint(report, Waivers.of([waiver])) == [waiver]
    with pytest.raises(CheckFailed, match=r"revision de1e7e000001 line \d+: ban-drop-column"):
        check_lint(report, Waivers.of([_waiver("ban-drop-column", "de1e7e000002")]))


def test_a_waived_head_passes_only_for_that_head(tmp_path: Path) -> None:
    project = MigrationProject(build_project("unexpected_head", tmp_path), "b6e8dcb19a40", METADATA)
    graph = load_graph(project)
    waiver = _waiver(EXPECTED_HEAD, "e1e1e1e1e1e1")
    assert check_linear_history(project, graph, Waivers.of([waiver])) == [waiver]
    with pytest.raises(CheckFailed, match=r"the migration head is e1e1e1e1e1e1"):
        check_linear_history(project, graph, Waivers.of([_waiver(EXPECTED_HEAD, "b6e8dcb19a40")]))


def test_a_waived_irreversible_revision_is_exempt_from_the_round_trip(tmp_path: Path, pg_database: Any) -> None:
    project = MigrationProject(build_project("downgrade_fails", tmp_path), "d0d0d0d0d001", METADATA)
    waivers = Waivers.of([_waiver(REVERSIBLE, "d0d0d0d0d001")])
    results = check_roundtrip(project, load_graph(project), pg_database, waivers=waivers)
    assert results[-1].reversed is False


def test_a_waiver_without_a_reason_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "drill.toml"
    config.write_text('[[waivers]]\nrule = "reversible"\nsubject = "d0d0d0d0d001"\napproved_by = "ops-carol"\n')
    with pytest.raises(ConfigError, match=r"drill.toml: \[waivers\] 0.reason: Field required"):
        load_config(config)
