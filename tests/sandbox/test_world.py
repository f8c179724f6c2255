"""The sandbox world: its timeline, its buckets and its manifests match what production would hold."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections import Counter
from datetime import timedelta

import pytest
import redis

from harness.backup.prune import prune
from harness.policy.snapshots import verify_base_backup
from harness.storage.catalogue import list_backups
from harness.storage.manifest import BackupManifest, parse_manifest, parse_timestamp
from sandbox import breakage
from sandbox.world import World, list_keys


@pytest.fixture(scope="module")
def keys(sandbox_world: World) -> list[str]:
    return list(list_keys(sandbox_world.s3.client(), sandbox_world.config.storage.backup_bucket))


def test_dumps_every_six_hours_for_fourteen_days(sandbox_world: World, keys: list[str]) -> None:
    times = sorted(t for k in keys if k.endswith(".dump") and (t := parse_timestamp(k)) is not None)
    assert len(times) == 56
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(hours=6)}
    assert sandbox_world.now - times[-1] == timedelta(hours=3)  # half an interval, whatever the wall clock
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
    newest = max(t for k in keys if k.endswith(".rdb") and (t := parse_timestamp(k)) is not None)
    assert timedelta(0) < sandbox_world.now - newest < timedelta(days=1)


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


# --- variants: each mutation changes exactly what it says ---------------------------------------------------


def _listing(world: World, bucket: str) -> dict[str, str]:
    client = world.s3.client()
    return {
        item["Key"]: item["ETag"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    }


def _manifest(world: World, bucket: str, key: str) -> BackupManifest:
    raw = world.s3.client().get_object(Bucket=bucket, Key=key + ".manifest.json")["Body"].read()
    return parse_manifest(raw, where=key)


def test_plain_variant_is_an_identical_copy(sandbox_world: World) -> None:
    started = time.monotonic()
    copy = sandbox_world.variant("copy")
    assert time.monotonic() - started < 15  # ~1 s idle; the bound only catches a hang on a shared machine
    assert copy.backup_bucket != sandbox_world.deployment.backup_bucket
    assert _listing(sandbox_world, copy.backup_bucket) == _listing(
        sandbox_world, sandbox_world.deployment.backup_bucket
    )
    client = sandbox_world.s3.client()
    assert client.get_bucket_versioning(Bucket=copy.uploads_bucket)["Status"] == "Enabled"


def test_stale_newest_removes_only_recent_dumps(sandbox_world: World, keys: list[str]) -> None:
    broken = sandbox_world.variant("stale", breakage.stale_newest(hours=13))
    after = _listing(sandbox_world, broken.backup_bucket)
    gone = set(keys) - set(after)
    cutoff = sandbox_world.now - timedelta(hours=13)
    assert gone
    assert all(k.startswith("postgres/logical/") and (parse_timestamp(k) or cutoff) > cutoff for k in gone)
    newest = max(t for k in after if k.endswith(".dump") and (t := parse_timestamp(k)))
    assert sandbox_world.now - newest >= timedelta(hours=13)


def test_gap_leaves_a_hole_of_the_asked_size(sandbox_world: World) -> None:
    broken = sandbox_world.variant("gap", breakage.gap(hours=24))
    times = sorted(t for k in _listing(sandbox_world, broken.backup_bucket) if k.endswith(".dump")
                   and (t := parse_timestamp(k)))  # fmt: skip
    steps = Counter(b - a for a, b in itertools.pairwise(times))
    assert steps == {timedelta(hours=6): 56 - 3 - 2, timedelta(hours=24): 1}


def test_hash_mismatch_and_truncation_touch_only_the_newest_dump(sandbox_world: World, keys: list[str]) -> None:
    newest = max(k for k in keys if k.endswith(".dump"))
    source = sandbox_world.deployment.backup_bucket
    original = _manifest(sandbox_world, source, newest)
    hashed = sandbox_world.variant("hash", breakage.hash_mismatch())
    assert _manifest(sandbox_world, hashed.backup_bucket, newest).sha256 != original.sha256
    cut = sandbox_world.variant("cut", breakage.truncated_dump())
    size = sandbox_world.s3.client().head_object(Bucket=cut.backup_bucket, Key=newest)["ContentLength"]
    assert size == original.size // 2
    assert _manifest(sandbox_world, cut.backup_bucket, newest) == original


def test_missing_rows_dump_has_fewer_rows_than_its_manifest(sandbox_world: World) -> None:
    broken = sandbox_world.variant("rows", breakage.missing_rows("orders", 5))
    listing = _listing(sandbox_world, broken.backup_bucket)
    newest = max(k for k in listing if k.endswith(".dump"))
    manifest = _manifest(sandbox_world, broken.backup_bucket, newest)
    body = sandbox_world.s3.client().get_object(Bucket=broken.backup_bucket, Key=newest)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest.sha256
    with sandbox_world.production_pg.connect(sandbox_world.database) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    assert manifest.tables["orders"].rows == row[0]  # the manifest carries production's full count


def test_uploads_mutations(sandbox_world: World) -> None:
    client = sandbox_world.s3.client()
    suspended = sandbox_world.variant("suspended", breakage.versioning_suspended())
    assert client.get_bucket_versioning(Bucket=suspended.uploads_bucket)["Status"] == "Suspended"
    short = sandbox_world.variant("short", breakage.short_noncurrent_rule(days=7))
    rules = client.get_bucket_lifecycle_configuration(Bucket=short.uploads_bucket)["Rules"]
    assert rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7


def test_snapshot_and_redis_day_removed(sandbox_world: World, keys: list[str]) -> None:
    day_before_newest = sorted(sandbox_world.timeline.days)[-2]
    broken = sandbox_world.variant("days", breakage.missing_snapshot_day(1), breakage.no_redis_copy_yesterday())
    gone = set(keys) - set(_listing(sandbox_world, broken.backup_bucket))
    assert {parse_timestamp(k) for k in gone} == {day_before_newest}
    assert {k.split("/")[0] + "/" + k.split("/")[2] if k.startswith("postgres") else "redis" for k in gone} == {
        "postgres/daily", "redis"}  # fmt: skip
    assert len(gone) == 4 + 2


def test_prune_keeps_the_world_and_removes_what_expired(sandbox_world: World) -> None:
    config = sandbox_world.config
    client = sandbox_world.s3.client()
    assert prune(client, config.storage.backup_bucket, config, now=sandbox_world.now, dry_run=True) == []
    broken = sandbox_world.variant("expired", breakage.expired_kept(days=20))
    before = _listing(sandbox_world, broken.backup_bucket)
    would = prune(client, broken.backup_bucket, config, now=sandbox_world.now, dry_run=True)
    assert len(would) == 2
    assert would[0].endswith(".dump")
    assert would[1] == would[0] + ".manifest.json"
    assert _listing(sandbox_world, broken.backup_bucket) == before
    assert prune(client, broken.backup_bucket, config, now=sandbox_world.now) == would
    assert set(before) - set(_listing(sandbox_world, broken.backup_bucket)) == set(would)


def test_newest_base_backup_is_pg_verifybackup_clean(sandbox_world: World) -> None:
    storage = sandbox_world.config.storage
    client = sandbox_world.s3.client()
    catalogues = [list_backups(client, storage.backup_bucket, prefix, suffix="base.tar.gz")
                  for prefix in (storage.base_daily_prefix, storage.base_weekly_prefix)]  # fmt: skip
    evidence = verify_base_backup(client, catalogues, sandbox_world.production_pg.binaries.tool("pg_verifybackup"))
    assert evidence.subject.startswith(storage.base_daily_prefix)


def test_prune_never_removes_the_newest_backup_of_a_kind(sandbox_world: World, keys: list[str]) -> None:
    config = sandbox_world.config
    later = sandbox_world.now + timedelta(days=60)  # every dump and Redis copy has expired by then
    would = prune(sandbox_world.s3.client(), config.storage.backup_bucket, config, now=later, dry_run=True)
    kept = set(keys) - set(would)
    assert max(k for k in keys if k.endswith(".dump")) in kept
    assert max(k for k in keys if k.endswith(".rdb")) in kept
    assert sum(k.endswith(".dump") for k in kept) == sum(k.endswith(".rdb") for k in kept) == 1
    assert all(k.startswith(("postgres/logical/", "redis/rdb/")) for k in would)


def test_redis_variant_runs_with_other_settings_and_the_same_keys(sandbox_world: World) -> None:
    broken = sandbox_world.redis_variant("no aof", appendonly="no")
    assert broken.redis_url != sandbox_world.deployment.redis_url
    assert broken.backup_bucket == sandbox_world.deployment.backup_bucket
    with redis.Redis.from_url(broken.redis_url or "") as copy, sandbox_world.production_redis.client() as live:
        assert copy.config_get("appendonly") == {"appendonly": "no"}
        assert live.config_get("appendonly") == {"appendonly": "yes"}
        assert copy.dbsize() == live.dbsize() > 0
        assert copy.get("codeblack:heartbeat") == live.get("codeblack:heartbeat")


def _newest_dump(world: World, bucket: str) -> tuple[str, BackupManifest]:
    key = max(k for k in _listing(world, bucket) if k.endswith(".dump"))
    return key, _manifest(world, bucket, key)


def test_uncompressed_dump_is_plain_sql_with_its_manifest(sandbox_world: World) -> None:
    broken = sandbox_world.variant("plain", breakage.uncompressed_dump())
    key, manifest = _newest_dump(sandbox_world, broken.backup_bucket)
    body = sandbox_world.s3.client().get_object(Bucket=broken.backup_bucket, Key=key)["Body"].read()
    assert (manifest.format, manifest.compression) == ("plain", "none")
    assert body.startswith(b"--\n-- PostgreSQL database dump")
    assert hashlib.sha256(body).hexdigest() == manifest.sha256


def test_no_recent_inserts_dump_has_none_in_its_last_day(sandbox_world: World) -> None:
    broken = sandbox_world.variant("stalled", breakage.no_recent_inserts())
    _, manifest = _newest_dump(sandbox_world, broken.backup_bucket)
    assert manifest.taken_at == sandbox_world.now
    assert {t: s.rows_last_24h for t, s in manifest.tables.items()} == dict.fromkeys(manifest.tables, 0)
    assert all(s.rows > 0 for s in manifest.tables.values())
    assert manifest.heartbeat is not None
    assert manifest.heartbeat <= sandbox_world.now - timedelta(hours=24)
