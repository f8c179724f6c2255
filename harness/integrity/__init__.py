"""Integrity of a restored database: row counts, last-24 h inserts and audit rows against the manifest; amcheck."""

from harness.integrity.amcheck import check_amcheck
from harness.integrity.rows import (
    RestoredCounts,
    RowCheck,
    check_audit_rows,
    check_recent_inserts,
    compare_row_counts,
    count_restored,
)

__all__ = [
    "RestoredCounts",
    "RowCheck",
    "check_amcheck",
    "check_audit_rows",
    "check_recent_inserts",
    "compare_row_counts",
    "count_restored",
]
