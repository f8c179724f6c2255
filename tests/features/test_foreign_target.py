"""The monthly drill on a target that is not CodeBlack: a PostgreSQL-only lending library.

``tests/data/foreign_target/`` holds its schema (tables, columns and names nothing like the sandbox's) and its
``drill.toml``, which declares what it lacks: Redis, an app, base backups, an uploads bucket, migrations, an
audit table. Its production is a throwaway PostgreSQL; its backups are real dumps in a moto bucket, the newest
taken by ``codeblack-drills backup postgres`` as cron would, the 14 days before it every 6 hours as the plan
asks. Then ``pytest features/`` runs in a subprocess exactly as an operator runs it, with no signing key in its
environment: it must reach GO with what the target lacks reported as not applicable, and a ``drill.toml`` that
names a table or an audit table the dump does not hold must fail naming the key, before the first count.

The same database dumped by hand with a plain ``pg_dump -Fc`` and uploaded without a manifest, as another tool
would, reaches GO on its first restore drill with its exact counts, judged against ``[database] minimum_rows``;
a minimum above what the dump holds fails naming the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.backup.postgres import backup_postgres, dump_options
from harness.config import load_config
from harness.deployment import Deployment
from harness.services.postgres import PostgresServer
from harness.services.s3 import S3Server
from harness.storage.manifest import format_timestamp
from sandbox.target import ENV, write_drill_toml
from tests.features.drill_run import DrillRun, leftovers, run_drill
from tests.test_cli import PROGRAM

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent.parent / "data" / "foreign_target"
HISTORY = 56  # 14 days of dumps every 6 hours before the newest
REDIS_SCENARIO = "The newest Redis copy restores with its keys, their types and sampled values"


def _sections(bucket: str) -> dict[str, dict[str, Any]]:
    """The data's drill.toml as sections for :func:`write_drill_toml`, with the test's bucket."""
    data = tomllib.loads((DATA / "drill.toml").read_text())
    data.pop("target")
    data["storage"]["backup_bucket"] = bucket
    return data


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PostgresServer, s3_server: S3Server
) -> Iterator[dict[str, Any]]:
    """The library's production database, its bucket with 14 days of dumps, and the target as the drill sees it."""
    name, bucket = f"library_{uuid.uuid4().hex[:8]}", f"library-{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name)
    with pg_server.connect(name) as conn:
        conn.execute((DATA / "schema.sql").read_text())  # type: ignore[arg-type]
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    sections = _sections(bucket)
    config = load_config(DATA / "drill.toml").with_changes(storage={"backup_bucket": bucket})
    target = Deployment(name="lending-library", config=config, storage=s3_server.endpoint, redis_url=None,
                        database_host=config.storage.database_host, verify_key="")  # fmt: skip
    # The history ends 6 h before a moment 10 minutes ahead, so taking it (slow on a busy machine) cannot stretch
    # the gap to the cron backup below past the 6 h the policy allows.
    now = datetime.now(UTC) + timedelta(minutes=10)
    pg_dump = pg_server.binaries.tool("pg_dump")
    for step in range(HISTORY, 0, -1):
        backup_postgres(pg_server.dsn(name), client, bucket, config.storage.logical_prefix, pg_dump=pg_dump,
                        options=dump_options(config), taken_at=now - timedelta(hours=6 * step))  # fmt: skip
    # The newest, as cron takes it: the command line with the drill.toml an operator writes.
    home = tmp_path_factory.mktemp("library")
    toml = write_drill_toml(home / "cron", target, **sections)
    env = {**os.environ, "DATABASE_URL": pg_server.dsn(name), ENV["access"]: s3_server.endpoint.access_key
           .get_secret_value(), ENV["secret"]: s3_server.endpoint.secret_key.get_secret_value()}  # fmt: skip
    env.pop("CODEBLACK_SIGNING_KEY", None)
    taken = subprocess.run([PROGRAM, "--config", str(toml), "backup", "postgres"], env=env, capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert taken.returncode == 0, taken.stderr
    manifest = json.loads(taken.stdout)
    yield {"target": target, "sections": sections, "home": home, "newest": manifest["key"], "dsn": pg_server.dsn(name),
           "rows": {table: stats["rows"] for table, stats in manifest["tables"].items()}}  # fmt: skip
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def plain_dump(
    library: dict[str, Any], pg_server: PostgresServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The library dumped by hand (``pg_dump -Fc``, nothing else) and uploaded with boto3 to a bucket of its own."""
    bucket = f"plain-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    path = tmp_path_factory.mktemp("plain") / "library.dump"
    subprocess.run([pg_server.binaries.tool("pg_dump"), "-Fc", "-f", path, library["dsn"]], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    key = f"postgres/logical/lending-library-{format_timestamp(datetime.now(UTC))}.dump"
    client.upload_file(str(path), bucket, key)
    assert [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]  # no manifest
    return {"bucket": bucket, "key": key}


def _drill(
    directory: Path, library: dict[str, Any], select: str, args: tuple[str, ...] = (), **changes: dict[str, Any]
) -> DrillRun:
    sections = {name: {**values, **changes.get(name, {})} for name, values in library["sections"].items()}
    done = run_drill(directory, library["target"], select, feature="features/", timeout=240,
                     env={"CODEBLACK_SIGNING_KEY": ""}, args=args, **sections)  # fmt: skip
    assert leftovers(done.run) == []
    return done


def test_the_monthly_drill_reaches_go_with_what_the_target_lacks_not_applicable(
    tmp_path: Path, library: dict[str, Any]
) -> None:
    done = _drill(tmp_path, library, "")
    assert done.returncode == 0, done.output[-4000:]
    [record] = done.records()
    assert record["verdict"]["decision"] == "GO", record["verdict"]
    assert record["backup"]["key"] == library["newest"]
    assert record["restored_rows"] == library["rows"] == {"members": 60, "loans": 240}
    statuses = {check["scenario"]: (check["status"], check["message"]) for check in record["checks"]}
    assert statuses[REDIS_SCENARIO] == (
        "not applicable",
        "not applicable: the target has no Redis ([redis] enabled = false in drill.toml)",
    )
    assert statuses["The application starts against staging and its deep health is healthy"] == (
        "not applicable",
        "not applicable: the target has no application ([app] enabled = false in drill.toml)",
    )
    assert statuses["The newest base backup restores physically and reaches consistency"] == (
        "not applicable", "not applicable: the target has no base backups ([storage] base_backups = false in "
        "drill.toml)")  # fmt: skip
    assert statuses["The audit records of the last 24 hours are present"][0] == "not applicable"
    assert statuses["The deployment order is rehearsed on a staging copy of the newest backup"] == (
        "not applicable",
        "not applicable: the target has no application ([app] enabled = false in drill.toml)",
    )
    assert statuses["The migration history is one linear chain ending at the expected head"][0] == "not applicable"
    ran = {scenario for scenario, (status, _) in statuses.items() if status == "passed"}
    assert "Cut-over to production is decided only after staging verification" in ran
    assert "Row counts of the critical tables match the backup's manifest" in ran
    assert {status for status, _ in statuses.values()} == {"passed", "not applicable"}
    rto = next(m for m in record["measures"] if m["name"] == "RTO")
    assert rto["detail"].startswith("stopped at the restored database verified ([app] enabled = false); ")
    assert record["environment"]["rto.stopped_at"] == "the restored database verified ([app] enabled = false)"
    assert any(m["name"] == "RPO" and m["met"] for m in record["measures"])
    assert "not applicable: the target has no Redis ([redis] enabled = false in drill.toml): Backup strategy: " \
           "Redis takes RDB snapshots" in record["verdict"]["reasons"]  # fmt: skip
    # Allure shows a not-applicable scenario as skipped with its reason.
    results = [json.loads(path.read_text()) for path in (tmp_path / "allure").glob("*-result.json")]
    redis = next(r for r in results if r["name"] == REDIS_SCENARIO)
    assert (redis["status"], redis["statusDetails"]["message"]) == (
        "skipped",
        "not applicable: the target has no Redis ([redis] enabled = false in drill.toml)",
    )
    assert redis["titlePath"] == ["features", "Monthly restore drill into isolated staging"]  # in its feature's tree
    assert redis["titlePath"] == ["features", "Monthly restore drill into isolated staging"]  # in its feature's tree


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"database": {"critical_tables": ["members", "loans", "fines"]}},
         "[database] critical_tables 'fines' is not in the restored database"),
        ({"database": {"audit_table": "config_change_history"}},
         "[database] audit_table 'config_change_history' is not in the restored database"),
        ({"database": {"time_columns": {"members": "joined_at", "loans": "lent_on"}}},
         "[database] time_columns.loans: critical table 'loans' has no column 'lent_on'"),
        ({"database": {"heartbeat_table": "members", "heartbeat_column": "beat_at"}},
         "[database] heartbeat_column 'beat_at' is not a column of heartbeat table 'members'"),
    ],
    ids=["missing-table", "default-audit-table", "missing-time-column", "missing-heartbeat-column"],
)  # fmt: skip
def test_a_name_the_restored_database_lacks_fails_naming_its_key(
    tmp_path: Path, library: dict[str, Any], changes: dict[str, Any], expected: str
) -> None:
    done = _drill(tmp_path, library, "isolated_staging or row_counts", **changes)
    config = tmp_path / "drill.toml"
    line = f"harness.errors.ConfigError: {config}: {expected} (fix drill.toml or the backup)"
    assert set(done.failures.values()) == {line}, done.output[-3000:]
    [record] = done.records()
    statuses = {check["scenario"]: check["status"] for check in record["checks"]}
    selected = {"The newest logical backup restores into isolated staging",
                "Row counts of the critical tables match the backup's manifest"}  # fmt: skip
    assert {statuses.pop(scenario) for scenario in selected} == {"failed"}
    assert set(statuses.values()) == {"deselected"}  # neither "skipped" nor "not applicable"
    assert "Traceback" not in done.output
    assert "psycopg" not in done.output


@pytest.mark.parametrize("minimum", [240, 241], ids=["met", "one-row-short"])
def test_a_plain_pg_dump_without_a_manifest_reaches_go_against_minimum_rows(
    tmp_path: Path, library: dict[str, Any], plain_dump: dict[str, Any], minimum: int
) -> None:
    done = _drill(tmp_path, library, "", args=("-m", "restore_drill"), storage={"backup_bucket": plain_dump["bucket"]},
                  database={"minimum_rows": {"members": 60, "loans": minimum}})  # fmt: skip
    [record] = done.records()
    assert record["backup"]["key"] == plain_dump["key"]
    assert record["restored_rows"] == {"members": 60, "loans": 240}
    assert record["manifests_authenticated"] is False
    if minimum == 241:
        rows = "test_row_counts_of_the_critical_tables_match_the_backups_manifest"
        assert set(done.failures) == {rows, "test_cutover_to_production_is_decided_only_after_staging_verification"}
        assert done.failures[rows] == (
            "harness.errors.CheckFailed: row counts below minimum_rows of drill.toml (the dump has no manifest): "
            "loans: restored 240 rows, minimum 241"
        ), done.output[-3000:]
        assert record["verdict"]["decision"] == "NO-GO"
        return
    assert done.returncode == 0, done.output[-4000:]
    assert record["verdict"]["decision"] == "GO", record["verdict"]
    assert record["environment"]["rows.basis"] == "minimum_rows of drill.toml (the dump has no manifest)"
    statuses = {check["scenario"]: check["status"] for check in record["checks"]}
    assert statuses["The newest logical backup restores into isolated staging"] == "passed"
    assert statuses["Row counts of the critical tables match the backup's manifest"] == "passed"
    assert statuses["The last 24 hours of inserts are present"] == "passed"
