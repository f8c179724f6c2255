"""Counting the tables of a database the same way before the dump and after the restore.

The manifest written by ``backup postgres`` and the numbers the drill reads from the restored copy must come
from one definition, or a difference would mean nothing. For each table: its exact row count; and, only when
the table has a time column, the rows whose time falls in the 24 h before the backup and its newest time.

Time columns may be ``timestamptz``, ``timestamp`` or ``date`` (or a domain over one of them). A
``timestamp without time zone`` is read in ``[database] time_zone`` (UTC by default). A ``date`` is read as
the *start* of that day in the same zone: the earliest its row can have been written, so a row dated on the
backup's day is never placed after the backup, and the newest-data time (hence RPO) is never understated.
The conversion happens in SQL, so every time the harness compares is an aware instant.

Tables and columns are always quoted by psycopg (:meth:`harness.identifiers.TableName.identifier`); a name
that does not exist, or a time column of another type, fails with one line naming the key of drill.toml.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from harness.config import DEFAULT_TIME_COLUMN_KEY, DatabaseSettings
from harness.errors import HarnessError
from harness.identifiers import TableName, parse_column, parse_table, quote_part
from harness.storage.manifest import TableStats

__all__ = ["WINDOW", "CountSpec", "count_specs", "count_table", "count_tables", "heartbeat_spec", "newest_time"]

WINDOW = timedelta(hours=24)
"""The plan's "last 24h": the window before the backup that inserts are counted in."""

_TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")

_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
ORDER BY 1, 2
"""
"""Every ordinary and partitioned table a dump holds the data of: no catalogs, no extension's own tables."""

_RELATION = """
SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""
_FOLDED = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE lower(n.nspname) = lower(%s) AND lower(c.relname) = lower(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
LIMIT 1
"""
_COLUMN_TYPE = """
SELECT format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, NULL)
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped
"""


@dataclass(frozen=True)
class CountSpec:
    """One table to count: its name, its time column (``""``: none), and the keys of drill.toml naming them."""

    table: TableName
    time_column: str = ""
    table_key: str = "[database] critical_tables"
    column_key: str = "[database] time_columns"


def count_specs(
    conn: psycopg.Connection[Any], database: DatabaseSettings, *, critical_only: bool = False
) -> list[CountSpec]:
    """What to count: the critical tables in their order, then (``count_all_tables``) every other table."""
    specs = []
    for table in database.tables():
        column, column_key = database.time_column_of(table)
        specs.append(CountSpec(table, column, "[database] critical_tables", column_key))
    if database.count_all_tables and not critical_only:
        known = {spec.table for spec in specs}
        for schema, name in conn.execute(_TABLES).fetchall():
            table = TableName(schema, name)
            if table not in known:
                column, key = database.time_column_of(table, critical=False)
                specs.append(CountSpec(table, column, "[database] count_all_tables", key))
    return specs


def count_tables(
    conn: psycopg.Connection[Any], database: DatabaseSettings, taken_at: datetime
) -> dict[str, TableStats]:
    """Count every table of :func:`count_specs`, keyed by :attr:`TableName.key`.

    Raises:
        HarnessError: a table or time column is missing, or a time column has another type; names the key.
    """
    return {
        spec.table.key: count_table(conn, spec, taken_at, database.time_zone) for spec in count_specs(conn, database)
    }


def count_table(conn: psycopg.Connection[Any], spec: CountSpec, taken_at: datetime, time_zone: str) -> TableStats:
    """Rows of one table; with a time column also the rows in the 24 h up to ``taken_at`` and the newest time.

    Raises:
        HarnessError: as :func:`count_tables`.
    """
    relation = _relation(conn, spec.table, spec.table_key)
    if not spec.time_column:
        row = _fetch(conn, sql.SQL("SELECT count(*) FROM {}").format(spec.table.identifier()), (), spec)
        return TableStats(rows=row[0], rows_last_24h=None, newest=None)
    moment = _instant(conn, relation, spec.table, spec.time_column, spec.column_key, time_zone)
    query = sql.SQL("SELECT count(*), count(*) FILTER (WHERE {m} > %s AND {m} <= %s), max({m}) FROM {t}").format(
        m=moment, t=spec.table.identifier()
    )
    row = _fetch(conn, query, (taken_at - WINDOW, taken_at), spec)
    return TableStats(rows=row[0], rows_last_24h=row[1], newest=row[2])


