"""Tamper-evident history: applied migrations must not change after the fact; the command regenerates the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import CheckFailed, HarnessError
from harness.migrations.checksums import CHECKSUM_FILE, check_checksums, main
from harness.migrations.history import load_graph
from harness.migrations.project import MigrationProject
from tests.data.migration_sets import build_project

HEAD_FILE = "b6e8dcb19a40_orders_currency.py"


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> MigrationProject:
    """A copy of the sandbox migrations whose checksum file the command wrote."""
    root = build_project("reviewed", tmp_path)
    config = tmp_path / "drill.toml"
    config.write_text(f'[migrations]\nscript_location = "{root}"\n')
    assert main(["--drill-config", str(config)]) == 0
    assert capsys.readouterr().out == f"wrote {root / CHECKSUM_FILE} (5 revisions)\n"
    return MigrationProject(root, "b6e8dcb19a40", "sandbox.codeblack.models:Base.metadata")


def test_unchanged_migrations_match_their_checksums(project: MigrationProject) -> None:
    lines = (project.script_location / CHECKSUM_FILE).read_text().splitlines()
    assert lines[0].endswith("  3f1c2a9d7b10  3f1c2a9d7b10_applications_and_orders.py")
    assert lines[-1].endswith("  *total*")
    assert check_checksums(project, load_graph(project), "d2a7c3e9f165")[-1] == "d2a7c3e9f165"


def test_an_applied_migration_edited_after_the_fact_is_named(project: MigrationProject) -> None:
    script = project.versions_dir / "7a2d4e6b8c21_blacklist_entries.py"
    script.write_text(script.read_text().replace("\"kind IN ('email', 'phone', 'device')\"", "\"kind <> ''\""))
    with pytest.raises(
        CheckFailed,
        match=r"1 applied migration\(s\) changed after the fact \(deployed head b6e8dcb19a40\): "
        r"7a2d4e6b8c21_blacklist_entries.py \(revision 7a2d4e6b8c21\) was edited after it was applied",
    ):
        check_checksums(project, load_graph(project), "b6e8dcb19a40")


def test_a_pending_migration_may_still_change(project: MigrationProject) -> None:
    script = project.versions_dir / HEAD_FILE
    script.write_text(script.read_text() + "\n# reviewed wording\n")
    check_checksums(project, load_graph(project), "d2a7c3e9f165")


def test_a_missing_checksum_file_says_how_to_create_it(project: MigrationProject) -> None:
    (project.script_location / CHECKSUM_FILE).unlink()
    with pytest.raises(HarnessError, match=r"no checksum file of the migrations; review them and run `python -m"):
        check_checksums(project, load_graph(project), "b6e8dcb19a40")
