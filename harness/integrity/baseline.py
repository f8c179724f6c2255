"""The previous drill's restored row counts: what a dump without a manifest is compared with.

A deployment whose dumps are taken by other tools has no manifest saying how many rows each table held. The
drill records do: every record keeps the row counts its drill restored (``restored_rows``). The critical tables
of a target only grow (orders, audit rows are never deleted in normal operation), so a newer dump
that restores fewer rows than an older one did has lost data. The basis is the newest record of the same target
whose backup is not newer than the dump being judged (re-running an old dump must not be held to a newer
one's counts), read only from an intact chain: a forged record must not lower the bar. A record whose own
row-count check failed is skipped too: a drill that restored a shrunken dump must not make it the next
drill's bar.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from harness.errors import HarnessError
from harness.integrity.rows import ROW_RULES, RowBaseline
from harness.records.chain import load_chain, verify_chain
from harness.records.record import BackupUsed, DrillRecord, Restored

__all__ = ["previous_rows"]


def previous_rows(directory: Path, target: str, taken_at: datetime, database: str = "") -> RowBaseline | None:
    """The restored row counts of the newest earlier drill of ``target`` on a backup taken at or before ``taken_at``.

    Records whose row-count check failed are passed over. ``database`` names a ``[[databases]]`` entry: its own
    rows and its own dump's time in each record are read instead of the first database's.

    Returns ``None`` when no such record exists (a first drill, or records older than ``restored_rows``).

    Raises:
        HarnessError: the chain in ``directory`` is broken, so its counts cannot serve as a basis.
    """
    result = verify_chain(directory)
    if not result.ok:
        raise HarnessError(f"{result.problem}; the previous drill's row counts cannot serve as the basis")
    for record in reversed(load_chain(directory)):
        failed = any(c.status == "failed" and c.message.startswith(ROW_RULES) for c in record.checks)
        rows, backup = _rows_of(record, database)
        if record.target == target and rows and backup is not None and backup.taken_at <= taken_at and not failed:
            source = (f"the previous drill's restored rows (run {record.run_id} of {record.finished_at:%Y-%m-%d %H:%M} "
                      f"UTC, backup {backup.key})")  # fmt: skip
            return RowBaseline(source, dict(rows))
    return None


def _rows_of(record: DrillRecord, database: str) -> tuple[dict[str, int], BackupUsed | Restored | None]:
    """A record's restored rows of ``database`` (``""``: the first) and the dump they were restored from."""
    if not database:
        return record.restored_rows, record.backup
    dump = next((r for r in record.restored if r.what == f"PostgreSQL dump {database}"), None)
    return record.database_rows.get(database, {}), dump
