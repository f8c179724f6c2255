"""Broken Alembic projects as data: each case is the sandbox's migrations plus the files under ``<case>/``.

A case directory holds what it adds to a copy of ``sandbox/migrations``: ``versions/`` files laid over the
sandbox's own (the bad revision), and for the drift case a ``models.py`` whose ``metadata`` the gate compares.
Building by overlay keeps each case to the one file that breaks the rule, with no copies of the sandbox chain.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.config import PROJECT_ROOT

__all__ = ["CASES_DIR", "DEPLOYED_EDIT", "SANDBOX_MIGRATIONS", "build_project", "edit_deployed_migration"]

CASES_DIR = Path(__file__).resolve().parent
SANDBOX_MIGRATIONS = PROJECT_ROOT / "sandbox" / "migrations"
DEPLOYED_EDIT = "7a2d4e6b8c21_blacklist_entries.py"  # the second revision: every deployment has applied it


def build_project(case: str, into: Path) -> Path:
    """Copy the sandbox's Alembic project to ``into/<case>`` and lay the case's ``versions/`` over it."""
    target = into / case
    shutil.copytree(SANDBOX_MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    extra = CASES_DIR / case / "versions"
    if extra.is_dir():
        shutil.copytree(extra, target / "versions", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def edit_deployed_migration(project: Path) -> None:
    """Loosen a CHECK constraint of :data:`DEPLOYED_EDIT` in place, as a hurried "fix" of a deployed migration would.

    An edit of the built copy rather than a case directory: a case would repeat the whole sandbox file.
    """
    script = project / "versions" / DEPLOYED_EDIT
    original = script.read_text()
    edited = original.replace("\"kind IN ('email', 'phone', 'device')\"", "\"kind <> ''\"")
    assert edited != original, f"{script}: the CHECK constraint this edit loosens is gone; change the edit"
    script.write_text(edited)
