"""Integrity of a restored database: row counts, recent inserts, audit rows (against a manifest or a floor); amcheck."""

from harness.integrity.amcheck import check_amcheck, install_amcheck
from harness.integrity.baseline import previous_rows
from harness.integrity.rows import (
    InsertCheck,
    RestoredCounts,
    RowBaseline,
    RowCheck,
    check_audit_rows,
    check_recent_inserts,
    compare_row_counts,
    compare_with_previous,
    count_restored,
)

__all__ = [
    "InsertCheck",
    "RestoredCounts",
    "RowBaseline",
    "RowCheck",
    "check_amcheck",
    "check_audit_rows",
    "check_recent_inserts",
    "compare_row_counts",
    "compare_with_previous",
    "count_restored",
    "install_amcheck",
    "previous_rows",
]
