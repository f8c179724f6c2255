"""Gates 1 and 2 of the plan's Migration Workflow: every file is tracked, and the history is one linear chain.

A migration file that Alembic skips (a subdirectory, no revision id, a revision id used twice) or cannot load
would ship with the code yet never run; a second head or a merge means two people changed the schema without
agreeing on an order. Both are caught from the files and Alembic's revision map, before any database exists.

Migration files are the target's code: loading one runs its module's top level. So they are loaded only in the
isolated migration child (:meth:`~harness.migrations.isolation.MigrationChild.history`), which returns plain
data (files, revision ids, down revisions, heads, Alembic's error and warnings); nothing of the project is
imported into the harness, which holds the drill's secrets.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from harness.config import Waiver
from harness.errors import CheckFailed, ConfigError
from harness.migrations.project import MigrationProject
from harness.migrations.waivers import EXPECTED_HEAD, NO_WAIVERS, Waivers

__all__ = ["Revision", "RevisionGraph", "check_linear_history", "check_tracked", "load_graph", "untracked"]


@dataclass(frozen=True)
class Revision:
    """One migration script as Alembic sees it."""

    revision: str
    down_revisions: tuple[str, ...]
    file: str
    doc: str

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Revision:
        """A revision as the migration child describes it (its file relative to ``versions/``)."""
        return cls(str(entry["revision"]), tuple(map(str, entry["down_revisions"])), str(entry["file"]),
                   str(entry["doc"]))  # fmt: skip


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


def untracked(history: dict[str, Any]) -> list[str]:
    """Why each file of the child's history would ship without ever running (empty: all are tracked)."""
    problems: list[str] = []
    files_of: dict[str, list[str]] = defaultdict(list)
    for entry in history["files"]:
        name = entry["file"]
        if entry["nested"]:
            problems.append(f"{name}: sits in a subdirectory, which Alembic does not load")
        elif entry["error"] is not None:
            problems.append(f"{name}: fails to load ({entry['error']})")
        elif entry["revision"] is None:
            problems.append(f"{name}: declares no revision id, so it is not part of the revision graph")
        else:
            files_of[entry["revision"]].append(name)
    return problems + [
        f"revision {revision} is declared by {len(files)} files ({', '.join(files)}); Alembic runs only one"
        for revision, files in files_of.items()
        if len(files) > 1
    ]


def _history(project: MigrationProject) -> dict[str, Any]:
    with project.child() as child:
        return child.history()


def _raise_untracked(project: MigrationProject, problems: list[str]) -> None:
    if problems:
        raise CheckFailed(
            f"{len(problems)} file(s) in {project.versions_dir} are not tracked migrations of the chain: "
            + "; ".join(problems)
        )


def check_tracked(project: MigrationProject) -> None:
    """Every ``.py`` file under ``versions/`` loads, declares a revision id of its own, and Alembic loads it.

    Raises:
        CheckFailed: naming each file that would ship without ever running, and why.
    """
    _raise_untracked(project, untracked(_history(project)))


def load_graph(project: MigrationProject) -> RevisionGraph:
    """Build the revision graph with Alembic (in the migration child), oldest revision first.

    Raises:
        CheckFailed: Alembic cannot build the graph (a file that is no migration or fails to load, a down
            revision that no file declares, a cycle).
    """
    history = _history(project)
    reasons = [history["error"]] if history["error"] else []
    reasons += history["warnings"]
    if history["error"]:
        _raise_untracked(project, untracked(history))  # when a stray or broken file is the cause, name it and why
    if reasons:
        raise CheckFailed(f"{project.versions_dir}: the revision graph is broken: {'; '.join(reasons)}")
    return RevisionGraph(tuple(map(Revision.of, history["revisions"])), tuple(history["heads"]))


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
