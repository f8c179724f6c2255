"""The schema preflight: every table and column ``drill.toml`` names is in the restored database.

It runs right after ``pg_restore``, before the first count: a configured name the restored schema lacks (a
typo, a table renamed by a migration, the embedded default's ``audit_table`` left on another target) would
otherwise surface as a database error in the middle of a check. Each mismatch is named by its key, and all
of them are reported in one line, so one run is enough to fix the file.

Names are read as SQL reads them (:mod:`harness.identifiers`): ``orders`` is ``public.orders``, ``Orders`` folds
to ``orders``, ``"Orders"`` keeps its case, and ``sales.order_lines`` names another schema.
"""

from __future__ import annotations

from typing import Any

import psycopg

from harness.config import DrillConfig
from harness.errors import ConfigError
from harness.identifiers import parse_table

__all__ = ["check_schema"]

_TABLE = """
SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = %s AND n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
_COLUMN = (
    "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attname = %s AND attnum > 0 AND NOT attisdropped"
)


class _Schema:
    """Lookups in the restored catalogue, each table resolved once."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.tables: dict[str, int | None] = {}

    def table(self, name: str) -> int | None:
        if name not in self.tables:
            parsed = parse_table(name)
            row = self.conn.execute(_TABLE, (parsed.name, parsed.schema)).fetchone()
            self.tables[name] = int(row[0]) if row else None
        return self.tables[name]

    def has_column(self, table: str, column: str) -> bool:
        oid = self.table(table)
        return oid is not None and self.conn.execute(_COLUMN, (oid, column)).fetchone() is not None


def check_schema(conn: psycopg.Connection[Any], config: DrillConfig) -> None:
    """Check every table and column of ``[database]`` against the restored database.

    Checked: that something is counted (``critical_tables`` or ``count_all_tables``), each of ``critical_tables``
    and its time column, ``audit_table`` (unless empty: the target has
    none) and its time column, ``heartbeat_table`` and ``heartbeat_column`` (when a heartbeat is declared).

    Raises:
        ConfigError: one line naming the file and, for each mismatch, the key and the missing name.
    """
    database, schema = config.database, _Schema(conn)
    problems: list[str] = []
    if not database.critical_tables and not database.count_all_tables:
        problems.append("[database] critical_tables is empty: name the tables to count exactly, or set "
                        "count_all_tables = true")  # fmt: skip

    def table(key: str, name: str) -> bool:
        if schema.table(name) is None:
            problems.append(f"[database] {key} {name!r} is not in the restored database")
            return False
        return True

    def time_column(name: str, role: str) -> None:
        column, key = database.time_column_of(name)
        if column and not schema.has_column(name, column):
            problems.append(f"{key}: {role} {name!r} has no column {column!r}")

    for name in database.critical_tables:
        if table("critical_tables", name):
            time_column(name, "critical table")
    if database.audit_table and table("audit_table", database.audit_table):
        time_column(database.audit_table, "audit table")
    heartbeat, beat = database.heartbeat_table, database.heartbeat_column
    if heartbeat and table("heartbeat_table", heartbeat) and not schema.has_column(heartbeat, beat):
        problems.append(f"[database] heartbeat_column {beat!r} is not a column of heartbeat table {heartbeat!r}")
    if problems:
        text = "; ".join(problems)
        if config.database_label:  # an entry of [[databases]]: its keys are named as the entry's
            text = text.replace("[database]", f"[[databases]] {config.database_label!r}")
        raise ConfigError(f"{config.source}: {text} (fix drill.toml or the backup)")
