"""The migration gates feature run as CI runs it, against drill configurations naming broken migration sets.

Each case is one ``pytest features/test_migration_gates.py`` in a subprocess with ``--drill-config`` pointing
at a file whose ``[migrations]`` names a broken copy of the sandbox migrations (``tests/data/migration_sets``).
Only the scenario that must catch the case runs (no world is built), and the assertion reads the scenario's
failure message from the JUnit report, so the operator-facing message itself is what is tested.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT
from tests.data.migration_sets import DEPLOYED_EDIT, build_project, edit_deployed_migration

pytestmark = pytest.mark.slow

SANDBOX_METADATA = "sandbox.codeblack.models:Base.metadata"
DRIFT_METADATA = "tests.data.migration_sets.column_without_migration.models:metadata"


def _run_feature(
    tmp_path: Path, case: str, scenario: str, edit: Callable[[Path], None] | None = None, **migrations: object
) -> tuple[int, dict[str, str]]:
    """Run the scenarios matching ``scenario`` against the case (after ``edit`` of the copy); return the exit code
    and each failure message."""
    project = build_project(case, tmp_path)
    if edit is not None:
        edit(project)
    settings = {
        "script_location": str(project),
        "expected_head": "b6e8dcb19a40",
        "metadata": SANDBOX_METADATA,
        "pythonpath": [str(PROJECT_ROOT)],  # the drift case's models live under tests/
        **migrations,
    }
    config = project / "drill.toml"  # its directory is the migration child's working directory: readable by it
    config.write_text(
        f'[target]\nname = "broken-{case}"\nsandbox = true\n\n'
        f'[reports]\ndir = "{tmp_path / "reports"}"\n'
        f'plan = "{PROJECT_ROOT / "sandbox/backup-and-migration-plan.md"}"\n\n'
        "[migrations]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    )
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "features/test_migration_gates.py", "-p", "no:randomly", "-q",
         f"--drill-config={config}", f"--alluredir={tmp_path / 'allure'}", f"--junitxml={junit}", "-k", scenario],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    failures = {}
    for test in ET.parse(junit).getroot().iter("testcase"):
        found = [node.get("message", "") for node in (test.find("failure"), test.find("error")) if node is not None]
        if found:
            failures[test.get("name", "")] = found[0]
    return result.returncode, failures


@pytest.mark.parametrize(
    ("case", "metadata", "scenario", "message"),
    [
        (
            "two_heads",
            SANDBOX_METADATA,
            "linear_chain",
            "CheckFailed: the migration history has 2 heads (",
        ),
        (
            "column_without_migration",
            DRIFT_METADATA,
            "tracked_by_a_migration_file",
            "the models (tests.data.migration_sets.column_without_migration.models:metadata) differ in 1 place(s): "
            "column orders.note is in the models, but no migration adds it",
        ),
        (
            "downgrade_trace",
            SANDBOX_METADATA,
            "reversible",
            "revision d0d0d0d0d003 (d0d0d0d0d003_orders_note.py): downgrade does not restore the schema before it "
            "(1 difference(s)): "
            "constraint public.orders.ck_orders_amount_positive was left behind",
        ),
    ],
)
def test_the_feature_fails_the_broken_migration_set_naming_the_revision_and_reason(
    tmp_path: Path, case: str, metadata: str, scenario: str, message: str
) -> None:
    code, failures = _run_feature(tmp_path, case, scenario, metadata=metadata)
    assert code == 1, failures
    assert len(failures) == 1, failures
    assert message in next(iter(failures.values()))


def test_the_staging_rehearsal_catches_a_destructive_pending_migration_and_a_failure_on_real_data(
    tmp_path: Path,
) -> None:
    """One session against the sandbox world: checkpoint, lint and rehearsal scenarios on the same pending set."""
    code, failures = _run_feature(
        tmp_path, "deploy_breaks", "checkpoint or linter or rehearsed",
        expected_head="dd0000000002", checkpoint_max_age_hours=0.001,
    )  # fmt: skip
    assert code == 1, failures
    assert len(failures) == 3, failures
    checkpoint, lint, rehearsal = (
        next(message for name, message in failures.items() if key in name)
        for key in ("checkpoint", "linter", "rehearsed")
    )
    assert (
        "revision dd0000000001 (dd0000000001_drop_blacklist_reason.py): "
        "'ALTER TABLE blacklist_entries DROP COLUMN reason' drops a column" in checkpoint
    )
    assert "older than the 0.001 h allowed" in checkpoint
    assert "1 blocking lint finding(s) in the pending migrations: revision dd0000000001 line" in lint
    assert "ban-drop-column: Dropping a column may break existing clients." in lint
    assert (
        'revision dd0000000002 fails on the restored production data: IntegrityError: column "channel" of relation '
        '"orders" contains null values (applied before it: dd0000000001)'
    ) in rehearsal


def test_a_deployed_migration_edited_afterwards_is_named_with_its_checksums_and_controls(tmp_path: Path) -> None:
    """The sandbox world's production is at the head, so an edit of its second revision is an edit after deploy."""
    code, failures = _run_feature(
        tmp_path, "edited_after_deploy", "edited_after_it_was_deployed", edit_deployed_migration
    )
    assert code == 1, failures
    assert len(failures) == 1, failures
    assert (
        "1 applied migration(s) changed after the fact (deployed head b6e8dcb19a40): "
        f"{DEPLOYED_EDIT} (revision 7a2d4e6b8c21) was edited after it was applied"
    ) in next(iter(failures.values()))
    result = next(
        json.loads(path.read_text())
        for path in (tmp_path / "allure").glob("*-result.json")
        if json.loads(path.read_text())["name"] == "The migration history has not been edited after it was deployed"
    )
    attachments = [attachment["name"] for step in result["steps"] for attachment in step.get("attachments", [])]
    assert "checksums against the deployed head b6e8dcb19a40" in attachments
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert {("control", "ISO/IEC 27001:2022 A.8.32"), ("control", "SOC 2 CC8.1")} <= labels
    assert result["links"] == [
        {"type": "link", "url": "plan.html#migration-workflow", "name": "Plan: Migration Workflow"}
    ]
