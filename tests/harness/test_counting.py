"""Integrity on a foreign schema, unlike CodeBlack's: counted by ``backup postgres``, restored, compared exactly.

The "production" database has a quoted mixed-case table in its own schema with a ``timestamp without time
zone`` column kept in Tokyo time, a table of another schema with a ``date`` column, and two tables without
any time column (one critical, one counted only because ``count_all_tables`` is set). It is dumped by the
real backup code into moto, restored by the drill's restore into throwaway staging as the restore role, and
counted there; each broken variant fails with one line naming the table or the key of drill.toml.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from pydantic import SecretStr

from harness.backup.postgres import backup_postgres, dump_options
from harness.config import DrillConfig, Objectives
from harness.deployment import Deployment
from harness.errors import CheckFailed, ConfigError, HarnessError
from harness.identifiers import TableName, parse_column, parse_table
from harness.integrity import check_recent_inserts, compare_row_counts, count_restored
from harness.measure import Stopwatch, rpo_measure
from harness.restore.staging import Staging, restore_logical
from harness.services.postgres import OWNER_ROLE, PostgresServer
from harness.services.provider import Provider
from harness.services.s3 import MotoS3
from harness.storage.catalogue import BackupObject
from harness.storage.manifest import BackupManifest

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
ZONE = ZoneInfo("Asia/Tokyo")  # far from UTC and without daylight saving, so no day is 23 or 25 hours long
TODAY = NOW.astimezone(ZONE).date()
LINES, STOCK = '"Sales"."OrderLines"', "inventory.stock_moves"
FOREIGN = {
    "name": "foreign",
    "critical_tables": [LINES, STOCK, "countries"],
    "time_columns": {LINES: '"PlacedAt"', STOCK: "moved_on"},
    "default_time_column": "",
    "time_zone": "Asia/Tokyo",
    "count_all_tables": True,
    "require_recent_inserts": False,
    "audit_table": "",
}


def seed_foreign(conn: psycopg.Connection[Any]) -> None:
    """The foreign schema and its rows (see the module): 30 order lines an hour apart, the newest 1 h old."""
    conn.execute('CREATE SCHEMA "Sales"')
    conn.execute('CREATE TABLE "Sales"."OrderLines" (id int, "PlacedAt" timestamp without time zone, qty int)')
    conn.execute("CREATE SCHEMA inventory")
    conn.execute("CREATE TABLE inventory.stock_moves (id int, moved_on date)")
    conn.execute("CREATE TABLE countries (code text PRIMARY KEY)")
    conn.execute("CREATE TABLE tags (name text)")
    # Tokyo wall-clock times without a zone: read as UTC they would be 9 h off, and so would the counts.
    lines = [(i, (NOW - timedelta(hours=i)).astimezone(ZONE).replace(tzinfo=None), i) for i in range(1, 31)]
    conn.cursor().executemany('INSERT INTO "Sales"."OrderLines" VALUES (%s, %s, %s)', lines)
    days = [TODAY, TODAY, TODAY - timedelta(days=1), TODAY - timedelta(days=3)]
    conn.cursor().executemany("INSERT INTO inventory.stock_moves VALUES (%s, %s)", list(enumerate(days)))
    conn.execute("INSERT INTO countries VALUES ('DE'), ('FR'), ('NL'), ('PL'), ('SE')")
    conn.execute("INSERT INTO tags VALUES ('a'), ('b'), ('c')")


@dataclass
class Foreign:
    """The foreign production: its database, its bucket, the config pointing at both, and one real dump."""

    server: PostgresServer
    dbname: str
    config: DrillConfig
    client: Any
    deployment: Deployment

    def backup(self, **database: Any) -> BackupManifest:
        """``backup postgres`` of the foreign database with some ``[database]`` keys changed."""
        config = self.config.with_changes(database=database) if database else self.config
        return backup_postgres(self.server.dsn(self.dbname), self.client, self.config.storage.backup_bucket,
                               config.storage.logical_prefix, pg_dump=self.server.binaries.tool("pg_dump"),
                               options=dump_options(config), taken_at=NOW)  # fmt: skip

    @functools.cached_property
    def manifest(self) -> BackupManifest:
        """The one good dump of the module, taken with the foreign drill.toml."""
        return self.backup()


@pytest.fixture(scope="module")
def foreign(pg_server: PostgresServer, s3_server: MotoS3, drill_config: DrillConfig) -> Foreign:
    dbname = f"foreign_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(dbname)
    with pg_server.connect(dbname) as conn:
        seed_foreign(conn)
    client = s3_server.client()
    bucket = f"foreign-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    config = drill_config.with_changes(
        target={"name": "Acme Shop", "sandbox": False}, storage={"backup_bucket": bucket, "key_name": ""},
        database=FOREIGN,
    )  # fmt: skip
    deployment = Deployment(name="foreign", config=config, storage=s3_server.endpoint, redis_url=None,
                            database_host="127.0.0.1", verify_key="", app_secrets={"K": SecretStr("x")})  # fmt: skip
    return Foreign(pg_server, dbname, config, client, deployment)


@pytest.fixture(scope="module")
def staging(foreign: Foreign, provider: Provider) -> Iterator[Staging]:
    dump = BackupObject(foreign.manifest.key, foreign.manifest.taken_at, foreign.manifest.size, "")
    restored = restore_logical(provider, foreign.deployment, foreign.config, dump, foreign.manifest,
                               watch=Stopwatch(), name="foreign")  # fmt: skip
    yield restored
    restored.stop()


@pytest.fixture
def clone(staging: Staging) -> Iterator[psycopg.Connection[Any]]:
    """A copy of the restored database, connected as the restore role (as the drill counts)."""
    name = f"clone_{uuid.uuid4().hex[:8]}"
    with staging.postgres.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{staging.dbname}" OWNER {OWNER_ROLE}')
    with staging.postgres.connect(name, OWNER_ROLE) as conn:
        yield conn
    staging.postgres.drop_database(name)


def test_names_are_written_as_in_sql_and_keyed_stably() -> None:
    assert parse_table('"Sales"."OrderLines"') == TableName("Sales", "OrderLines")
    assert parse_table("Sales.OrderLines") == TableName("sales", "orderlines")  # unquoted folds, as in SQL
    assert parse_table("orders").key == parse_table("public.orders").key == parse_table('"public"."orders"').key
    assert parse_table("orders").key == "orders"
    assert parse_table('"Sales"."OrderLines"').key == '"Sales"."OrderLines"'
    assert parse_table('"a.b"."say ""hi"""') == TableName("a.b", 'say "hi"')
    assert parse_table(parse_table('"a.b"."say ""hi"""').key) == TableName("a.b", 'say "hi"')
    assert parse_column('"PlacedAt"') == "PlacedAt"
    for bad, message in [("a.b.c", "table or schema.table"), ('"open', "unterminated"), ("a b", "unexpected ' '"),
                         ("", "not a name"), ('""', "empty name")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_table(bad)


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ({"critical_tables": ["a.b.c"]}, r"\[database\] critical_tables: Value error, 'a.b.c': a table is written"),
        ({"critical_tables": ["orders", "public.orders"]}, r"critical_tables: Value error, orders listed twice"),
        ({"time_zone": "Mars/Olympus"}, r"\[database\] time_zone: Value error, 'Mars/Olympus' is not an IANA"),
        ({"time_columns": {"orders": "a.b"}}, r"\[database\] time_columns: Value error, 'a.b': a column is one"),
    ],
)
def test_a_malformed_name_in_drill_toml_is_one_line(
    database: dict[str, Any], message: str, drill_config: DrillConfig
) -> None:
    with pytest.raises(ConfigError, match=message):
        drill_config.with_changes(database=database)


