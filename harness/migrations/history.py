"""Gates 1 and 2 of the plan's Migration Workflow: every file is tracked, and the history is one linear chain.

A migration file that Alembic skips (a subdirectory, no revision id, a revision id used twice) or cannot load
would ship with the code yet never run; a second head or a merge means two people changed the schema without
agreeing on an order. Both are caught from the files and Alembic's revision map, before any database exists.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.script import Script
from alembic.util import load_python_file

from harness.config import Waiver
from harness.errors import CheckFailed, ConfigError
from harness.migrations.project import MigrationProject
from harness.migrations.waivers import EXPECTED_HEAD, NO_WAIVERS, Waivers

__all__ = ["Revision", "RevisionGraph", "check_linear_history", "check_tracked", "load_graph"]

# The files Alembic itself treats as migrations (alembic.script.base._only_source_rev_file).
_MIGRATION_FILE = re.compile(r"(?!\.#|__init__)(.*\.py)$")


@dataclass(frozen=True)
class Revision:
    """One migration script as Alembic sees it."""

    revision: str
    down_revisions: tuple[str, ...]
    file: str
    doc: str

    @classmethod
    def of(cls, script: Script, versions_dir: Path) -> Revision:
        """Describe an Alembic ``Script``, naming its file relative to ``versions/``."""
        down = script.down_revision
        downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
        return cls(script.revision, downs, str(Path(script.path).relative_to(versions_dir)), script.doc or "")


@dataclass(frozen=True)
class RevisionGraph:
    """The revision graph of a project: every revision from base to the heads, and the heads."""

    revisions: tuple[Revision, ...]
    heads: tuple[str, ...]

    @property
    def order(self) -> list[str]:
        """Revision ids from base to head (the order ``alembic upgrade`` applies them)."""
        return [revision.revision for revision in self.revisions]

    def named(self, revision: str) -> str:
        """A revision with its file, as messages name it: ``b7c8d9e0f1a2 (b7c8d9e0f1a2_books.py)``."""
        files = {known.revision: known.file for known in self.revisions}
        return f"{revision} ({files[revision]})" if revision in files else revision

    def after(self, current: str | None) -> list[str]:
        """The revisions an upgrade from ``current`` (``None``: an empty database) to head would apply."""
        order = self.order
        if current not in order:
            return order
        return order[order.index(current) + 1 :]

    def evidence(self) -> list[dict[str, Any]]:
        """The graph as rows for the report (``alembic history``, oldest first)."""
        return [
            {
                "revision": revision.revision,
                "down_revision": ", ".join(revision.down_revisions) or "base",
                "head": revision.revision in self.heads,
                "file": revision.file,
                "doc": revision.doc,
            }
            for revision in self.revisions
        ]


def _migration_files(project: MigrationProject) -> list[Path]:
    return sorted(
        path
        for path in project.versions_dir.rglob("*.py")
        if "__pycache__" not in path.parts and _MIGRATION_FILE.match(path.name)
    )


def check_tracked(project: MigrationProject) -> None:
    """Every ``.py`` file under ``versions/`` loads, declares a revision id of its own, and Alembic loads it.

    Raises:
        CheckFailed: naming each file that would ship without ever running, and why.
    """
    problems: list[str] = []
    files_of: dict[str, list[str]] = defaultdict(list)
    for path in _migration_files(project):
        name = str(path.relative_to(project.versions_dir))
        if path.parent != project.versions_dir:
            problems.append(f"{name}: sits in a subdirectory, which Alembic does not load")
            continue
        try:
            module = load_python_file(path.parent, path.name)
        except Exception as exc:  # any error a migration file raises on import
            problems.append(f"{name}: fails to load ({type(exc).__name__}: {exc})")
            continue
        revision = getattr(module, "revision", None)
        if not isinstance(revision, str):
            problems.append(f"{name}: declares no revision id, so it is not part of the revision graph")
            continue
        files_of[revision].append(name)
    problems += [
        f"revision {revision} is declared by {len(files)} files ({', '.join(files)}); Alembic runs only one"
        for revision, files in files_of.items()
        if len(files) > 1
    ]
    if problems:
        raise CheckFailed(
            f"{len(problems)} file(s) in {project.versions_dir} are not tracked migrations of the chain: "
            + "; ".join(problems)
        )


def load_graph(project: MigrationProject) -> RevisionGraph:
    """Build the revision graph with Alembic, oldest revision first.

    Raises:
        CheckFailed: Alembic cannot build the graph (a file that is no migration or fails to load, a down
            revision that no file declares, a cycle).
    """
    scripts = project.scripts()
    # Alembic only warns about a down revision that no file declares; here that breaks the graph too.
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            walked = list(scripts.walk_revisions("base", "heads"))
            heads = tuple(scripts.get_heads())
        except Exception as exc:  # CommandError, or whatever a migration file raises on import
            check_tracked(project)  # when a stray or broken file is the cause, this names it and why
            reasons = [f"{type(exc).__name__}: {exc}", *(str(w.message) for w in warned)]
            raise CheckFailed(f"{project.versions_dir}: the revision graph is broken: {'; '.join(reasons)}") from None
    if warned:
        raise CheckFailed(
            f"{project.versions_dir}: the revision graph is broken: {'; '.join(str(w.message) for w in warned)}"
        )
    return RevisionGraph(tuple(Revision.of(script, project.versions_dir) for script in reversed(walked)), heads)


def check_linear_history(
    project: MigrationProject, graph: RevisionGraph, waivers: Waivers = NO_WAIVERS
) -> list[Waiver]:
    """The history is one chain: a single head, no branch point, no merge, and the head is the expected one.

    Returns:
        The waiver (rule ``expected-head``, subject the head found) that excused another head, if any.

    Raises:
        CheckFailed: naming the heads, the branch or merge revisions, or the actual and expected head.
        ConfigError: ``[migrations] expected_head`` is not set.
    """
    if len(graph.heads) != 1:
        raise CheckFailed(
            f"the migration history has {len(graph.heads)} heads ({', '.join(map(graph.named, graph.heads))}); "
            "the plan needs one linear chain: rebase the newer revision onto the other (edit its down_revision)"
        )
    children: dict[str, list[str]] = defaultdict(list)
    for revision in graph.revisions:
        for parent in revision.down_revisions:
            children[parent].append(revision.revision)
        if len(revision.down_revisions) > 1:
            raise CheckFailed(
                f"revision {revision.revision} ({revision.file}) merges {', '.join(revision.down_revisions)}; "
                "the plan needs one linear chain without merges"
            )
    for parent, kids in children.items():
        if len(kids) > 1:
            raise CheckFailed(f"revision {parent} is a branch point ({', '.join(kids)} both revise it)")
    head = graph.heads[0]
    if not project.expected_head:
        raise ConfigError(
            "[migrations] expected_head is not set: the revision the reviewed code ends at "
            f"(this history ends at {head})"
        )
    waiver = waivers.find(EXPECTED_HEAD, head)
    if head != project.expected_head and waiver is None:
        raise CheckFailed(
            f"the migration head is {head}, but the expected head is {project.expected_head} "
            "([migrations] expected_head in drill.toml): deploy the reviewed head or update the file"
        )
    return [waiver] if waiver is not None and head != project.expected_head else []
