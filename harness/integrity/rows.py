"""Row counts, last-24 h inserts and audit rows of a restored database, against the backup's manifest.

The plan's second restore step: "Row counts for critical tables; last 24h inserts and audit records." The
manifest was written in the very snapshot the dump was taken from (:mod:`harness.backup.postgres`), so the
restored copy must hold exactly its numbers; any difference means rows were lost between production and
staging. The 24 h window is the one before the backup was taken (not before the drill), so an older dump is
judged on its own day. A dump taken by other tools has no manifest: counts are then compared with the
minimums of ``[database] minimum_rows`` or, for tables without one, with the counts the previous drill
restored (:mod:`harness.integrity.baseline`), and the report says which basis it used.

A manifest written by the real backup tool can still describe a dump that lost rows (deleted in production,
or by whoever could run the tool): the manifest is then consistent and proves nothing. So every drill also
compares each critical table with the count the previous drill restored (:func:`compare_with_previous`); a
table that shrank by more than ``[database] max_shrink_fraction`` fails, naming both counts and that drill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from harness.config import DatabaseSettings
from harness.errors import CheckFailed, HarnessError
from harness.measure.objectives import NewestData, newest_data
from harness.storage.manifest import BackupManifest, TableStats

__all__ = [
    "RestoredCounts",
    "RowBaseline",
    "RowCheck",
    "audit_rows",
    "check_audit_rows",
    "check_recent_inserts",
    "compare_row_counts",
    "compare_with_previous",
    "count_restored",
    "restored_stats",
]

WINDOW = timedelta(hours=24)
ROW_RULES = "row counts"
"""How every row-count rule's failure begins: a drill record with such a failure is no baseline for the next."""


def restored_stats(
    conn: psycopg.Connection[Any], database: DatabaseSettings, taken_at: datetime
) -> dict[str, TableStats]:
    """Count each critical table of the restored database: rows, rows in the 24 h before ``taken_at``, newest.

    Raises:
        HarnessError: a configured table or time column does not exist in the restored database.
    """
    stats = {}
    for table in database.critical_tables:
        column = database.time_column(table)
        query = sql.SQL("SELECT count(*), count(*) FILTER (WHERE {c} > %s AND {c} <= %s), max({c}) FROM {t}").format(
            c=sql.Identifier(column), t=sql.Identifier(table)
        )
        try:
            row = conn.execute(query, (taken_at - WINDOW, taken_at)).fetchone()
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
            raise HarnessError(
                f"critical table {table!r} (time column {column!r}) is not in the restored database: "
                f"{exc.diag.message_primary}; fix [database] critical_tables / time_columns in drill.toml"
            ) from None
        assert row is not None
        stats[table] = TableStats(rows=row[0], rows_last_24h=row[1], newest=row[2])
    return stats


@dataclass(frozen=True)
class RowCheck:
    """The expected-vs-restored table the report attaches, the basis of the expectation, and what differs."""

    basis: str
    rows: list[list[Any]]
    failures: list[str]
    rule: str
    header: tuple[str, ...] = ("table", "expected rows", "restored rows", "expected last 24 h", "restored last 24 h")

    def check(self) -> None:
        """Raise when any table differs.

        Raises:
            CheckFailed: names each table, the restored and the expected number.
        """
        if self.failures:
            raise CheckFailed(f"{self.rule}: " + "; ".join(self.failures))


@dataclass(frozen=True)
class RowBaseline:
    """Row counts to hold a dump without a manifest to: ``source`` says where they come from, for the report."""

    source: str
    rows: dict[str, int]


def compare_row_counts(
    restored: dict[str, TableStats],
    manifest: BackupManifest | None,
    database: DatabaseSettings,
    previous: RowBaseline | None = None,
) -> RowCheck:
    """Compare every critical table with the manifest's count, or without one with a floor.

    The floor of a table is its ``[database] minimum_rows`` when set (the operator's word wins: it is how a
    table that may shrink is judged), else the count the previous drill restored (``previous``): these tables
    only grow, so fewer rows than last time means lost data.

    Raises:
        HarnessError: no manifest and neither a minimum nor a previous count for a table: nothing to compare with.
    """
    if manifest is None:
        return _compare_floors(restored, database, previous)
    rows, failures = [], []
    for table, got in restored.items():
        expected = manifest.tables.get(table)
        if expected is None:
            failures.append(f"{table}: not in the manifest of {manifest.key}")
            continue
        rows.append([table, expected.rows, got.rows, expected.rows_last_24h, got.rows_last_24h])
        if got.rows != expected.rows:
            failures.append(f"{table}: restored {got.rows} rows, manifest {expected.rows}")
    rule = f"{ROW_RULES} of {manifest.key} differ from its manifest"
    return RowCheck(f"manifest of {manifest.key}", rows, failures, rule)