def newest_time(conn: psycopg.Connection[Any], spec: CountSpec, time_zone: str) -> datetime | None:
    """The newest time in ``spec``'s table and time column, as an aware instant (``None``: the table is empty).

    Raises:
        HarnessError: as :func:`count_tables`.
    """
    moment = _instant(conn, _relation(conn, spec.table, spec.table_key), spec.table, spec.time_column,
                      spec.column_key, time_zone)  # fmt: skip
    row = _fetch(conn, sql.SQL("SELECT max({}) FROM {}").format(moment, spec.table.identifier()), (), spec)
    value: datetime | None = row[0]
    return value


def heartbeat_spec(database: DatabaseSettings) -> CountSpec | None:
    """The heartbeat table and column of ``database`` to read the newest time of, when one is configured."""
    if not database.heartbeat_table.strip():
        return None
    return CountSpec(parse_table(database.heartbeat_table), parse_column(database.heartbeat_column),
                     "[database] heartbeat_table", "[database] heartbeat_column")  # fmt: skip


def _relation(conn: psycopg.Connection[Any], table: TableName, key: str) -> int:
    found = conn.execute(_RELATION, (table.schema, table.name)).fetchone()
    if found is not None:
        return int(found[0])
    hint = ""
    folded = conn.execute(_FOLDED, (table.schema, table.name)).fetchone()
    if folded is not None:
        spelled = f"{quote_part(folded[0])}.{quote_part(folded[1])}"
        hint = f" (there is {spelled}: unquoted names fold to lower case, so write it quoted)"
    raise HarnessError(f"{key}: table {table.key} does not exist in database {_database(conn)}{hint}")


def _instant(
    conn: psycopg.Connection[Any], relation: int, table: TableName, column: str, key: str, time_zone: str
) -> sql.Composable:
    """The SQL expression reading ``column`` as an aware instant, after checking it exists and holds times."""
    found = conn.execute(_COLUMN_TYPE, (relation, column)).fetchone()
    shown = f"{table.key}.{quote_part(column)}"
    if found is None:
        hint = ""
        if key == DEFAULT_TIME_COLUMN_KEY:  # the default reached a table it does not fit: say how to opt out
            entry = f'{_toml_key(table.key)} = ""'
            hint = f" (a table without a time column needs its own entry: [database] time_columns = {{ {entry} }})"
        raise HarnessError(f"{key}: column {shown} does not exist in database {_database(conn)}{hint}")
    kind = str(found[0])
    if kind not in _TIME_TYPES:
        raise HarnessError(f"{key}: column {shown} is {kind}, not timestamp with or without time zone or date")
    if kind == "timestamp with time zone":
        return sql.Identifier(column)
    return sql.SQL("({}::timestamp AT TIME ZONE {})").format(sql.Identifier(column), sql.Literal(time_zone))


def _toml_key(key: str) -> str:
    """``key`` as drill.toml must spell it: bare when it can be, else a literal string (quotes kept inside)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    return f"'{key}'" if "'" not in key else json.dumps(key)


def _fetch(conn: psycopg.Connection[Any], query: sql.Composed, params: tuple[Any, ...], spec: CountSpec) -> Any:
    try:
        row = conn.execute(query, params).fetchone()
    except psycopg.Error as exc:
        primary = exc.diag.message_primary or str(exc).splitlines()[0]
        raise HarnessError(f"{spec.table_key}: cannot count {spec.table.key}: {primary}") from None
    assert row is not None
    return row


def _database(conn: psycopg.Connection[Any]) -> str:
    return str(conn.info.dbname)
