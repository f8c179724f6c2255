"""Row counts, last-24 h inserts and audit rows of a restored database, against the backup's manifest.

The plan's second restore step: "Row counts for critical tables; last 24h inserts and audit records." The
manifest was written in the very snapshot the dump was taken from (:mod:`harness.backup.postgres`), so the
restored copy must hold exactly its numbers; any difference means rows were lost between production and
staging. The 24 h window is the one before the backup was taken (not before the drill), so an older dump is
judged on its own day. A dump taken by other tools has no manifest: counts are then compared with the
minimums of ``[database] minimum_rows`` or, for tables without one, with the counts the previous drill
restored (:mod:`harness.integrity.baseline`), and the report says which basis it used.

Every critical table (every table, with ``[database] count_all_tables``) is counted exactly, counted the same
way as the manifest (:mod:`harness.counting`); the 24 h inserts are judged only for tables with a time column,
and a quiet database is a warning rather than a failure unless ``require_recent_inserts`` says otherwise.

A manifest written by the real backup tool can still describe a dump that lost rows (deleted in production,
or by whoever could run the tool): the manifest is then consistent and proves nothing. So every drill also
compares each critical table with the count the previous drill restored (:func:`compare_with_previous`); a
table that shrank by more than ``[database] max_shrink_fraction`` fails, naming both counts and that drill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from harness.config import DatabaseSettings
from harness.counting import CountSpec, count_table, count_tables
from harness.errors import CheckFailed, HarnessError
from harness.identifiers import parse_table
from harness.measure.objectives import NewestData, newest_data
from harness.storage.manifest import BackupManifest, TableStats

__all__ = [
    "InsertCheck",
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

ROW_RULES = "row counts"
"""How every row-count rule's failure begins: a drill record with such a failure is no baseline for the next."""


def restored_stats(
    conn: psycopg.Connection[Any], database: DatabaseSettings, taken_at: datetime
) -> dict[str, TableStats]:
    """Count the restored database as the manifest was counted: rows, rows of the 24 h before ``taken_at``, newest.

    The critical tables, and every table with ``count_all_tables``, keyed like the manifest
    (:func:`harness.counting.count_tables`); ``conn`` is the restore role's, so the counts see what it sees.

    Raises:
        HarnessError: a configured table or time column is not in the restored database, or not a time.
    """
    return count_tables(conn, database, taken_at)


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
    if database.count_all_tables and not manifest.all_tables:
        failures.append(f"[database] count_all_tables is set but the manifest of {manifest.key} counted only the "
                        "critical tables; take the backup with the same drill.toml")  # fmt: skip
    only_in_manifest = [t for t in manifest.tables if t not in restored] if manifest.all_tables else []
    for table, got in restored.items():
        expected = manifest.tables.get(table)
        if expected is None:
            if manifest.all_tables or table in _critical_keys(database):
                failures.append(f"{table}: not in the manifest of {manifest.key}")
            continue
        rows.append([table, expected.rows, got.rows, _shown(expected.rows_last_24h), _shown(got.rows_last_24h)])
        if got.rows != expected.rows:
            failures.append(f"{table}: restored {got.rows} rows, manifest {expected.rows}")
    for table in only_in_manifest:
        expected = manifest.tables[table]
        rows.append([table, expected.rows, "missing", _shown(expected.rows_last_24h), ""])
        failures.append(f"{table}: in the manifest ({expected.rows} rows) but not in the restored database")
    rule = f"{ROW_RULES} of {manifest.key} differ from its manifest"
    return RowCheck(f"manifest of {manifest.key}", rows, failures, rule)


def _critical_keys(database: DatabaseSettings) -> set[str]:
    return {table.key for table in database.tables()}


def _shown(count: int | None) -> int | str:
    """A 24 h count for the evidence table; a table without a time column has none."""
    return "n/a (no time column)" if count is None else count


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
    rows = [[t, f">= {floors[t][0]}", s.rows, "", _shown(s.rows_last_24h)] for t, s in restored.items()]
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


