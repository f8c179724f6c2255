"""Gate 1, the schema half: the migrations build exactly what the models declare (no drift).

An empty throwaway database is upgraded to head by the isolated migration child, then Alembic's autogenerate
comparison (``alembic.autogenerate.compare_metadata``, types and server defaults included) runs there against
the models' ``MetaData``, imported as the project itself imports it. Any difference is a schema change that no
migration tracks, or a migration the models forgot.
"""

from __future__ import annotations

from harness.errors import CheckFailed
from harness.migrations.child import describe_difference
from harness.migrations.history import Revision, RevisionGraph
from harness.migrations.isolation import MigrationChild, MigrationFailed
from harness.migrations.project import Database, MigrationProject

__all__ = ["check_drift", "describe_difference"]


def _named(child: MigrationChild, head: str | None) -> str:
    """The head with its file, from the child's history (the harness loads no migration file itself)."""
    return RevisionGraph(tuple(map(Revision.of, child.history()["revisions"])), ()).named(head) if head else "none"


def check_drift(project: MigrationProject, database: Database) -> list[str]:
    """Upgrade an empty database to head and compare it with the models.

    Returns:
        The rendered differences (empty on success), for the report.

    Raises:
        CheckFailed: naming the head, the models and every difference.
    """
    with project.child(database) as child:
        try:
            head = child.upgrade("head")
        except MigrationFailed as failed:
            raise CheckFailed(f"the migrations cannot build the schema to compare: {failed}") from None
        differences = child.compare(project.metadata_path)
        named = _named(child, head) if differences else ""
    if differences:
        raise CheckFailed(
            f"schema drift: the migrations up to head {named} and the models "
            f"({project.metadata_path}) differ in "
            f"{len(differences)} place(s): " + "; ".join(differences) + "; add a migration (alembic revision "
            "--autogenerate) or fix the models"
        )
    return differences
