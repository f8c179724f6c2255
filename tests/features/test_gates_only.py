"""A foreign Alembic project gated as its CI would: ``pytest features/ -m predeploy`` against its own drill.toml.

``tests/data/foreign_project`` is unlike the sandbox: its first migration creates ``uuid-ossp`` (which its
drill.toml declares, so the gates run on Debian's postgresql-15 with contrib, not the embedded 18 that lacks it),
its ``env.py`` asserts ``config.config_file_name``, builds its engine from its own settings
(``SHELF_DATABASE_URL``, validated by pydantic, read through ``envkit``, a local package of its own) and ignores
any connection offered; its models are a package whose relationships name each other by string across modules. Its
drill.toml declares only ``[migrations]``, with the project's own interpreter: a virtual environment made here that
holds ``envkit`` (the drill's own interpreter does not).

Each case copies the project, breaks it the way a pull request would, and runs the suite in a subprocess with no
storage, app or signing secret in its environment; the failure message is read from the JUnit report.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT
from tests.security.test_hostile_migration_file import CHILD_HAS_AN_ACCOUNT

pytestmark = pytest.mark.slow

FOREIGN = Path(__file__).resolve().parent.parent / "data" / "foreign_project"
NOT_APPLICABLE = "not applicable: "


@dataclass(frozen=True)
class GatesRun:
    """What one gates-only run did."""

    returncode: int
    output: str
    failures: dict[str, str]
    skipped: dict[str, str]


def _project(tmp_path: Path) -> Path:
    """A copy of the foreign project with its own interpreter in ``.venv`` (its dependencies, envkit included)."""
    project = tmp_path / "shelf"
    shutil.copytree(FOREIGN, project, ignore=shutil.ignore_patterns("__pycache__", "reports", ".venv"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", project / ".venv"], check=True, timeout=120)
    packages = next((project / ".venv" / "lib").glob("python3*/site-packages"))
    # Alembic, SQLAlchemy, psycopg and pydantic as the project pins them (here: the drill's), and its own envkit.
    (packages / "shelf-deps.pth").write_text(f"{site.getsitepackages()[0]}\n{project / 'vendor' / 'envkit'}\n")
    # Its reports beside it: [reports] dir is read from the current directory, the clone's root here, whose
    # record chain (the sandbox's, signed) an unsigned "shelf" record would break for `records verify`.
    config = project / "drill.toml"
    config.write_text(config.read_text().replace('dir = "reports"', f'dir = "{project / "reports"}"'))
    return project


def _gates(project: Path, edit: Callable[[Path], None] | None = None, expected_head: str = "") -> GatesRun:
    if edit is not None:
        edit(project)
    config = project / "drill.toml"
    if expected_head:
        config.write_text(config.read_text().replace('"b7c8d9e0f1a2"', f'"{expected_head}"'))
    junit = project / "junit.xml"
    secrets = ("DRILL_", "CODEBLACK_", "AWS_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(secrets)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "features/", "-m", "predeploy", "-p", "no:randomly", "-rs",
         f"--drill-config={config}", f"--alluredir={project / 'allure'}", f"--junitxml={junit}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    failures, skipped = {}, {}
    for test in ET.parse(junit).getroot().iter("testcase"):
        for tag, into in (("failure", failures), ("error", failures), ("skipped", skipped)):
            node = test.find(tag)
            if node is not None:
                into[test.get("name", "")] = node.get("message", "")
    return GatesRun(result.returncode, result.stdout + result.stderr, failures, skipped)


def _add_revision(project: Path, name: str, down: str, upgrade: str, downgrade: str) -> None:
    (project / "migrations" / "versions" / f"{name}.py").write_text(
        f'"""{name}"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\nrevision = "{name[:12]}"\n'
        f'down_revision = "{down}"\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade() -> None:\n'
        f"    {upgrade}\n\n\ndef downgrade() -> None:\n    {downgrade}\n"
    )


def _failure(run: GatesRun, scenario: str) -> str:
    return next(message for name, message in run.failures.items() if scenario in name)


def test_a_healthy_project_passes_every_gate_and_the_rest_is_not_applicable(tmp_path: Path) -> None:
    run = _gates(_project(tmp_path))
    assert run.returncode == 0, run.output[-3000:]
    assert run.failures == {}
    migration_skips = {name: reason for name, reason in run.skipped.items() if "rehears" in name}
    assert list(migration_skips.values()) == 2 * [  # the rehearsals with and without an app: no backup to restore
        f"{NOT_APPLICABLE}{tmp_path / 'shelf' / 'drill.toml'} declares only [migrations] (no backups in [storage], "
        "no [app])"
    ]
    assert all(reason.startswith(NOT_APPLICABLE) for reason in run.skipped.values())
    assert "pre-deploy verdict: PASS (6 passed, 0 failed" in run.output
    assert "drill verdict: NO-GO" not in run.output


def test_a_project_whose_package_is_missing_could_not_run_naming_the_module(tmp_path: Path) -> None:
    project = _project(tmp_path)
    shutil.rmtree(project / "vendor" / "envkit")
    run = _gates(project)
    assert run.returncode == 1
    drift = _failure(run, "tracked_by_a_migration_file")
    assert drift.startswith("harness.migrations.isolation.MigrationSetupError: could not run alembic upgrade head: ")
    assert (
        "loading the project fails at src/shelf/settings.py:5: ModuleNotFoundError: No module named 'envkit' " in drift
    )
    assert "fix or revert" not in drift


