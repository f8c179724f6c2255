"""Integrity checks on a real restored dump: matching counts pass; each broken copy fails with its exact message.

One dump is restored into staging per module; each test works on its own clone of the restored database
(``CREATE DATABASE ... TEMPLATE``), breaks it the way a bad backup would, and counts it like the drill does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from harness.config import DatabaseSettings, DrillConfig
from harness.errors import CheckFailed, HarnessError
from harness.integrity import (
    RestoredCounts,
    RowBaseline,
    check_amcheck,
    check_audit_rows,
    check_recent_inserts,
    compare_row_counts,
    compare_with_previous,
    count_restored,
)
from harness.integrity.rows import audit_rows
from harness.measure import newest_data
from harness.restore.staging import Staging
from harness.services.provider import Provider
from harness.storage.manifest import TableStats
from tests.harness.test_restore import TAKEN_AT, Production, make_production


@pytest.fixture(scope="module")
def restored(
    provider: Provider, pg_server: Any, s3_server: Any, drill_config: DrillConfig
) -> Iterator[tuple[Production, Staging]]:
    production = make_production(pg_server, s3_server, drill_config, newest=TAKEN_AT - timedelta(minutes=1))
    staging = production.restore(provider, name="integrity")
    yield production, staging
    staging.stop()


@pytest.fixture
def clone(restored: tuple[Production, Staging]) -> Iterator[psycopg.Connection[Any]]:
    _, staging = restored
    name = f"clone_{uuid.uuid4().hex[:8]}"
    with staging.postgres.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{staging.dbname}"')
    with staging.postgres.connect(name) as conn:
        yield conn
    staging.postgres.drop_database(name)


def _count(conn: psycopg.Connection[Any], production: Production) -> RestoredCounts:
    return count_restored(conn, production.deployment.config.database, production.manifest.taken_at)


def test_a_faithful_restore_matches_its_manifest(restored: tuple[Production, Staging]) -> None:
    production, staging = restored
    database = production.deployment.config.database
    check = compare_row_counts(staging.counts.tables, staging.dump, database)
    check.check()
    check_recent_inserts(staging.counts.tables, staging.dump)
    check_audit_rows(staging.counts, database, staging.dump.taken_at)
    assert check.basis == f"manifest of {production.manifest.key}"
    assert [row[0] for row in check.rows] == database.critical_tables
    assert all(row[1] == row[2] and row[3] == row[4] for row in check.rows)


def test_a_dump_missing_rows_of_one_table_fails_naming_it(
    clone: psycopg.Connection[Any], restored: tuple[Production, Staging]
) -> None:
    production, _ = restored
    clone.execute("DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 3)")
    counts = _count(clone, production)
    expected = production.manifest.tables["orders"].rows
    with pytest.raises(CheckFailed, match=rf"^row counts of {production.manifest.key} differ from its manifest: "
                                          rf"orders: restored {expected - 3} rows, manifest {expected}$"):  # fmt: skip
        compare_row_counts(counts.tables, production.manifest, production.deployment.config.database).check()


def test_no_inserts_in_the_24_hours_before_the_backup_fails(
    clone: psycopg.Connection[Any], restored: tuple[Production, Staging]
) -> None:
    production, _ = restored
    since = production.manifest.taken_at - timedelta(hours=24)
    clone.execute("DELETE FROM blacklist_entries WHERE created_at > %s", [since])
    counts = _count(clone, production)
    quiet = production.manifest.model_copy(deep=True)
    quiet.tables["blacklist_entries"] = TableStats(rows=counts.tables["blacklist_entries"].rows, rows_last_24h=0)
    with pytest.raises(CheckFailed, match=r": blacklist_entries: no rows inserted \(manifest 0\)$"):
        check_recent_inserts(counts.tables, quiet)


def test_no_audit_rows_in_the_window_fails_naming_the_audit_table(
    clone: psycopg.Connection[Any], restored: tuple[Production, Staging]
) -> None:
    production, _ = restored
    taken_at = production.manifest.taken_at
    clone.execute("DELETE FROM config_change_history WHERE created_at > %s", [taken_at - timedelta(hours=24)])
    counts = _count(clone, production)
    with pytest.raises(CheckFailed, match=rf"^audit table config_change_history: 0 rows in the 24 h before "
                                          rf"{re.escape(taken_at.isoformat())}; expected at least 1$"):  # fmt: skip
        check_audit_rows(counts, production.deployment.config.database, taken_at)


class _Recording:
    """A connection that keeps the text of every statement it runs, to see which tables a check reads."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def execute(self, query: Any, params: Any = None) -> Any:
        self.statements.append(query if isinstance(query, str) else query.as_string(self.conn))
        return self.conn.execute(query, params)


def test_each_critical_table_is_scanned_once_for_counts_newest_data_and_audit_rows(
    clone: psycopg.Connection[Any], restored: tuple[Production, Staging]
) -> None:
    production, _ = restored
    database, taken_at = production.deployment.config.database, production.manifest.taken_at
    recording = _Recording(clone)
    counts = count_restored(recording, database, taken_at)  # type: ignore[arg-type]
    for table in database.critical_tables:
        scans = [text for text in recording.statements if re.search(rf'FROM ("\w+"\.)?"{table}"', text)]
        assert len(scans) == 1, (table, scans)
    # The same numbers as reading them on their own (the audit table is a critical one; no heartbeat is set).
    assert counts.newest == newest_data(clone, database)
    assert counts.audit_rows == audit_rows(clone, database, taken_at) > 0