@dataclass(frozen=True)
class InsertCheck:
    """The 24 h inserts judged: the evidence table, the tables it does not apply to, and a warning if any."""

    rows: list[list[Any]]
    not_applicable: list[str]
    warning: str = ""
    header: tuple[str, ...] = ("table", "expected last 24 h", "restored last 24 h", "judged")


def check_recent_inserts(
    restored: dict[str, TableStats], manifest: BackupManifest, *, has_manifest: bool = True, require: bool = True
) -> InsertCheck:
    """Rows inserted in the 24 h before the backup exist, as many as the manifest counted (if there is one).

    Only tables with a time column are judged; the others are listed as not applicable. With ``require``
    (``[database] require_recent_inserts``) a table without inserts in the window fails; without it a quiet
    database is judged against its manifest alone, and a window without any insert at all is a warning.

    Raises:
        CheckFailed: a table's inserts differ from the manifest's, or (``require``) a table had none.
    """
    window = f"24 h before {manifest.taken_at.isoformat()}"
    failures: list[str] = []
    rows: list[list[Any]] = []
    quiet: list[str] = []
    not_applicable = [table for table, got in restored.items() if got.rows_last_24h is None]
    for table, got in restored.items():
        if got.rows_last_24h is None:
            rows.append([table, "", "", "not applicable: no time column declared"])
            continue
        known = manifest.tables.get(table) if has_manifest else None
        expected = known.rows_last_24h if known is not None else None
        basis = f"manifest {expected}" if expected is not None else _no_expectation(has_manifest)
        rows.append([table, "" if expected is None else expected, got.rows_last_24h, basis])
        if got.rows_last_24h == 0:
            quiet.append(table)
            if require:
                failures.append(f"{table}: no rows inserted ({basis})")
                continue
        if expected is not None and got.rows_last_24h != expected:
            failures.append(f"{table}: {got.rows_last_24h} rows inserted, manifest {expected}")
    if failures:
        raise CheckFailed(f"inserts in the {window} in {manifest.key}: " + "; ".join(failures))
    judged = len(restored) - len(not_applicable)
    warning = ""
    if judged and len(quiet) == judged:
        warning = (f"no rows inserted in the {window} in {', '.join(quiet)}: a quiet database, or writes had "
                   "stopped; [database] require_recent_inserts = true makes this a failure")  # fmt: skip
    return InsertCheck(rows, not_applicable, warning)


def _no_expectation(has_manifest: bool) -> str:
    return "not in the manifest" if has_manifest else "the dump has no manifest to compare with"


def audit_rows(
    conn: psycopg.Connection[Any],
    database: DatabaseSettings,
    taken_at: datetime,
    counted: Mapping[str, TableStats] | None = None,
) -> int:
    """How many audit records the restored database holds for the 24 h before the backup.

    ``counted``: the critical tables just counted for ``taken_at``; when the audit table is one of them its
    24 h count is read from there instead of scanning it again.

    Raises:
        HarnessError: the audit table or its time column is missing, not a time, or not declared.
    """
    if not database.audit_table.strip():
        return 0
    table = parse_table(database.audit_table)
    column, column_key = database.time_column_of(table)
    if not column:
        raise HarnessError(f"{column_key}: the audit table {table.key} needs a time column to count the 24 h before "
                           "the backup; declare it in [database] time_columns")  # fmt: skip
    if table in database.tables() and counted is not None and table.key in counted:  # counted with this column
        return counted[table.key].rows_last_24h or 0
    spec = CountSpec(table, column, "[database] audit_table", column_key)
    return count_table(conn, spec, taken_at, database.time_zone).rows_last_24h or 0


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
    """Count the critical tables, the audit rows of the window and the newest data of a fresh restore.

    One scan per table: the scan that counts a critical table also reads its 24 h rows and newest time, so the
    audit rows and the newest data come from those counts (another scan of what pg_restore just wrote would add
    as much again to the restore's critical path). Only a heartbeat or an audit table that is not critical is
    read on its own.
    """
    stats = restored_stats(conn, database, taken_at)
    return RestoredCounts(stats, audit_rows(conn, database, taken_at, stats), newest_data(conn, database, stats))
