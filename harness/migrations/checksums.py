"""Tamper-evident migration history: a checksum file of ``migrations/versions`` next to it.

A migration that production has already applied must never change: editing it afterwards makes every fresh
database (staging, a new region, the restore drill) differ from production without any revision saying so.
``<script_location>/versions.sha256`` holds one line per revision file (sha256, revision, file name) and a
sum over all of them; the gate recomputes them and fails, naming the file, when a revision at or below the
deployed head no longer matches. Revisions above the deployed head are still under review and may change.
After a reviewed change, regenerate the file with :data:`RECORD_COMMAND` and commit it with the change.
A project without the file fails the gate, with that command in the message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.config import DrillConfig
from harness.errors import CheckFailed, HarnessError
from harness.migrations.history import RevisionGraph, load_graph
from harness.migrations.project import MigrationProject

__all__ = [
    "CHECKSUM_FILE",
    "RECORD_COMMAND",
    "ChecksumReport",
    "FileChecksum",
    "check_checksums",
    "compare_checksums",
    "compute_checksums",
    "record_checksums",
    "render_checksums",
]

CHECKSUM_FILE = "versions.sha256"
RECORD_COMMAND = "codeblack-drills --config drill.toml migrations record-checksums"
"""How an operator records the checksum file (the gate's message quotes it)."""
_TOTAL = "*total*"


def compute_checksums(project: MigrationProject, graph: RevisionGraph) -> dict[str, tuple[str, str]]:
    """``revision -> (sha256, file)`` for every revision of the graph, oldest first."""
    return {
        revision.revision: (
            hashlib.sha256((project.versions_dir / revision.file).read_bytes()).hexdigest(),
            revision.file,
        )
        for revision in graph.revisions
    }


def _total(sums: dict[str, tuple[str, str]]) -> str:
    return hashlib.sha256("".join(sha for sha, _ in sums.values()).encode()).hexdigest()


def render_checksums(project: MigrationProject, graph: RevisionGraph) -> str:
    """The checksum file's text: one line per revision, then the sum over all."""
    sums = compute_checksums(project, graph)
    lines = [f"{sha}  {revision}  {file}" for revision, (sha, file) in sums.items()]
    return "\n".join([*lines, f"{_total(sums)}  {_TOTAL}"]) + "\n"


def _recorded(path: Path) -> dict[str, tuple[str, str]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CheckFailed(
            f"{path}: no checksum file of the migrations, so an edit of an applied migration would pass unseen; "
            f"review them, run `{RECORD_COMMAND}` and commit {CHECKSUM_FILE}"
        ) from None
    recorded: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if len(parts) == 2 and parts[1] == _TOTAL:
            continue
        if len(parts) != 3:
            raise HarnessError(f"{path}:{number}: expected '<sha256>  <revision>  <file>', got {line!r}")
        recorded[parts[1]] = (parts[0], parts[2])
    return recorded


@dataclass(frozen=True)
class FileChecksum:
    """One migration file's recorded and current sha256, and whether the deployed database has applied it."""

    HEADER: ClassVar[list[str]] = ["revision", "file", "applied", "recorded sha256", "current sha256", "verdict"]

    revision: str
    file: str
    applied: bool
    recorded: str | None  # None: not in the checksum file
    current: str | None  # None: recorded, but the file is gone

    @property
    def problem(self) -> str | None:
        """Why this file breaks the rule, or ``None``: a pending revision is still under review and may change."""
        if self.current is None:
            return f"revision {self.revision} ({self.file}) is recorded but gone"
        if not self.applied:
            return None
        if self.recorded is None:
            return f"{self.file} (revision {self.revision}) is not in {CHECKSUM_FILE}"
        if self.recorded != self.current:
            return (
                f"{self.file} (revision {self.revision}) was edited after it was applied: "
                f"sha256 {self.current[:12]}…, recorded {self.recorded[:12]}…"
            )
        return None

    def row(self) -> list[object]:
        """A row for the report's table."""
        verdict = self.problem or ("unchanged" if self.applied else "pending, may still change")
        return [
            self.revision,
            self.file,
            "yes" if self.applied else "no",
            self.recorded or "-",
            self.current or "-",
            verdict,
        ]


@dataclass(frozen=True)
class ChecksumReport:
    """The comparison of every migration file with the checksum file, against the deployed head."""

    deployed: str | None
    files: tuple[FileChecksum, ...]


def compare_checksums(
    project: MigrationProject, graph: RevisionGraph, deployed: str | None, *, recorded_are_applied: bool = False
) -> ChecksumReport:
    """Compare each file of ``migrations/versions`` with its line of the checksum file.

    ``deployed`` is the revision the deployed database is at (``alembic current`` of a copy restored from its
    newest backup): it and the revisions below it are applied; ``None`` means none is, unless
    ``recorded_are_applied`` (a target without backups that names no ``deployed_head``): then every revision the
    checksum file records counts as applied.

    Raises:
        CheckFailed: the checksum file is missing.
        HarnessError: the checksum file is malformed.
    """
    recorded = _recorded(project.script_location / CHECKSUM_FILE)
    order = graph.order
    applied = set(order[: order.index(deployed) + 1] if deployed in order else [])
    if deployed is None and recorded_are_applied:
        applied = set(recorded)
    files = [
        FileChecksum(revision, file, revision in applied, recorded[revision][0] if revision in recorded else None, sha)
        for revision, (sha, file) in compute_checksums(project, graph).items()
    ]
    files += [
        FileChecksum(revision, file, False, sha, None)
        for revision, (sha, file) in recorded.items()
        if revision not in order
    ]
    return ChecksumReport(deployed, tuple(files))


def check_checksums(report: ChecksumReport) -> list[str]:
    """No revision at or below the deployed head was edited, removed or left out of the checksum file.

    Returns:
        The revisions that were verified (those at or below the deployed head).

    Raises:
        CheckFailed: naming each applied migration file whose content changed after it was recorded.
    """
    problems = [problem for file in report.files if (problem := file.problem)]
    if problems:
        raise CheckFailed(
            f"{len(problems)} applied migration(s) changed after the fact (deployed head {report.deployed}): "
            + "; ".join(problems)
            + f"; revert the edit, or regenerate {CHECKSUM_FILE} after review"
        )
    return [file.revision for file in report.files if file.applied]


def record_checksums(config: DrillConfig) -> tuple[Path, int]:
    """Write the checksum file of the configured migrations (after the change was reviewed).

    Returns:
        The file written and how many revisions it records.
    """
    project = MigrationProject.from_config(config)
    text = render_checksums(project, load_graph(project))
    path = project.script_location / CHECKSUM_FILE
    path.write_text(text)
    return path, text.count("\n") - 1
