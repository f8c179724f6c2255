"""Gates 1 and 2 on the files alone: tracked migrations, one linear chain, the expected head."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config
from harness.errors import CheckFailed
from harness.migrations.history import check_linear_history, check_tracked, load_graph
from harness.migrations.project import MigrationProject
from tests.data.migration_sets import build_project

SANDBOX_CHAIN = ["3f1c2a9d7b10", "7a2d4e6b8c21", "9c4e1f2a3b54", "d2a7c3e9f165", "b6e8dcb19a40"]


def _project(case: str, tmp_path: Path, expected_head: str = "b6e8dcb19a40") -> MigrationProject:
    return MigrationProject(build_project(case, tmp_path), expected_head, "sandbox.codeblack.models:Base.metadata")


def test_the_sandbox_history_is_tracked_linear_and_ends_at_the_expected_head() -> None:
    project = MigrationProject.from_config(load_config())
    check_tracked(project)
    graph = load_graph(project)
    check_linear_history(project, graph)
    assert graph.order == SANDBOX_CHAIN
    assert graph.heads == ("b6e8dcb19a40",)
    assert graph.after("9c4e1f2a3b54") == ["d2a7c3e9f165", "b6e8dcb19a40"]
    assert graph.after(None) == SANDBOX_CHAIN
    assert graph.evidence()[0] == {
        "revision": "3f1c2a9d7b10",
        "down_revision": "base",
        "head": False,
        "file": "3f1c2a9d7b10_applications_and_orders.py",
        "doc": "Create applications and orders.",
    }


def test_two_heads_fail_naming_both(tmp_path: Path) -> None:
    project = _project("two_heads", tmp_path)
    check_tracked(project)
    with pytest.raises(
        CheckFailed,
        match=r"has 2 heads \(b6e8dcb19a40 \(b6e8dcb19a40_orders_currency\.py\), "
        r"c0ffee000001 \(c0ffee000001_\w+\.py\)\)",
    ):
        check_linear_history(project, load_graph(project))


def test_a_head_other_than_the_expected_one_fails_naming_both(tmp_path: Path) -> None:
    project = _project("unexpected_head", tmp_path)
    with pytest.raises(CheckFailed, match=r"the migration head is e1e1e1e1e1e1, but the expected head is b6e8dcb19a40"):
        check_linear_history(project, load_graph(project))


def test_files_outside_the_chain_are_named(tmp_path: Path) -> None:
    project = _project("untracked_file", tmp_path)
    with pytest.raises(CheckFailed) as failure:
        check_tracked(project)
    message = str(failure.value)
    assert message.startswith("2 file(s) in ")
    assert "archive/f00d00000001_orders_note.py: sits in a subdirectory, which Alembic does not load" in message
    assert "orders_helpers.py: declares no revision id, so it is not part of the revision graph" in message


def test_a_file_that_fails_to_load_is_named(tmp_path: Path) -> None:
    project = _project("broken_file", tmp_path)
    with pytest.raises(
        CheckFailed,
        match=r"0bad00000001_orders_paid_at.py: fails to load \(ModuleNotFoundError: No module named "
        r"'sandbox.codeblack.no_such_module'\)",
    ):
        check_tracked(project)


def test_a_revision_id_declared_twice_is_named(tmp_path: Path) -> None:
    root = build_project("two_heads", tmp_path)
    twin = root / "versions" / "c0ffee000001_copy.py"
    twin.write_text((root / "versions" / "c0ffee000001_heartbeat_source_index.py").read_text())
    project = MigrationProject(root, "b6e8dcb19a40", "sandbox.codeblack.models:Base.metadata")
    with pytest.raises(CheckFailed, match=r"revision c0ffee000001 is declared by 2 files \(c0ffee000001_copy.py, "):
        check_tracked(project)


def test_building_the_graph_over_a_stray_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match=r"orders_helpers.py: declares no revision id"):
        load_graph(_project("untracked_file", tmp_path))


def test_a_down_revision_no_file_declares_breaks_the_graph(tmp_path: Path) -> None:
    root = build_project("two_heads", tmp_path)
    script = root / "versions" / "c0ffee000001_heartbeat_source_index.py"
    script.write_text(script.read_text().replace('down_revision = "d2a7c3e9f165"', 'down_revision = "0123456789ab"'))
    project = MigrationProject(root, "b6e8dcb19a40", "sandbox.codeblack.models:Base.metadata")
    with pytest.raises(CheckFailed, match=r"the revision graph is broken: .*0123456789ab"):
        load_graph(project)
