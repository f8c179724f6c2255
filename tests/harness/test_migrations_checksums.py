"""Tamper-evident history: applied migrations must not change after the fact; the command regenerates the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import CheckFailed
from harness.migrations.checksums import CHECKSUM_FILE, FileChecksum, check_checksums, compare_checksums
from harness.migrations.history import load_graph
from harness.migrations.project import MigrationProject
from tests.data.migration_sets import DEPLOYED_EDIT, build_project, edit_deployed_migration

HEAD_FILE = "b6e8dcb19a40_orders_currency.py"


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> MigrationProject:
    """A copy of the sandbox migrations whose checksum file the command wrote."""
    root = build_project("reviewed", tmp_path)
    config = root / "drill.toml"  # beside the project: its directory is the child's (readable) working directory
    config.write_text(f'[migrations]\nscript_location = "{root}"\n')
    main(["--config", str(config), "migrations", "record-checksums"])
    assert capsys.readouterr().out == f"wrote {root / CHECKSUM_FILE} (5 revisions)\n"
    return MigrationProject(root, "b6e8dcb19a40", "sandbox.codeblack.models:Base.metadata")


def _check(project: MigrationProject, deployed: str) -> list[str]:
    return check_checksums(compare_checksums(project, load_graph(project), deployed))


def test_unchanged_migrations_match_their_checksums(project: MigrationProject) -> None:
    lines = (project.script_location / CHECKSUM_FILE).read_text().splitlines()
    assert lines[0].endswith("  3f1c2a9d7b10  3f1c2a9d7b10_applications_and_orders.py")
    assert lines[-1].endswith("  *total*")
    assert _check(project, "d2a7c3e9f165")[-1] == "d2a7c3e9f165"


def test_an_applied_migration_edited_after_the_fact_is_named(project: MigrationProject) -> None:
    edit_deployed_migration(project.script_location)
    with pytest.raises(
        CheckFailed,
        match=r"1 applied migration\(s\) changed after the fact \(deployed head b6e8dcb19a40\): "
        rf"{DEPLOYED_EDIT} \(revision 7a2d4e6b8c21\) was edited after it was applied",
    ):
        _check(project, "b6e8dcb19a40")


def test_without_a_deployed_head_every_recorded_revision_counts_as_applied(project: MigrationProject) -> None:
    edit_deployed_migration(project.script_location)
    report = compare_checksums(project, load_graph(project), None, recorded_are_applied=True)
    with pytest.raises(
        CheckFailed, match=rf"{DEPLOYED_EDIT} \(revision 7a2d4e6b8c21\) was edited after it was applied"
    ):
        check_checksums(report)


def test_a_pending_migration_may_still_change(project: MigrationProject) -> None:
    script = project.versions_dir / HEAD_FILE
    script.write_text(script.read_text() + "\n# reviewed wording\n")
    _check(project, "d2a7c3e9f165")


def test_a_missing_checksum_file_fails_saying_how_to_record_it(project: MigrationProject) -> None:
    (project.script_location / CHECKSUM_FILE).unlink()
    with pytest.raises(
        CheckFailed,
        match=r"versions.sha256: no checksum file of the migrations, so an edit of an applied migration would pass "
        r"unseen; review them, run `codeblack-drills --config drill.toml migrations record-checksums` and commit",
    ):
        _check(project, "b6e8dcb19a40")


def test_the_comparison_shows_every_file_applied_or_pending(project: MigrationProject) -> None:
    report = compare_checksums(project, load_graph(project), "d2a7c3e9f165")
    rows = [file.row() for file in report.files]
    assert [row[0] for row in rows] == ["3f1c2a9d7b10", "7a2d4e6b8c21", "9c4e1f2a3b54", "d2a7c3e9f165", "b6e8dcb19a40"]
    assert [(row[2], row[5]) for row in rows][-2:] == [("yes", "unchanged"), ("no", "pending, may still change")]
    assert len(FileChecksum.HEADER) == len(rows[0])
    assert rows[0][3] == rows[0][4]


def test_an_applied_migration_missing_from_the_file_and_a_recorded_one_deleted_are_named(
    project: MigrationProject,
) -> None:
    checksum_file = project.script_location / CHECKSUM_FILE
    checksum_file.write_text(
        "".join(line for line in checksum_file.read_text().splitlines(True) if "9c4e1f" not in line)
    )
    (project.versions_dir / HEAD_FILE).unlink()
    with pytest.raises(CheckFailed) as failed:
        _check(project, "d2a7c3e9f165")
    assert str(failed.value).split(": ", 1)[1] == (
        f"9c4e1f2a3b54_config_entries_changes_and_history.py (revision 9c4e1f2a3b54) is not in {CHECKSUM_FILE}; "
        f"revision b6e8dcb19a40 ({HEAD_FILE}) is recorded but gone; revert the edit, or regenerate {CHECKSUM_FILE} "
        "after review"
    )
