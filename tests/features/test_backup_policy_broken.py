"""The backup policy feature run as an operator runs it, against broken copies of the sandbox world's storage.

Each case is one ``pytest features/test_backup_policy.py`` in a subprocess whose ``drill.toml`` describes a
real target (``target.sandbox = false``): the world's moto endpoint with a broken variant's buckets, the
world's live Redis, credentials in the environment variables the file names. Only the scenarios that must
catch the breakage run, and their failure messages are read from the JUnit report, so the operator-facing
message itself is what is tested. Several breakages share one variant and one subprocess (they are slow).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.deployment import Deployment
from sandbox.breakage import (
    hash_mismatch,
    missing_snapshot_day,
    no_redis_copy_yesterday,
    short_noncurrent_rule,
    stale_newest,
    uncompressed_dump,
    versioning_suspended,
)
from sandbox.world import World
from tests.features.drill_run import run_drill
from tests.ports import closed_port

pytestmark = pytest.mark.slow

REDIS_ENV = "DRILL_TEST_REDIS_URL"


def _feature_failures(tmp_path: Path, target: Deployment, endpoint_url: str, select: str) -> dict[str, str]:
    """Run the scenarios matching ``select`` against ``target`` at ``endpoint_url``; each failed test's message."""
    return run_drill(tmp_path, target, select, feature="features/test_backup_policy.py",
                     env={REDIS_ENV: target.redis_url or ""}, storage={"endpoint_url": endpoint_url},
                     redis={"url_env": REDIS_ENV}).failures  # fmt: skip


def test_stale_dumps_a_tampered_manifest_and_suspended_versioning_fail_the_feature(
    tmp_path: Path, sandbox_world: World
) -> None:
    broken = sandbox_world.variant("policy", stale_newest(hours=13), hash_mismatch(), versioning_suspended())
    failures = _feature_failures(tmp_path, broken, broken.storage.url or "", "dumped or Compressed or Uploaded")
    assert sorted(failures) == [
        "test_compressed_logical_dumps_are_kept_for_14_days",
        "test_postgresql_is_dumped_with_pg_dump_at_least_every_6_hours",
        "test_uploaded_proofs_and_images_keep_deleted_objects_for_at_least_30_days",
    ]
    assert failures["test_postgresql_is_dumped_with_pg_dump_at_least_every_6_hours"].startswith(
        "harness.errors.CheckFailed: newest logical backup postgres/logical/codeblack-"
    )
    assert (
        "h old, more than the 6 h allowed (objectives.dump_interval_hours)"
        in failures["test_postgresql_is_dumped_with_pg_dump_at_least_every_6_hours"]
    )
    assert "but its manifest says" in failures["test_compressed_logical_dumps_are_kept_for_14_days"]
    assert failures["test_uploaded_proofs_and_images_keep_deleted_objects_for_at_least_30_days"] == (
        f"harness.errors.CheckFailed: bucket {broken.uploads_bucket}: versioning is Suspended; the plan requires "
        "Enabled so deleted objects can be recovered"
    )


def test_a_missing_snapshot_and_copy_a_plain_dump_and_a_7_day_rule_fail_the_feature(
    tmp_path: Path, sandbox_world: World
) -> None:
    broken = sandbox_world.variant(
        "gaps", missing_snapshot_day(2), no_redis_copy_yesterday(), uncompressed_dump(), short_noncurrent_rule(7)
    )
    failures = _feature_failures(
        tmp_path, broken, broken.storage.url or "", "snapshot or copied or Compressed or Uploaded"
    )
    snapshots = failures.pop("test_a_daily_full_snapshot_is_taken_and_7_daily_and_4_weekly_snapshots_are_kept")
    assert "48.0 h between daily base backup postgres/base/daily/" in snapshots
    assert "more than the 30 h allowed (objectives.daily_snapshots = 7)" in snapshots
    copies = failures.pop("test_redis_backup_files_are_copied_offserver_daily")
    assert "48.0 h between Redis RDB copy redis/rdb/codeblack-" in copies
    dumps = failures.pop("test_compressed_logical_dumps_are_kept_for_14_days")
    assert "is not compressed: it has no PGDMP, gzip, zstd or lz4 signature" in dumps
    uploads = failures.pop("test_uploaded_proofs_and_images_keep_deleted_objects_for_at_least_30_days")
    assert "expires noncurrent versions after 7 days, sooner than the 30 days deleted objects must be kept" in uploads
    assert failures == {}


def test_unreachable_storage_fails_in_one_line(tmp_path: Path, sandbox_world: World) -> None:
    with closed_port() as port:  # held through the drill: no server it starts meanwhile can take the port
        url = f"http://127.0.0.1:{port}"
        failures = _feature_failures(tmp_path, sandbox_world.deployment, url, "dumped")
    assert list(failures.values()) == [
        f"harness.errors.HarnessError: s3://{sandbox_world.deployment.backup_bucket}/postgres/logical/: cannot reach "
        f"object storage at {url} (connection refused or no route); check storage.endpoint_url in drill.toml"
    ]
