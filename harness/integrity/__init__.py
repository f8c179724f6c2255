"""Integrity of restored data: row counts, recent inserts, audit rows, amcheck; a restored Redis's keys."""

from harness.integrity.amcheck import check_amcheck, install_amcheck
from harness.integrity.baseline import previous_rows
from harness.integrity.redis_compare import KeyComparison, compare_keyspace
from harness.integrity.redis_keys import RestoredKeyspace, observe_keyspace
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
    "KeyComparison",
    "RestoredCounts",
    "RestoredKeyspace",
    "RowBaseline",
    "RowCheck",
    "check_amcheck",
    "check_audit_rows",
    "check_recent_inserts",
    "compare_keyspace",
    "compare_row_counts",
    "compare_with_previous",
    "count_restored",
    "install_amcheck",
    "observe_keyspace",
    "previous_rows",
]