def test_backup_keys_carry_the_configured_name_else_the_target_s(drill_config: DrillConfig) -> None:
    assert drill_config.backup_key_name() == "codeblack"  # the embedded default keeps its keys
    assert drill_config.with_changes(storage={"key_name": ""}, target={"name": "Acme Shop/EU"}).backup_key_name() == (
        "Acme-Shop-EU"
    )
    with pytest.raises(ConfigError, match=r"\[storage\] key_name: Value error, 'a/b': only letters, digits"):
        drill_config.with_changes(storage={"key_name": "a/b"})


def test_the_manifest_counts_every_table_exactly_and_reads_naive_times_in_the_declared_zone(foreign: Foreign) -> None:
    manifest = foreign.manifest
    assert manifest.key == f"postgres/logical/Acme-Shop-{NOW:%Y%m%dT%H%M%SZ}.dump"  # named after the target
    assert manifest.all_tables
    assert list(manifest.tables) == [LINES, STOCK, "countries", "tags"]
    lines, stock = manifest.tables[LINES], manifest.tables[STOCK]
    assert (lines.rows, lines.rows_last_24h, lines.newest) == (30, 23, NOW - timedelta(hours=1))
    midnight = datetime.combine(TODAY, time(), ZONE)  # a date is the start of its day in the zone
    assert (stock.rows, stock.rows_last_24h, stock.newest) == (4, 2, midnight)
    assert [(s.rows, s.rows_last_24h, s.newest) for s in (manifest.tables["countries"], manifest.tables["tags"])] == [
        (5, None, None), (3, None, None)
    ]  # fmt: skip


