"""The migration gates feature run as CI runs it, against drill configurations naming broken migration sets.

Each case is one ``pytest features/test_migration_gates.py`` in a subprocess with ``--drill-config`` pointing
at a file whose ``[migrations]`` names a broken copy of the sandbox migrations (``tests/data/migration_sets``).
Only the scenario that must catch the case runs (no world is built), and the assertion reads the scenario's
failure message from the JUnit report, so the operator-facing message itself is what is tested.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT
from tests.data.migration_sets import build_project

pytestmark = pytest.mark.slow

SANDBOX_METADATA = "sandbox.codeblack.models:Base.metadata"
DRIFT_METADATA = "tests.data.migration_sets.column_without_migration.models:metadata"


def _run_feature(tmp_path: Path, case: str, metadata: str, scenario: str) -> tuple[int, dict[str, str]]:
    """Run one scenario against the case; return pytest's exit code and each test's failure message."""
    config = tmp_path / "drill.toml"
    config.write_text(
        f'[target]\nname = "broken-{case}"\n\n[reports]\ndir = "{tmp_path / "reports"}"\n\n'
        f'[migrations]\nscript_location = "{build_project(case, tmp_path)}"\nexpected_head = "b6e8dcb19a40"\n'
        f'metadata = "{metadata}"\n'
    )
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "features/test_migration_gates.py", "-p", "no:randomly", "-q",
         f"--drill-config={config}", f"--alluredir={tmp_path / 'allure'}", f"--junitxml={junit}", "-k", scenario],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    cases = ET.parse(junit).getroot().iter("testcase")
    failures = {}
    for test in cases:
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
            "revision d0d0d0d0d003: downgrade does not restore the schema before it (1 difference(s)): "
            "constraint public.orders.ck_orders_amount_positive was left behind",
        ),
    ],
)
def test_the_feature_fails_the_broken_migration_set_naming_the_revision_and_reason(
    tmp_path: Path, case: str, metadata: str, scenario: str, message: str
) -> None:
    code, failures = _run_feature(tmp_path, case, metadata, scenario)
    assert code == 1, failures
    assert len(failures) == 1, failures
    assert message in next(iter(failures.values()))