def test_without_a_manifest_counts_are_judged_by_the_configured_minimums(restored: tuple[Production, Staging]) -> None:
    _, staging = restored
    tables = ["orders", "applications"]
    counts = {t: staging.counts.tables[t] for t in tables}
    enough = DatabaseSettings(critical_tables=tables, minimum_rows={"orders": 10, "applications": 10})
    assert compare_row_counts(counts, None, enough).basis == "minimum_rows of drill.toml (the dump has no manifest)"
    too_many = DatabaseSettings(critical_tables=tables, minimum_rows={"orders": 1000, "applications": 1})
    orders = counts["orders"].rows
    with pytest.raises(CheckFailed, match=rf"^row counts below minimum_rows of drill.toml \(the dump has no "
                                          rf"manifest\): orders: restored {orders} rows, minimum 1000$"):  # fmt: skip
        compare_row_counts(counts, None, too_many).check()
    with pytest.raises(HarnessError, match=r"nor a previous drill record of this target gives a row count for "
                                           r"applications; add them to minimum_rows in drill.toml$"):  # fmt: skip
        compare_row_counts(counts, None, DatabaseSettings(critical_tables=tables, minimum_rows={"orders": 1}))


def test_without_a_manifest_fewer_rows_than_the_previous_drill_restored_fail(
    restored: tuple[Production, Staging],
) -> None:
    _, staging = restored
    tables = ["orders", "applications"]
    counts = {t: staging.counts.tables[t] for t in tables}
    orders, applications = counts["orders"].rows, counts["applications"].rows
    last = RowBaseline("the previous drill's restored rows (run r1)", {"orders": orders, "applications": applications})
    same = compare_row_counts(counts, None, DatabaseSettings(critical_tables=tables), last)
    assert same.basis == "the previous drill's restored rows (run r1) (the dump has no manifest)"
    assert same.rows[0][:3] == ["orders", f">= {orders}", orders]
    same.check()
    # minimum_rows wins for its tables (a table that may shrink); the previous drill's count judges the others.
    grown = RowBaseline("run r1", {"orders": orders + 5, "applications": applications + 2})
    mixed = compare_row_counts(counts, None, DatabaseSettings(critical_tables=tables, minimum_rows={"orders": 1}),
                               grown)  # fmt: skip
    assert mixed.basis == "minimum_rows of drill.toml and run r1 (the dump has no manifest)"
    with pytest.raises(CheckFailed, match=rf": applications: restored {applications} rows, the previous drill "
                                          rf"restored {applications + 2}$"):  # fmt: skip
        mixed.check()


def test_a_table_that_shrank_since_the_previous_drill_fails_even_with_a_manifest(
    restored: tuple[Production, Staging],
) -> None:
    _, staging = restored
    counts = {t: staging.counts.tables[t] for t in ("orders", "applications")}
    orders = counts["orders"].rows
    assert compare_with_previous(counts, None, 0.1).failures == []  # a first drill: nothing to compare with
    last = RowBaseline("the previous drill's restored rows (run r1)", {"orders": orders * 2, "applications": 1})
    comparison = compare_with_previous(counts, last, 0.1)
    assert comparison.rows[0] == ["orders", orders * 2, orders, "-50.0%"]
    with pytest.raises(CheckFailed) as caught:
        comparison.check()
    assert str(caught.value) == (
        f"row counts shrank by more than [database] max_shrink_fraction = 0.1: orders: restored {orders} rows, "
        f"50.0% fewer than the {orders * 2} of the previous drill's restored rows (run r1)"
    )
    compare_with_previous(counts, last, 0.5).check()  # exactly the allowed fraction passes


def test_amcheck_passes_a_clean_restore_and_finds_a_corrupted_page(restored: tuple[Production, Staging]) -> None:
    _, staging = restored
    server = staging.postgres
    check_amcheck(server, staging.dbname)
    name = f"corrupt_{uuid.uuid4().hex[:6]}"
    server.create_database(name)
    with server.connect(name) as conn:
        conn.execute("CREATE TABLE victim AS SELECT i, repeat('x', 200) AS pad FROM generate_series(1, 2000) i")
        conn.execute("CREATE EXTENSION pg_buffercache")
        path = conn.execute("SELECT pg_relation_filepath('victim')").fetchone()
        conn.execute("CHECKPOINT")
        conn.execute("SELECT pg_buffercache_evict_relation('victim')")
    assert path is not None
    with (server.data_dir / path[0]).open("r+b") as relation:  # scribble over the middle of the first page
        relation.seek(4000)
        relation.write(b"\xde\xad\xbe\xef" * 64)
    with pytest.raises(CheckFailed, match=rf"^pg_amcheck found corruption in {name}: .*victim"):
        check_amcheck(server, name)
