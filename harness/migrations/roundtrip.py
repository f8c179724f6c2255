"""The Rollback policy's first half: every non-destructive migration is exactly reversible.

For each revision from base to head, on an empty throwaway database: snapshot the catalogue, upgrade one step,
downgrade one step, snapshot again, and require the two snapshots to be identical; then upgrade again and
require the schema the first upgrade built. A ``downgrade()`` that raises, does nothing or leaves a trace fails,
naming the revision and the catalogue objects that differ. Revisions that the destructive-operation gate
covers with a backup checkpoint may be exempted (their data cannot come back by a downgrade anyway).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.engine import Connection

from harness.errors import CheckFailed
from harness.migrations.catalogue_snapshot import Snapshot, diff_snapshots, take_snapshot
from harness.migrations.history import RevisionGraph
from harness.migrations.isolation import MigrationFailed
from harness.migrations.project import Database, MigrationProject, connected
from harness.migrations.waivers import NO_WAIVERS, REVERSIBLE, Waivers

__all__ = ["RoundTrip", "check_roundtrip"]


@dataclass(frozen=True)
class RoundTrip:
    """What one revision's round trip showed."""

    HEADER: ClassVar[list[str]] = ["revision", "catalogue objects changed", "after downgrade and upgrade"]

    revision: str
    objects_changed: int
    reversed: bool
    exemption: str = ""

    def row(self) -> list[object]:
        """A row for the report's table."""
        return [self.revision, self.objects_changed, "identical" if self.reversed else f"exempt: {self.exemption}"]


def _snapshot(connection: Connection) -> Snapshot:
    """The catalogue as the child committed it; the transaction ends at once, holding nothing the child needs."""
    snapshot = take_snapshot(connection)
    connection.rollback()
    return snapshot


def _differences(what: str, lines: list[str]) -> str:
    return f"{what} ({len(lines)} difference(s)): " + "; ".join(lines)


def check_roundtrip(
    project: MigrationProject,
    graph: RevisionGraph,
    database: Database,
    *,
    exempt: Collection[str] = (),
    waivers: Waivers = NO_WAIVERS,
) -> list[RoundTrip]:
    """Upgrade, downgrade and upgrade again every revision, comparing full catalogue snapshots.

    Args:
        project: the migrations.
        graph: their revision graph (one linear chain; see :func:`check_linear_history`).
        database: an empty throwaway database.
        exempt: revisions whose downgrade is not required to restore the schema (destructive ones).
        waivers: a ``reversible`` waiver for a revision exempts it too.

    Raises:
        CheckFailed: naming the first revision whose downgrade raises or does not restore the schema.
    """
    results: list[RoundTrip] = []
    with project.child(database) as child, connected(database) as connection:
        before = _snapshot(connection)
        previous = "base"
        for revision in graph.order:
            named = graph.named(revision)
            try:
                child.upgrade(revision)
            except MigrationFailed as failed:
                raise CheckFailed(
                    f"revision {graph.named(revision)}: upgrade of an empty database raises {failed.error}"
                ) from None
            after = _snapshot(connection)
            changed = len(diff_snapshots(before, after))
            waiver = waivers.find(REVERSIBLE, revision)
            if revision in exempt or waiver:
                why = (
                    "destructive, judged by the backup checkpoint gate instead"
                    if revision in exempt
                    else f"waived by {waiver.approved_by if waiver else ''}"
                )
                results.append(RoundTrip(revision, changed, reversed=False, exemption=why))
                before, previous = after, revision
                continue
            try:
                child.downgrade(previous)
            except MigrationFailed as failed:
                raise CheckFailed(
                    f"revision {graph.named(revision)}: downgrade raises {failed.error}; "
                    "the plan requires reversible migrations for non-destructive changes"
                ) from None
            lines = diff_snapshots(before, _snapshot(connection))
            if lines:
                raise CheckFailed(
                    f"revision {named}: " + _differences("downgrade does not restore the schema before it", lines)
                )
            child.upgrade(revision)
            lines = diff_snapshots(after, _snapshot(connection))
            if lines:
                raise CheckFailed(
                    f"revision {named}: " + _differences("upgrade after downgrade builds another schema", lines)
                )
            results.append(RoundTrip(revision, changed, reversed=True))
            before, previous = after, revision
    return results
