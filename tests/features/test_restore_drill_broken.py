"""The restore drill feature run as an operator runs it, against broken copies of the sandbox world.

Each case is one ``pytest features/test_restore_drill.py`` in a subprocess (:mod:`tests.features.drill_run`)
whose ``drill.toml`` describes a real target (``target.sandbox = false``): the world's moto endpoint with a
broken variant's buckets and the app's signing key in the environment. Only the scenarios that must catch the
breakage run; their failure messages are read from the JUnit report, so the operator-facing message itself is
what is tested. Afterwards no process or directory carrying the child's run id may be left.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from harness.backup.postgres import backup_postgres
from harness.deployment import Deployment
from harness.records import append_record, load_chain
from sandbox.breakage import (
    hash_mismatch,
    missing_rows,
    no_recent_inserts,
    redis_sample_differs,
    stale_newest,
    truncated_dump,
)
from sandbox.world import Mutation, VariantContext, World
from tests.features.drill_run import leftovers, run_drill
from tests.reliability.checks import TRACEBACK

pytestmark = pytest.mark.slow

UNHEALTHY = ["{python}", "-m", "uvicorn", "tests.broken_backends.unhealthy:create_app", "--factory",
             "--host", "127.0.0.1", "--port", "{port}"]  # fmt: skip


def no_audit_rows() -> Mutation:
    """Add a newest dump of a database whose audit table has no row in the 24 h before it."""

    def mutate(ctx: VariantContext) -> None:
        world, name = ctx.world, f"noaudit_{uuid.uuid4().hex[:8]}"
        server = world.production_pg
        with server.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                        sql.Identifier(world.database)))  # fmt: skip
        try:
            with server.connect(name) as conn:
                conn.execute(
                    "DELETE FROM config_change_history WHERE created_at > %s", [world.now - timedelta(hours=24)]
                )
            backup_postgres(server.dsn(name), ctx.client, ctx.bucket, world.config.storage.logical_prefix,
                            pg_dump=server.binaries.tool("pg_dump"), options=world.dump_options(),
                            taken_at=world.now, signer=world.manifest_signer)  # fmt: skip
        finally:
            server.drop_database(name)

    return mutate


def run_feature(tmp_path: Path, target: Deployment, select: str, **sections: dict[str, Any]) -> dict[str, str]:
    """Run the restore drill scenarios matching ``select`` against ``target``; each failed test's message."""
    done = run_drill(tmp_path, target, select, **sections)
    assert leftovers(done.run) == []
    return done.failures


RESTORE = "test_the_newest_logical_backup_restores_into_isolated_staging"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (
            truncated_dump(),
            # refused before the download: storage lists another size than the manifest's
            r"harness\.errors\.CheckFailed: s3://\S+/(postgres/logical/codeblack-\d{8}T\d{6}Z\.dump)\.manifest\.json: "
            r"storage lists (\1) at \d+ bytes but its manifest says \d+ bytes$",
        ),
        (
            hash_mismatch(),
            r"harness\.errors\.CheckFailed: postgres/logical/codeblack-\d{8}T\d{6}Z\.dump: sha256 "
            r"[0-9a-f]{64} differs from the manifest's [0-9a-f]{64}",
        ),
    ],
    ids=["truncated", "hash-mismatch"],
)
def test_a_dump_that_differs_from_its_manifest_is_refused(
    tmp_path: Path, sandbox_world: World, breakage: Mutation, expected: str
) -> None:
    failures = run_feature(tmp_path, sandbox_world.variant("refused", breakage), "isolated_staging")
    assert list(failures) == [RESTORE]
    assert re.match(expected, failures[RESTORE]), failures[RESTORE]


def test_a_dump_missing_rows_of_one_table_fails_the_row_counts(tmp_path: Path, sandbox_world: World) -> None:
    failures = run_feature(tmp_path, sandbox_world.variant("rows", missing_rows("orders", 7)), "row_counts")
    [message] = failures.values()
    assert " differ from its manifest: orders: restored " in message
    assert message.endswith(f"rows, manifest {int(message.split('restored ')[1].split()[0]) + 7}")


def test_no_inserts_and_no_audit_rows_in_the_last_24_hours_fail(tmp_path: Path, sandbox_world: World) -> None:
    stalled = run_feature(tmp_path / "stalled", sandbox_world.variant("stalled", no_recent_inserts()), "24_hours")
    assert "applications: no rows inserted (manifest 0)" in stalled["test_the_last_24_hours_of_inserts_are_present"]
    silent = run_feature(tmp_path / "silent", sandbox_world.variant("silent", no_audit_rows()), "24_hours")
    # The audit table is also a critical table: its missing inserts fail the inserts scenario, and its own
    # scenario fails on the audit records.
    message = silent["test_the_last_24_hours_of_inserts_are_present"]
    assert message.endswith("in postgres/logical/codeblack-" + message.split("codeblack-")[1].split(":")[0]
                            + ": config_change_history: no rows inserted (manifest 0)")  # fmt: skip
    assert re.fullmatch(
        r"harness\.errors\.CheckFailed: audit table config_change_history: 0 rows in the 24 h before "
        r"\S+; expected at least 1",
        silent["test_the_audit_records_of_the_last_24_hours_are_present"],
    )


