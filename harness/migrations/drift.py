"""Gate 1, the schema half: the migrations build exactly what the models declare (no drift).

An empty throwaway database is upgraded to head, then Alembic's autogenerate comparison
(``alembic.autogenerate.compare_metadata``, types and server defaults included) runs against the models'
``MetaData``. Any difference is a schema change that no migration tracks, or a migration the models forgot.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from harness.errors import CheckFailed
from harness.migrations.project import COMPARE_OPTIONS, Database, MigrationFailed, MigrationProject, connected

__all__ = ["check_drift", "describe_difference"]

_TABLE_LEVEL = {
    "add_table": "table {0.name} is in the models, but no migration creates it",
    "remove_table": "table {0.name} is built by the migrations, but the models do not declare it",
    "add_index": "index {0.name} on {0.table.name} is in the models, but no migration creates it",
    "remove_index": "index {0.name} on {0.table.name} is built by the migrations, but not in the models",
    "add_constraint": "constraint {0.name} on {0.table.name} is in the models, but no migration creates it",
    "remove_constraint": "constraint {0.name} on {0.table.name} is built by the migrations, but not in the models",
    "add_fk": "foreign key {0.name} on {0.parent.name} is in the models, but no migration creates it",
    "remove_fk": "foreign key {0.name} on {0.parent.name} is built by the migrations, but not in the models",
}
_COLUMN_LEVEL = {
    "add_column": "column {1}.{2.name} is in the models, but no migration adds it",
    "remove_column": "column {1}.{2.name} is built by the migrations, but the models do not declare it",
}
_MODIFY = {
    "modify_type": "type",
    "modify_nullable": "nullable",
    "modify_default": "server default",
    "modify_comment": "comment",
}


def describe_difference(entry: Any) -> str:
    """One autogenerate difference as a sentence naming the table or column (``repr`` for unknown kinds)."""
    if isinstance(entry, list):  # modify_* entries come grouped per column
        return "; ".join(describe_difference(item) for item in entry)
    kind = entry[0]
    if kind in _TABLE_LEVEL:
        return _TABLE_LEVEL[kind].format(entry[1])
    if kind in _COLUMN_LEVEL:
        return _COLUMN_LEVEL[kind].format(*entry[1:])
    if kind in _MODIFY:
        _, _, table, column, _, migrated, modelled = entry
        return f"column {table}.{column}: {_MODIFY[kind]} is {migrated} after the migrations, {modelled} in the models"
    return repr(entry)


def check_drift(project: MigrationProject, database: Database) -> list[str]:
    """Upgrade an empty database to head and compare it with the models.

    Returns:
        The rendered differences (empty on success), for the report.

    Raises:
        CheckFailed: naming the head, the models and every difference.
    """
    metadata = project.metadata()
    with connected(database) as connection:
        try:
            project.upgrade(connection, "head")
        except MigrationFailed as failed:
            raise CheckFailed(f"the migrations cannot build the schema to compare: {failed}") from None
        context = MigrationContext.configure(connection, opts=dict(COMPARE_OPTIONS))
        head = context.get_current_revision()
        differences = [describe_difference(entry) for entry in compare_metadata(context, metadata)]
    if differences:
        raise CheckFailed(
            f"schema drift: the migrations up to head {head} and the models ({project.metadata_path}) differ in "
            f"{len(differences)} place(s): " + "; ".join(differences) + "; add a migration (alembic revision "
            "--autogenerate) or fix the models"
        )
    return differences
