"""Tamper-evident migration history: a checksum file of ``migrations/versions`` next to it.

A migration that production has already applied must never change: editing it afterwards makes every fresh
database (staging, a new region, the restore drill) differ from production without any revision saying so.
``<script_location>/versions.sha256`` holds one line per revision file (sha256, revision, file name) and a
sum over all of them; the gate recomputes them and fails, naming the file, when a revision at or below the
deployed head no longer matches. Revisions above the deployed head are still under review and may change.
After a reviewed change, regenerate the file with ``python -m harness.migrations.checksums`` (``--drill-config``
for another target) and commit it with the change.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from harness.config import load_config
from harness.errors import CheckFailed, HarnessError
from harness.migrations.history import RevisionGraph, load_graph
from harness.migrations.project import MigrationProject

__all__ = ["CHECKSUM_FILE", "check_checksums", "compute_checksums", "main", "render_checksums"]

CHECKSUM_FILE = "versions.sha256"
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
        raise HarnessError(
            f"{path}: no checksum file of the migrations; review them and run `python -m harness.migrations.checksums`"
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


def check_checksums(project: MigrationProject, graph: RevisionGraph, deployed: str | None) -> list[str]:
    """No revision at or below the deployed head was edited, removed or left out of the checksum file.

    Returns:
        The revisions that were verified (those at or below ``deployed``).

    Raises:
        HarnessError: the checksum file is missing or malformed.
        CheckFailed: naming each applied migration file whose content changed after it was recorded.
    """
    recorded = _recorded(project.script_location / CHECKSUM_FILE)
    current = compute_checksums(project, graph)
    order = graph.order
    applied = order[: order.index(deployed) + 1] if deployed in order else []
    problems: list[str] = []
    for revision in applied:
        sha, file = current[revision]
        if revision not in recorded:
            problems.append(f"{file} (revision {revision}) is not in {CHECKSUM_FILE}")
        elif recorded[revision][0] != sha:
            problems.append(
                f"{file} (revision {revision}) was edited after it was applied: sha256 {sha[:12]}…, "
                f"recorded {recorded[revision][0][:12]}…"
            )
    problems += [f"revision {revision} ({file}) is recorded but gone" for revision, (_, file) in recorded.items()
                 if revision not in current]  # fmt: skip
    if problems:
        raise CheckFailed(
            f"{len(problems)} applied migration(s) changed after the fact (deployed head {deployed}): "
            + "; ".join(problems)
            + f"; revert the edit, or regenerate {CHECKSUM_FILE} after review"
        )
    return applied


def main(argv: list[str] | None = None) -> int:
    """Regenerate the checksum file of the configured migrations (after the change was reviewed)."""
    parser = argparse.ArgumentParser(prog="python -m harness.migrations.checksums", description=main.__doc__)
    parser.add_argument("--drill-config", metavar="PATH", default=None, help="drill.toml of the target")
    args = parser.parse_args(argv)
    try:
        project = MigrationProject.from_config(load_config(args.drill_config))
        text = render_checksums(project, load_graph(project))
    except (HarnessError, CheckFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = project.script_location / CHECKSUM_FILE
    path.write_text(text)
    print(f"wrote {path} ({text.count(chr(10)) - 1} revisions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
