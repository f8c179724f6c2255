"""The sandbox world: its timeline, its buckets and its manifests match what production would hold."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from datetime import timedelta

import pytest

from harness.storage.manifest import parse_manifest, parse_timestamp
from sandbox.world import World, list_keys


@pytest.fixture(scope="module")
def keys(sandbox_world: World) -> list[str]:
    return list(list_keys(sandbox_world.s3.client(), sandbox_world.config.storage.backup_bucket))


def test_world_builds_within_its_budget(sandbox_world: World) -> None:
    assert sandbox_world.build_seconds < 40, f"world took {sandbox_world.build_seconds:.1f} s"


def test_dumps_every_six_hours_for_fourteen_days(sandbox_world: World, keys: list[str]) -> None:
    times = sorted(t for k in keys if k.endswith(".dump") and (t := parse_timestamp(k)) is not None)
    assert len(times) == 56
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(hours=6)}
    assert timedelta(0) <= sandbox_world.now - times[-1] <= timedelta(hours=6)
    assert all(k + ".manifest.json" in keys for k in keys if k.endswith(".dump"))


def test_base_backups_seven_daily_four_weekly(keys: list[str]) -> None:
    folders = Counter(k.split("/")[2] for k in keys if k.endswith("/base.tar.gz"))
    assert folders == {"daily": 7, "weekly": 4}
    weekly = [parse_timestamp(k) for k in keys if k.startswith("postgres/base/weekly/") and k.endswith("base.tar.gz")]
    assert all(t is not None and t.weekday() == 6 for t in weekly)
    for archive in (k for k in keys if k.endswith("/base.tar.gz")):
        folder = archive.rsplit("/", 1)[0]
        assert {f"{folder}/pg_wal.tar.gz", f"{folder}/backup_manifest", f"{archive}.manifest.json"} <= set(keys)


def test_one_redis_copy_per_day(sandbox_world: World, keys: list[str]) -> None:
    days = sorted(t.date() for k in keys if k.endswith(".rdb") and (t := parse_timestamp(k)) is not None)
    assert len(days) == len(set(days)) == sandbox_world.config.objectives.retention_days
    assert days[-1] == sandbox_world.now.date()


def test_newest_manifest_counts_equal_the_rows_of_its_time(sandbox_world: World, keys: list[str]) -> None:
    client = sandbox_world.s3.client()
    bucket = sandbox_world.config.storage.backup_bucket
    newest = max(k for k in keys if k.endswith(".dump"))
    manifest = parse_manifest(
        client.get_object(Bucket=bucket, Key=newest + ".manifest.json")["Body"].read(), where=newest
    )
    body = client.get_object(Bucket=bucket, Key=newest)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest.sha256
    assert len(body) == manifest.size
    assert body[:5] == b"PGDMP"
    with sandbox_world.production_pg.connect(sandbox_world.database) as conn:
        for table, stats in manifest.tables.items():
            row = conn.execute(f"SELECT count(*) FROM {table} WHERE created_at <= %s", (manifest.taken_at,)).fetchone()
            assert row is not None
            assert row[0] == stats.rows, table
            assert stats.rows_last_24h > 0, table
    assert manifest.heartbeat is not None
    assert manifest.heartbeat <= manifest.taken_at


def test_uploads_bucket_versioned_with_noncurrent_rule(sandbox_world: World) -> None:
    client = sandbox_world.s3.client()
    uploads = sandbox_world.config.storage.uploads_bucket
    assert client.get_bucket_versioning(Bucket=uploads)["Status"] == "Enabled"
    assert client.get_bucket_versioning(Bucket=sandbox_world.config.storage.backup_bucket)["Status"] == "Enabled"
    rules = client.get_bucket_lifecycle_configuration(Bucket=uploads)["Rules"]
    assert rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    versions = client.list_object_versions(Bucket=uploads)
    assert len(versions.get("DeleteMarkers", [])) == 1
    assert sum(not v["IsLatest"] for v in versions["Versions"]) >= 1


def test_deployment_reports_the_simulated_database_host(sandbox_world: World) -> None:
    deployment = sandbox_world.deployment
    assert deployment.database_host != deployment.storage.host
    assert deployment.verify_key
    assert deployment.redis_url
    assert sandbox_world.signing_seed.get_secret_value() not in json.dumps(deployment.config.model_dump(mode="json"))