def test_a_newest_dump_older_than_the_rpo_misses_it_and_the_verdict_is_no_go(
    tmp_path: Path, sandbox_world: World
) -> None:
    done = run_drill(tmp_path, sandbox_world.variant("stale", stale_newest(hours=13)), "recovery_time or cutover")
    # A missed objective is the operator's everyday NO-GO: it reads as the measure's line, not pytest's traceback.
    assert not TRACEBACK.search(done.output), done.output[-3000:]
    assert leftovers(done.run) == []
    failures = done.failures
    assert sorted(failures) == ["test_cutover_to_production_is_decided_only_after_staging_verification",
                                "test_recovery_time_and_data_loss_are_measured_against_the_objectives"]  # fmt: skip
    assert "RPO 1" in failures["test_recovery_time_and_data_loss_are_measured_against_the_objectives"]
    assert "(objective 6 h, MISSED)" in failures["test_recovery_time_and_data_loss_are_measured_against_the_objectives"]
    assert "NO-GO: " in failures["test_cutover_to_production_is_decided_only_after_staging_verification"]


def test_an_app_that_never_becomes_healthy_fails_naming_the_down_component(
    tmp_path: Path, sandbox_world: World
) -> None:
    # The default startup deadline (30 s): the down component is named only once the app answers, and uvicorn's
    # start alone took 4-8 s on a busy 2-core machine (a shorter deadline failed "never answered" instead).
    failures = run_feature(tmp_path, sandbox_world.deployment, "deep_health", app={"command": UNHEALTHY})
    [message] = failures.values()
    assert "not healthy within 30 s (down: database: OperationalError: connection refused (broken backend))" in message


def test_a_missing_uploads_bucket_is_reported_down_by_deep_health(tmp_path: Path, sandbox_world: World) -> None:
    target = sandbox_world.deployment
    missing = target.config.with_changes(storage={"uploads_bucket": "codeblack-uploads-missing"})
    failures = run_feature(tmp_path, Deployment(**{**target.__dict__, "config": missing}), "deep_health")
    [message] = failures.values()
    assert "(down: object_storage: " in message


def test_a_previous_restore_drill_older_than_a_month_fails_the_cadence_scenario(
    tmp_path: Path, sandbox_world: World
) -> None:
    first = run_drill(tmp_path / "first", sandbox_world.deployment, "run_every_month")
    assert first.failures == {}, first.output[-3000:]
    (record,) = load_chain(first.reports / "drills")  # a drill whose only scenario is the cadence still counts
    old = record.model_copy(update={"run_id": "old0drill", "finished_at": record.finished_at - timedelta(days=45),
                                    "hash": "", "previous_hash": "", "signature": None})  # fmt: skip
    append_record(tmp_path / "late" / "reports" / "drills", old)
    failures = run_feature(tmp_path / "late", sandbox_world.deployment, "run_every_month")
    (message,) = failures.values()
    assert re.fullmatch(
        rf"harness\.errors\.CheckFailed: \S+/late/reports/drills: the previous restore drill of {record.target} "
        r"\(old0drill, finished \d{4}-\d\d-\d\d\) was 4[56] days before this one, more than the 31 days allowed "
        r"\(objectives\.drill_interval_days\): run the restore drill every month",
        message,
    ), message


def test_a_small_dump_of_a_two_terabyte_production_misses_the_projected_rto(
    tmp_path: Path, sandbox_world: World
) -> None:
    done = run_drill(tmp_path, sandbox_world.deployment, "recovery_time or cutover",
                     database={"production_size_gb": 2048})  # fmt: skip
    assert leftovers(done.run) == []
    measured = "test_recovery_time_and_data_loss_are_measured_against_the_objectives"
    assert sorted(done.failures) == ["test_cutover_to_production_is_decided_only_after_staging_verification", measured]
    # The drill's own RTO was met; the projection to production's size is what fails, with its basis.
    message = done.failures[measured]
    assert re.search(r"RTO projected [\d.]+ min \(objective 60 min, MISSED\)", message), message
    assert "production 2 TB ([database] production_size_gb) / restored " in message
    (record,) = load_chain(done.reports / "drills")
    assert record.verdict.decision == "NO-GO"
    assert next(m for m in record.measures if m.name == "RTO").met
    assert any(reason.startswith("RTO projected ") for reason in record.verdict.reasons)


REDIS = "test_the_newest_redis_copy_restores_with_its_keys_their_types_and_sampled_values"


def test_a_redis_copy_whose_sampled_key_changed_type_fails_naming_the_key(tmp_path: Path, sandbox_world: World) -> None:
    """The manifest is signed by the world's key (as a faulty backup host would): only the sample catches it."""
    broken = sandbox_world.variant("redis type", redis_sample_differs("codeblack:config:cache", type="set"))
    done = run_drill(tmp_path, broken, "redis_copy")
    assert leftovers(done.run) == []
    assert list(done.failures) == [REDIS]
    assert re.fullmatch(
        r"harness\.errors\.CheckFailed: redis/rdb/codeblack-\d{8}T\d{6}Z\.rdb: key 'codeblack:config:cache' is a "
        r"set in the copy's manifest but a hash after restore",
        done.failures[REDIS],
    ), done.failures[REDIS]
    (record,) = done.records()
    compared = record["environment"]["redis.keys"]
    basis = r"(\d+) of (\d+) sampled keys matched type, size and value digest; keys per type compared "
    counted = re.fullmatch(basis + r"\(exactly without an expiry, at most the copy's with one\)", compared)
    assert counted is not None, compared
    assert int(counted.group(1)) == int(counted.group(2)) - 1