def test_the_restored_copy_matches_its_manifest_exactly(staging: Staging, foreign: Foreign) -> None:
    database = foreign.config.database
    rows = compare_row_counts(staging.counts.tables, staging.dump, database)
    rows.check()
    assert [row[:3] for row in rows.rows] == [[LINES, 30, 30], [STOCK, 4, 4], ["countries", 5, 5], ["tags", 3, 3]]
    inserts = check_recent_inserts(staging.counts.tables, staging.dump, require=False)
    assert inserts.not_applicable == ["countries", "tags"]
    assert inserts.warning == ""
    assert staging.counts.newest.moment == NOW - timedelta(hours=1)
    assert staging.counts.newest.basis == f"newest row of {LINES}, {STOCK} (no heartbeat configured)"
    loss = rpo_measure(NOW + timedelta(hours=1), staging.counts.newest, staging.dump.taken_at, Objectives())
    assert loss.value == 2  # an aware newest time: no naive/aware subtraction anywhere


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (LINES, rf"{LINES}: restored 29 rows, manifest 30$"),
        ("tags", r"tags: restored 2 rows, manifest 3$"),  # not critical: counted because count_all_tables is set
    ],
)
def test_a_row_deleted_after_the_manifest_fails_naming_the_table(
    clone: psycopg.Connection[Any], foreign: Foreign, table: str, message: str
) -> None:
    name = parse_table(table)
    clone.execute(f"DELETE FROM {name.identifier().as_string(clone)} WHERE ctid = (SELECT min(ctid) FROM "
                  f"{name.identifier().as_string(clone)})")  # fmt: skip
    counts = count_restored(clone, foreign.config.database, foreign.manifest.taken_at)
    with pytest.raises(
        CheckFailed, match=rf"^row counts of {foreign.manifest.key} differ from its manifest: {message}"
    ):
        compare_row_counts(counts.tables, foreign.manifest, foreign.config.database).check()


def test_a_table_missing_from_the_restore_fails_naming_it(clone: psycopg.Connection[Any], foreign: Foreign) -> None:
    clone.execute("DROP TABLE tags")
    counts = count_restored(clone, foreign.config.database, foreign.manifest.taken_at)
    with pytest.raises(CheckFailed, match=r": tags: in the manifest \(3 rows\) but not in the restored database$"):
        compare_row_counts(counts.tables, foreign.manifest, foreign.config.database).check()


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ({"time_columns": {LINES: "placed_at", STOCK: "moved_on"}},
         r'^\[database\] time_columns\."Sales"\."OrderLines": column "Sales"\."OrderLines"\.placed_at does not '
         r"exist in database foreign_\w+$"),
        ({"time_columns": {LINES: '"PlacedAt"', "countries": "code"}},
         r"^\[database\] time_columns\.countries: column countries\.code is text, not timestamp with or without "
         r"time zone or date$"),
        ({"critical_tables": ["Sales.OrderLines"]},
         r'^\[database\] critical_tables: table sales\.orderlines does not exist in database foreign_\w+ \(there is '
         r'"Sales"\."OrderLines": unquoted names fold to lower case, so write it quoted\)$'),
        ({"default_time_column": "created_at"},
         r"^\[database\] default_time_column: column countries\.created_at does not exist in database foreign_\w+ "
         r'\(a table without a time column needs its own entry: \[database\] time_columns = \{ countries = "" \}\)$'),
        ({"heartbeat_table": "countries", "heartbeat_column": "code"},
         r"^\[database\] heartbeat_column: column countries\.code is text, not timestamp"),
    ],
)  # fmt: skip
def test_backup_with_a_wrong_time_column_fails_naming_the_key(
    foreign: Foreign, database: dict[str, Any], message: str
) -> None:
    with pytest.raises(HarnessError, match=message):
        foreign.backup(**database)


