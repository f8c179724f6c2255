"""Hostile storage against the drill as an operator runs it: ``pytest features/...`` in a child process.

Each run fails the scenario that met the attack with one line naming the object and the rule, leaves nothing
behind, and its drill record says whether the manifests it read were authenticated.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.breakage import missing_rows
from sandbox.world import VariantContext, World
from tests.features.drill_run import run_drill
from tests.reliability.checks import assert_fails_in_one_line, assert_recorded
from tests.reliability.faulty_s3 import faulty_s3
from tests.security.test_hostile_bucket import KEY_ID, PREFIX, _dumps, _unsigned

pytestmark = pytest.mark.slow

RESTORE = "test_the_newest_logical_backup_restores_into_isolated_staging"
ROWS = "test_row_counts_of_the_critical_tables_match_the_backups_manifest"
DUMP = r"postgres/logical/codeblack-\d{8}T\d{6}Z\.dump"


def test_a_future_dated_dump_fails_the_age_check_naming_it(tmp_path: Path, sandbox_world: World) -> None:
    def from_2099(ctx: VariantContext) -> None:
        ctx.client.copy_object(Bucket=ctx.bucket, Key=f"{PREFIX}codeblack-20991231T000000Z.dump",
                               CopySource={"Bucket": ctx.bucket, "Key": _dumps(ctx)[-1].key})  # fmt: skip

    broken = sandbox_world.variant("future", from_2099)
    done = run_drill(tmp_path, broken, "dumped", feature="features/test_backup_policy.py")
    assert_fails_in_one_line(
        done,
        "test_postgresql_is_dumped_with_pg_dump_at_least_every_6_hours",
        rf"CheckFailed: s3://{broken.backup_bucket}/{PREFIX}: '{PREFIX}codeblack-20991231T000000Z\.dump' is dated "
        r"2099-12-31 00:00:00 UTC, [\d,]+\.\d h in the future, beyond storage\.max_clock_skew_s = 300 s; ",
    )


def test_an_unsigned_manifest_fails_the_restore_naming_it(tmp_path: Path, sandbox_world: World) -> None:
    broken = sandbox_world.variant("unsigned", _unsigned)
    done = run_drill(tmp_path, broken, "isolated_staging")
    assert_fails_in_one_line(
        done,
        RESTORE,
        rf"CheckFailed: s3://{broken.backup_bucket}/{DUMP}\.manifest\.json: unsigned manifest; "
        rf"\[storage\] manifest_verify_key requires a signature by key {KEY_ID}$",
    )
    record = assert_recorded(done, RESTORE, "unsigned manifest", set())
    assert record["manifests_authenticated"] is False


def test_a_trickling_storage_endpoint_fails_the_download_within_its_limits(
    tmp_path: Path, sandbox_world: World
) -> None:
    with faulty_s3(sandbox_world.s3.endpoint.url or "", failures=0, trickle=".dump", trickle_every_s=0.5) as proxy:
        done = run_drill(tmp_path, sandbox_world.deployment, "isolated_staging", timeout=240,
                         storage={"endpoint_url": proxy.url, "download_deadline_s": 60,
                                  "download_min_bytes_per_s": 1024, "download_rate_window_s": 2})  # fmt: skip
    assert_fails_in_one_line(
        done,
        RESTORE,
        # The ranged read of the dump's header comes first; it is held to the same limits as the download.
        rf"HarnessError: s3://{sandbox_world.deployment.backup_bucket}/{DUMP}: (header|download): too slow: \d+ bytes "
        r"in the "
        r"last \d+ s \(\d+ B/s\), under storage\.download_min_bytes_per_s = 1024 over "
        r"storage\.download_rate_window_s = 2 s; \d+ of \d+ bytes received$",
    )
    assert_recorded(done, RESTORE, "too slow", {"download"})


def test_rows_lost_before_a_consistent_signed_manifest_fail_against_the_previous_drill(
    tmp_path: Path, sandbox_world: World
) -> None:
    before = run_drill(tmp_path, sandbox_world.variant("shrink"), "row_counts")
    assert before.returncode == 0, before.output[-3000:]
    [first] = before.records()
    assert first["manifests_authenticated"] is True
    assert first["environment"]["manifests"].startswith("authenticated: every manifest read was signed by Ed25519 key")

    shrunk = sandbox_world.variant("shrink", missing_rows("orders", 500, recounted=True))
    done = run_drill(tmp_path, shrunk, "row_counts", storage={"manifest_verify_key": ""})
    assert_fails_in_one_line(
        done,
        ROWS,
        r"CheckFailed: row counts shrank by more than \[database\] max_shrink_fraction = 0\.1: orders: restored "
        r"(\d+) rows, \d+\.\d% fewer than the (\d+) of the previous drill's restored rows "
        rf"\(run {before.run} of \d{{4}}-\d\d-\d\d \d\d:\d\d UTC, backup {DUMP}\)$",
    )
    second = done.records()[-1]
    assert 400 < first["restored_rows"]["orders"] - second["restored_rows"]["orders"] <= 500  # less what came since
    assert second["manifests_authenticated"] is False
    assert second["environment"]["manifests"].startswith("NOT authenticated: [storage] manifest_verify_key is not set")
