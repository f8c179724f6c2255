"""From backup to verified drill, every ``codeblack-drills`` subcommand run for real against throwaway servers.

A codeblack-shaped PostgreSQL, a Redis and a moto S3 bucket stand in for production. The command line takes
the backups as cron would and prunes an expired copy; the restore drill (``pytest features/`` in a subprocess,
as an operator runs it) restores them, verifying the manifests the backup commands signed; then ``records
verify`` checks the drill records and ``report`` renders them. Two more drills restore dumps taken without a
manifest (as other tools take them): the first is judged against the rows the previous drill restored and
passes, the second lost rows and fails naming the basis.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.records.report import ALLURE_CACHE
from harness.services.postgres import PostgresServer
from harness.services.redis import RedisServer
from harness.services.s3 import MotoS3
from harness.storage.manifest import format_timestamp, manifest_key
from harness.storage.signing import public_key_b64
from sandbox.target import drill_env, write_drill_toml
from tests.features.drill_run import DrillRun, leftovers, run_drill
from tests.harness.test_restore import seed_production
from tests.test_cli import run_cli

pytestmark = pytest.mark.slow

FIRST_DRILL = "isolated_staging or row_counts or 24_hours or corruption or redis_copy or base_backup"


@pytest.fixture(name="site")
def site_fixture(
    tmp_path: Path, s3_server: MotoS3, pg_database: Any, pg_server: PostgresServer, redis_server: RedisServer,
    drill_config: DrillConfig,
) -> dict[str, Any]:  # fmt: skip
    """Production stand-ins, a drill.toml naming them, and the environment cron would give the commands."""
    seed_production(pg_database.dsn, pg_server.sqlalchemy_url(pg_database.name),
                    newest=datetime.now(UTC) - timedelta(minutes=5))  # fmt: skip
    bucket = f"b2d-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    target = Deployment(name="b2d", config=drill_config.with_changes(storage={"backup_bucket": bucket}),
                        storage=s3_server.endpoint, redis_url=redis_server.url, database_host="db.production.invalid",
                        verify_key="", app_secrets={"CODEBLACK_SIGNING_KEY": SecretStr("B" * 43 + "=")})  # fmt: skip
    seed = base64.b64encode(os.urandom(32)).decode()  # the backup host's signing key; the drill holds its public key
    cron = {"DATABASE_URL": pg_database.dsn, "REDIS_URL": redis_server.url, "B2D_SIGNING_KEY": seed}
    env = drill_env(target, f"b2d{uuid.uuid4().hex[:7]}", cron)
    sections = {"database": {"name": pg_database.name},  # the base backup holds the whole cluster: name the database
                "backup": {"signing_key_env": "B2D_SIGNING_KEY"},
                "storage": {"manifest_verify_key": public_key_b64(seed)}}  # fmt: skip
    return {"config": write_drill_toml(tmp_path, target, **sections), "sections": sections, "env": env,
            "bucket": bucket, "client": client, "secret": s3_server.endpoint.secret_key.get_secret_value(),
            "target": target, "dir": tmp_path, "db": (pg_server, pg_database.name)}  # fmt: skip


def _drill(site: dict[str, Any], select: str) -> DrillRun:
    done = run_drill(site["dir"], site["target"], select, timeout=180, **site["sections"])
    assert leftovers(done.run) == []
    assert done.records(), done.output[-3000:]  # the drill ran to its end (0 passed, 1 a check failed)
    assert site["secret"] not in done.output
    return done


def _manifestless_backup(site: dict[str, Any], sql: str) -> str:
    """Change production, back it up, and remove the manifest, as if another tool had taken the dump."""
    server, name = site["db"]
    with server.connect(name) as conn:
        conn.execute(sql)
    taken = run_cli(site, "backup", "postgres")
    assert taken.returncode == 0, taken.stderr
    key = taken.stdout.split('"key": "')[1].split('"')[0]
    site["client"].delete_object(Bucket=site["bucket"], Key=manifest_key(key))
    return key


def test_backup_prune_drill_verify_report(site: dict[str, Any]) -> None:
    for command in (("backup", "postgres"), ("backup", "base"), ("backup", "redis")):
        taken = run_cli(site, *command)
        assert taken.returncode == 0, taken.stderr
    assert "uploading s3://" in taken.stderr  # progress in the log, on stderr
    dump = next(k["Key"] for k in site["client"].list_objects_v2(Bucket=site["bucket"])["Contents"]
                if k["Key"].endswith(".dump"))  # fmt: skip
    expired = dump[:-21] + format_timestamp(datetime.now(UTC) - timedelta(days=30)) + ".dump"
    site["client"].copy_object(Bucket=site["bucket"], Key=expired, CopySource={"Bucket": site["bucket"], "Key": dump})
    dry = run_cli(site, "prune", "--dry-run")
    assert (dry.returncode, dry.stdout.split()) == (0, [expired])
    assert run_cli(site, "prune").stdout.split() == [expired]
    assert run_cli(site, "prune", "--dry-run").stdout == ""

    first = _drill(site, FIRST_DRILL)
    assert first.failures == {}, first.output[-3000:]
    [record] = first.records()
    assert {c["scenario"] for c in record["checks"] if c["status"] == "passed"} >= {
        "The newest logical backup restores into isolated staging",
        "Row counts of the critical tables match the backup's manifest",
        "The restored database has no corruption",
        "The newest Redis copy restores with its keys, their types and sampled values",
        "The newest base backup restores physically and reaches consistency",
    }
    assert record["environment"]["rows.basis"] == f"manifest of {dump}"
    assert record["manifests_authenticated"] is True  # signed by `backup postgres`, verified by the drill
    orders = record["restored_rows"]["orders"]
    assert "pg_restore of " in first.output  # restore progress in the live log

    grown = _manifestless_backup(
        site, "INSERT INTO orders (application_id, amount) SELECT min(id), 1 FROM applications"
    )
    second = _drill(site, "row_counts")
    assert second.failures == {}, second.output[-3000:]
    basis = second.records()[-1]["environment"]["rows.basis"]
    assert basis.startswith(f"the previous drill's restored rows (run {first.run} of ")
    assert basis.endswith(f", backup {dump}) (the dump has no manifest)")
    assert second.records()[-1]["restored_rows"]["orders"] == orders + 1

    _manifestless_backup(site, "DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 3)")
    third = _drill(site, "row_counts")
    [message] = third.failures.values()
    assert message.endswith(f"orders: restored {orders - 2} rows, the previous drill restored {orders + 1}")
    assert f"backup {grown})" in message

    verified = run_cli(site, "records", "verify")
    assert (verified.returncode, verified.stdout) == (0, "drill record chain OK: 3 records\n")
    if shutil.which("npm") or (ALLURE_CACHE / "node_modules/.bin/allure").exists():
        html = site["dir"] / "html"
        rendered = run_cli(site, "report", "--results", str(site["dir"] / "allure"), "--output", str(html))
        assert (rendered.returncode, rendered.stdout) == (0, f"report: {html / 'index.html'}\n"), rendered.stderr
    oldest = sorted((site["dir"] / "reports" / "drills").glob("drill-*.json"))[0]
    oldest.write_text(oldest.read_text().replace(f'"orders": {orders}', f'"orders": {orders + 100}'))
    broken = run_cli(site, "records", "verify")
    assert (broken.returncode, broken.stderr) == (1, f"check failed: {oldest}: altered (its content no longer "
                                                     "matches its hash)\n")  # fmt: skip