def test_a_quiet_database_is_judged_against_its_manifest(clone: psycopg.Connection[Any], foreign: Foreign) -> None:
    since = NOW - timedelta(hours=24)
    clone.execute("""DELETE FROM "Sales"."OrderLines" WHERE ("PlacedAt" AT TIME ZONE 'Asia/Tokyo') > %s""", [since])
    clone.execute("DELETE FROM inventory.stock_moves WHERE moved_on = %s", [TODAY])
    counts = count_restored(clone, foreign.config.database, NOW).tables  # nobody wrote for a day before the backup
    manifest = foreign.manifest.model_copy(update={"tables": counts})  # its own manifest, as a quiet backup has
    judged = check_recent_inserts(counts, manifest, require=False)
    assert judged.warning.startswith(f"no rows inserted in the 24 h before {NOW.isoformat()} in {LINES}, {STOCK}: "
                                     "a quiet database, or writes had stopped")  # fmt: skip
    with pytest.raises(CheckFailed, match=rf": {LINES}: no rows inserted \(manifest 0\); {STOCK}: no rows"):
        check_recent_inserts(counts, manifest, require=True)
    with pytest.raises(CheckFailed, match=rf": {LINES}: no rows inserted \(the dump has no manifest to compare with\)"):
        check_recent_inserts(counts, manifest, has_manifest=False, require=True)
    # Against the real manifest the same copy has lost the day's rows: a failure even for a quiet target.
    with pytest.raises(CheckFailed, match=rf": {LINES}: 0 rows inserted, manifest 23; {STOCK}: 0 rows inserted, "
                                          r"manifest 2$"):  # fmt: skip
        check_recent_inserts(counts, foreign.manifest, require=False)


def test_a_config_without_the_manifest_s_tables_is_told_so(foreign: Foreign, staging: Staging) -> None:
    critical_only = foreign.manifest.model_copy(update={"all_tables": False})
    with pytest.raises(CheckFailed, match=r"count_all_tables is set but the manifest of .* counted only the critical"):
        compare_row_counts(staging.counts.tables, critical_only, foreign.config.database).check()


def test_cli_backup_with_a_non_time_column_is_one_line_and_exit_two(
    foreign: Foreign, s3_server: MotoS3, tmp_path: Path
) -> None:
    config = tmp_path / "drill.toml"
    config.write_text(
        f'[target]\nname = "acme"\nsandbox = false\n[storage]\nendpoint_url = "{s3_server.endpoint.url}"\n'
        f'backup_bucket = "{foreign.config.storage.backup_bucket}"\n'
        'access_key_env = "T_KEY"\nsecret_key_env = "T_SEC"\n'
        '[database]\ncritical_tables = ["countries"]\ntime_columns = { countries = "code" }\n'
    )
    env = {**os.environ, "T_KEY": s3_server.endpoint.access_key.get_secret_value(),
           "T_SEC": s3_server.endpoint.secret_key.get_secret_value(),
           "DATABASE_URL": foreign.server.dsn(foreign.dbname)}  # fmt: skip
    program = Path(sys.executable).parent / "codeblack-drills"
    result = subprocess.run([program, "--config", config, "backup", "postgres"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "error: [database] time_columns.countries: column countries.code is text, not timestamp with or without "
        "time zone or date"
    )
    assert "Traceback" not in result.stderr