@CHILD_HAS_AN_ACCOUNT
def test_a_package_the_childs_account_cannot_read_could_not_run_naming_the_directory(tmp_path: Path) -> None:
    project = _project(tmp_path)
    closed = project / "src" / "shelf"
    closed.chmod(0o700)  # inside the open project: Python reports only that the module is missing
    run = _gates(project)
    assert run.returncode == 1
    drift = _failure(run, "tracked_by_a_migration_file")
    assert "ModuleNotFoundError: No module named 'shelf" in drift
    assert re.search(  # JUnit cuts the message here; the rest is closed_to's line (test_hostile_migration_file)
        rf"not a fault of the migration\); {re.escape(str(closed))} is not readable by codeblack-drills-\d+, the "
        r"unprivileged account the migration child runs as \(mode drwx------, owner root\)",
        drift,
    ), drift


def test_settings_that_do_not_validate_could_not_run_naming_the_field(tmp_path: Path) -> None:
    project = _project(tmp_path)
    config = project / "drill.toml"
    config.write_text(config.read_text().replace("SHELF_DATABASE_URL", "SHELF_DB_URL"))
    reversible = _failure(_gates(project), "reversible")
    assert (
        "MigrationSetupError: could not run alembic upgrade a1b2c3d4e5f6: loading the project fails at " in reversible
    )
    assert "ValidationError: 1 validation error(s) for Settings: database_url: Field required" in reversible


def test_a_server_without_the_extension_a_migration_creates_could_not_run_naming_it(tmp_path: Path) -> None:
    project = _project(tmp_path)
    config = project / "drill.toml"
    config.write_text(config.read_text().replace('extensions = ["uuid-ossp"]\n', ""))  # the embedded 18 then
    run = _gates(project)
    assert run.returncode == 1
    drift = _failure(run, "tracked_by_a_migration_file")
    assert drift.startswith(
        "harness.migrations.isolation.MissingExtension: could not run alembic upgrade head: it creates extension "
        "'uuid-ossp', which the gates' PostgreSQL does not provide ("
    ), drift
    assert 'declare it in [migrations] extensions = ["uuid-ossp"]' in drift
    assert "fix or revert" not in drift


@pytest.mark.parametrize(
    ("case", "scenario", "message"),
    [
        (
            "second_head",
            "linear_chain",
            "the migration history has 2 heads (b7c8d9e0f1a2 (b7c8d9e0f1a2_books.py), c0ffee000001 "
            "(c0ffee000001_tags.py)); the plan needs one linear chain",
        ),
        (
            "model_drift",
            "tracked_by_a_migration_file",
            "schema drift: the migrations up to head b7c8d9e0f1a2 (b7c8d9e0f1a2_books.py) and the models "
            "(shelf.models:Base.metadata) differ in 1 place(s): column books.isbn is in the models, but no migration "
            "adds it",
        ),
        (
            "destructive_drop",
            "checkpoint",
            "revision d40000000001 (d40000000001_drop_title.py): 'ALTER TABLE books DROP COLUMN title' drops a "
            "column and its values, and this target configures no backup ([storage] is not in its drill.toml)",
        ),
        (
            "pass_downgrade",
            "reversible",
            "revision 9a5500000001 (9a5500000001_loans.py): downgrade does not restore the schema before it",
        ),
        (
            "edited_applied",
            "edited_after_it_was_deployed",
            "a1b2c3d4e5f6_authors.py (revision a1b2c3d4e5f6) was edited after it was applied",
        ),
    ],
)
def test_a_broken_project_fails_naming_the_revision_and_file(
    tmp_path: Path, case: str, scenario: str, message: str
) -> None:
    edits: dict[str, tuple[Callable[[Path], None], str]] = {
        "second_head": (
            lambda p: _add_revision(p, "c0ffee000001_tags", "a1b2c3d4e5f6",
                                    "op.create_table('tags', sa.Column('id', sa.Integer, primary_key=True))",
                                    "op.drop_table('tags')"),
            "",
        ),
        "model_drift": (
            lambda p: (p / "src/shelf/models/book.py").write_text(
                (p / "src/shelf/models/book.py").read_text().replace(
                    "    author_id:", "    isbn: Mapped[str | None] = mapped_column(String(13))\n    author_id:")
            ),
            "",
        ),
        "destructive_drop": (
            lambda p: _add_revision(p, "d40000000001_drop_title", "b7c8d9e0f1a2", "op.drop_column('books', 'title')",
                                    "op.add_column('books', sa.Column('title', sa.String(300), nullable=False))"),
            "d40000000001",
        ),
        "pass_downgrade": (
            lambda p: _add_revision(p, "9a5500000001_loans", "b7c8d9e0f1a2",
                                    "op.create_table('loans', sa.Column('id', sa.Integer, primary_key=True))",
                                    "pass"),
            "9a5500000001",
        ),
        "edited_applied": (
            lambda p: (p / "migrations/versions/a1b2c3d4e5f6_authors.py").write_text(
                (p / "migrations/versions/a1b2c3d4e5f6_authors.py").read_text().replace("length=200", "length=100")
            ),
            "",
        ),
    }  # fmt: skip
    edit, head = edits[case]
    run = _gates(_project(tmp_path), edit, expected_head=head)
    assert run.returncode == 1, run.output[-3000:]
    assert message in _failure(run, scenario), run.failures
