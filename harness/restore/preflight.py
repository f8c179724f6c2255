"""The schema preflight: every table and column ``drill.toml`` names is in the restored database.

It runs right after ``pg_restore``, before the first count: a configured name the restored schema lacks (a
typo, a table renamed by a migration, the embedded default's ``audit_table`` left on another target) would
otherwise surface as a database error in the middle of a check. Each mismatch is named by its key, and all
of them are reported in one line, so one run is enough to fix the file.

Names are matched exactly as written (no case folding): ``orders``, ``"Orders"`` or ``Orders``, and
``schema.table`` for a table outside the search path.
"""

from __future__ import annotations

from typing import Any

import psycopg

from harness.config import DrillConfig
from harness.errors import ConfigError

__all__ = ["check_schema", "split_name"]

_TABLE = """
SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = %(name)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND CASE WHEN %(schema)s::text IS NULL THEN n.nspname = ANY (pg_catalog.current_schemas(false))
           ELSE n.nspname = %(schema)s END
ORDER BY pg_catalog.array_position(pg_catalog.current_schemas(false), n.nspname::text) NULLS LAST
LIMIT 1
"""
_COLUMN = (
    "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attname = %s AND attnum > 0 AND NOT attisdropped"
)


def split_name(name: str) -> tuple[str | None, str]:
    """``schema.table`` (either part may be double-quoted) as ``(schema, table)``; ``(None, table)`` without a dot."""
    if "." not in name:
        return None, name.strip('"')
    schema, _, table = name.partition(".")
    return schema.strip('"'), table.strip('"')


class _Schema:
    """Lookups in the restored catalogue, each table resolved once."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.tables: dict[str, int | None] = {}

    def table(self, name: str) -> int | None:
        if name not in self.tables:
            schema, table = split_name(name)
            row = self.conn.execute(_TABLE, {"name": table, "schema": schema}).fetchone()
            self.tables[name] = int(row[0]) if row else None
        return self.tables[name]

    def has_column(self, table: str, column: str) -> bool:
        oid = self.table(table)
        return oid is not None and self.conn.execute(_COLUMN, (oid, column)).fetchone() is not None


def check_schema(conn: psycopg.Connection[Any], config: DrillConfig) -> None:
    """Check every table and column of ``[database]`` against the restored database.

    Checked: each of ``critical_tables`` and its time column, ``audit_table`` (unless empty: the target has
    none) and its time column, ``heartbeat_table`` and ``heartbeat_column`` (when a heartbeat is declared).

    Raises:
        ConfigError: one line naming the file and, for each mismatch, the key and the missing name.
    """
    database, schema = config.database, _Schema(conn)
    problems: list[str] = []

    def table(key: str, name: str) -> bool:
        if schema.table(name) is None:
            problems.append(f"[database] {key} {name!r} is not in the restored database")
            return False
        return True

    def time_column(name: str, role: str) -> None:
        column = database.time_column(name)
        if column and not schema.has_column(name, column):
            key = f"time_columns.{name}" if name in database.time_columns else f"time_columns (default {column!r})"
            problems.append(f"[database] {key}: {role} {name!r} has no column {column!r}")

    for name in database.critical_tables:
        if table("critical_tables", name):
            time_column(name, "critical table")
    if database.audit_table and table("audit_table", database.audit_table):
        time_column(database.audit_table, "audit table")
    heartbeat, beat = database.heartbeat_table, database.heartbeat_column
    if heartbeat and table("heartbeat_table", heartbeat) and not schema.has_column(heartbeat, beat):
        problems.append(f"[database] heartbeat_column {beat!r} is not a column of heartbeat table {heartbeat!r}")
    if problems:
        raise ConfigError(f"{config.source}: " + "; ".join(problems) + " (fix drill.toml or the backup)")