def _compare_floors(
    restored: dict[str, TableStats], database: DatabaseSettings, previous: RowBaseline | None
) -> RowCheck:
    floors: dict[str, tuple[int, str]] = {}  # table -> (floor, how the failure names it)
    for table in restored:
        if table in database.minimum_rows:
            floors[table] = (database.minimum_rows[table], f"minimum {database.minimum_rows[table]}")
        elif previous is not None and table in previous.rows:
            floors[table] = (previous.rows[table], f"the previous drill restored {previous.rows[table]}")
    missing = [table for table in restored if table not in floors]
    if missing:
        raise HarnessError(
            f"the dump has no manifest, and neither [database] minimum_rows nor a previous drill record of this "
            f"target gives a row count for {', '.join(missing)}; add them to minimum_rows in drill.toml"
        )
    rows = [[t, f">= {floors[t][0]}", s.rows, "", s.rows_last_24h] for t, s in restored.items()]
    failures = [f"{t}: restored {s.rows} rows, {floors[t][1]}" for t, s in restored.items() if s.rows < floors[t][0]]
    bases = [
        *(["minimum_rows of drill.toml"] if any(t in database.minimum_rows for t in restored) else []),
        *([previous.source] if previous is not None and any(t not in database.minimum_rows for t in restored) else []),
    ]
    basis = " and ".join(bases) + " (the dump has no manifest)"
    return RowCheck(basis, rows, failures, f"{ROW_RULES} below {basis}")


def compare_with_previous(
    restored: dict[str, TableStats], previous: RowBaseline | None, max_shrink_fraction: float
) -> RowCheck:
    """No critical table holds more than ``max_shrink_fraction`` fewer rows than the previous drill restored.

    The critical tables of this plan only grow; a manifest, even a signed one, only says what the dump holds,
    not that nothing was lost before it was taken. Tables the previous drill did not count are not judged.
    """
    if previous is None:
        return RowCheck("no earlier drill record of this target", [], [], "")
    rows, failures = [], []
    for table, got in restored.items():
        before = previous.rows.get(table)
        if before is None:
            continue
        shrink = (before - got.rows) / before if before else 0.0
        rows.append([table, before, got.rows, f"{-shrink:+.1%}"])
        if shrink > max_shrink_fraction:
            failures.append(
                f"{table}: restored {got.rows} rows, {shrink:.1%} fewer than the {before} of {previous.source}"
            )
    rule = f"{ROW_RULES} shrank by more than [database] max_shrink_fraction = {max_shrink_fraction:g}"
    return RowCheck(previous.source, rows, failures, rule, ("table", "previous drill", "restored", "change"))


def check_recent_inserts(
    restored: dict[str, TableStats], manifest: BackupManifest, *, has_manifest: bool = True
) -> None:
    """Rows inserted in the 24 h before the backup exist, as many as the manifest counted (if there is one).

    Raises:
        CheckFailed: a table had no inserts in that window, or fewer/more than the manifest's.
    """
    window = f"24 h before {manifest.taken_at.isoformat()}"
    failures = []
    for table, got in restored.items():
        expected = manifest.tables[table].rows_last_24h if table in manifest.tables else 0
        if got.rows_last_24h == 0:
            failures.append(f"{table}: no rows inserted (manifest {expected})")
        elif has_manifest and got.rows_last_24h != expected:
            failures.append(f"{table}: {got.rows_last_24h} rows inserted, manifest {expected}")
    if failures:
        raise CheckFailed(f"inserts in the {window} in {manifest.key}: " + "; ".join(failures))


def audit_rows(conn: psycopg.Connection[Any], database: DatabaseSettings, taken_at: datetime) -> int:
    """How many audit records the restored database holds for the 24 h before the backup."""
    table, column = database.audit_table, database.time_column(database.audit_table)
    query = sql.SQL("SELECT count(*) FROM {t} WHERE {c} > %s AND {c} <= %s").format(
        t=sql.Identifier(table), c=sql.Identifier(column)
    )
    row = conn.execute(query, (taken_at - WINDOW, taken_at)).fetchone()
    return int(row[0]) if row else 0


def check_audit_rows(counts: RestoredCounts, database: DatabaseSettings, taken_at: datetime) -> None:
    """Audit records exist for the 24 h before the backup.

    Raises:
        CheckFailed: none; the message names the audit table and the window.
    """
    if counts.audit_rows == 0:
        raise CheckFailed(
            f"audit table {database.audit_table}: 0 rows in the 24 h before {taken_at.isoformat()}; expected at least 1"
        )


@dataclass(frozen=True)
class RestoredCounts:
    """What the restored database held right after the restore, before any gate or app wrote to it.

    The migration and config gates later write to the same staging copy (maintenance switches, audit rows,
    migrations), so the drill counts once, at once, and judges these numbers.
    """

    tables: dict[str, TableStats]
    audit_rows: int
    newest: NewestData


def count_restored(conn: psycopg.Connection[Any], database: DatabaseSettings, taken_at: datetime) -> RestoredCounts:
    """Count the critical tables, the audit rows of the window and the newest data of a fresh restore."""
    return RestoredCounts(restored_stats(conn, database, taken_at), audit_rows(conn, database, taken_at),
                          newest_data(conn, database))  # fmt: skip
