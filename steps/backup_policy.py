"""Steps of the backup policy: the stated number checked against drill.toml, one policy check, its evidence.

Each Then passes the number its sentence states to :func:`harness.policy.target.stated_objective`, which
fails the scenario with a configuration error if ``drill.toml`` says otherwise; the check itself then reads
the objective from the configuration.
"""

from __future__ import annotations

import pytest
from parse import with_pattern
from pytest_bdd import given, parsers, then

from harness.deployment import Deployment
from harness.policy.buckets import check_canary_recovery, check_noncurrent_retention, check_versioning
from harness.policy.contents import check_compressed, check_manifests, check_off_server
from harness.policy.evidence import Evidence
from harness.policy.logical import WHAT, check_dump_gaps, check_dump_retention, check_newest_dump
from harness.policy.redis_persistence import (
    RedisPersistence,
    check_aof,
    check_rdb_snapshots,
    check_redis_copies,
    read_persistence,
    verify_rdb_copy,
)
from harness.policy.snapshots import (
    check_daily_snapshots,
    check_snapshots_kept,
    check_weekly_snapshots,
    verify_base_backup,
)
from harness.policy.target import catalogue_of, stated_objective
from harness.services.provider import Provider
from harness.services.redis import find_redis_check_rdb
from harness.storage.catalogue import Catalogue

from .evidence import attach_json, attach_table


@with_pattern(r"uploads|backup")
def _bucket_role(text: str) -> str:
    return text


BUCKET = {"Bucket": _bucket_role}


def _attach(*evidence: Evidence) -> None:
    for item in evidence:
        attach_json(item.rule, item.as_dict())


def _bucket(deployment: Deployment, role: str) -> str:
    return deployment.uploads_bucket if role == "uploads" else deployment.backup_bucket


def _timeline(name: str, catalogue: Catalogue) -> Catalogue:
    rows = [[row["key"], row["taken_at"], row["size"], row["manifest"]] for row in catalogue.timeline()]
    attach_table(f"{name} ({catalogue.location})", ["key", "taken_at", "size", "manifest"], rows)
    return catalogue


@given("the logical backups in the deployment's object storage", target_fixture="logical_backups")
def _logical_backups(deployment: Deployment, drill_database: str) -> Catalogue:
    return _timeline("logical backups", catalogue_of(deployment, "logical", drill_database))


@then(parsers.parse("the newest logical backup is at most {hours:g} hours old"))
def _newest_dump(deployment: Deployment, logical_backups: Catalogue, hours: float) -> None:
    stated_objective(deployment, "dump_interval_hours", hours)
    _attach(check_newest_dump(logical_backups, deployment.config.objectives))


@then(parsers.parse("no two consecutive logical backups of the last {days:d} days are more than {hours:g} hours apart"))
def _dump_gaps(deployment: Deployment, logical_backups: Catalogue, days: int, hours: float) -> None:
    stated_objective(deployment, "retention_days", days)
    stated_objective(deployment, "dump_interval_hours", hours)
    _attach(check_dump_gaps(logical_backups, deployment.config.objectives))


@then(
    parsers.parse(
        "the logical backups cover the last {days:d} days and none older than {kept:d} days plus the retention "
        "grace is kept"
    )
)
def _dump_retention(deployment: Deployment, logical_backups: Catalogue, days: int, kept: int) -> None:
    stated_objective(deployment, "retention_days", days)
    stated_objective(deployment, "retention_days", kept)
    _attach(*check_dump_retention(logical_backups, deployment.config.objectives))


@then("every logical backup is compressed, as its own header bytes declare")
def _dumps_compressed(deployment: Deployment, logical_backups: Catalogue) -> None:
    _attach(check_compressed(deployment.storage.client(), logical_backups, WHAT))


@then("every logical backup has a manifest whose sha256 and size match the object")
def _dump_manifests(deployment: Deployment, logical_backups: Catalogue) -> None:
    _attach(check_manifests(deployment.storage.client(), logical_backups, WHAT, trust=deployment.manifest_trust()))


@then("the backup storage endpoint is a different host from the database server")
def _off_server(deployment: Deployment) -> None:
    _attach(check_off_server(deployment.storage.host, deployment.database_host, "backup storage",
                             "storage.database_host"))  # fmt: skip


@given("the daily and weekly base backups in the deployment's object storage", target_fixture="base_backups")
def _base_backups(deployment: Deployment) -> tuple[Catalogue, Catalogue]:
    daily, weekly = catalogue_of(deployment, "daily"), catalogue_of(deployment, "weekly")
    return _timeline("daily base backups", daily), _timeline("weekly base backups", weekly)


@then(parsers.parse("a daily base backup exists for each of the last {days:d} days"))
def _daily(deployment: Deployment, base_backups: tuple[Catalogue, Catalogue], days: int) -> None:
    stated_objective(deployment, "daily_snapshots", days)
    _attach(check_daily_snapshots(base_backups[0], deployment.config.objectives))


@then(parsers.parse("a weekly base backup exists for each of the last {weeks:d} weeks"))
def _weekly(deployment: Deployment, base_backups: tuple[Catalogue, Catalogue], weeks: int) -> None:
    stated_objective(deployment, "weekly_snapshots", weeks)
    _attach(check_weekly_snapshots(base_backups[1], deployment.config.objectives))


@then(parsers.parse("no more than {daily:d} daily and {weekly:d} weekly base backups are kept"))
def _kept(deployment: Deployment, base_backups: tuple[Catalogue, Catalogue], daily: int, weekly: int) -> None:
    stated_objective(deployment, "daily_snapshots", daily)
    stated_objective(deployment, "weekly_snapshots", weekly)
    _attach(*check_snapshots_kept(*base_backups, deployment.config.objectives))


@then("the newest base backup passes pg_verifybackup against its backup manifest and WAL")
def _verified(deployment: Deployment, base_backups: tuple[Catalogue, Catalogue], provider: Provider) -> None:
    assert provider.binaries is not None, "pg_verifybackup needs local PostgreSQL binaries"
    tool = provider.binaries.tool("pg_verifybackup")
    _attach(verify_base_backup(deployment.storage.client(), base_backups, tool, trust=deployment.manifest_trust()))


@given("the persistence settings and status of the live Redis", target_fixture="redis_persistence")
def _redis_persistence(deployment: Deployment) -> RedisPersistence:
    state = read_persistence(deployment.redis_url)
    attach_json(f"Redis {state.server} persistence", state.as_dict())
    return state


@then(parsers.parse("Redis has RDB save rules and its last background save succeeded at most {hours:g} hours ago"))
def _rdb(deployment: Deployment, redis_persistence: RedisPersistence, hours: float) -> None:
    max_age = stated_objective(deployment, "max_rdb_save_age_hours", hours)
    _attach(check_rdb_snapshots(redis_persistence, max_age))


@then("Redis has appendonly yes and its last append-only file write succeeded")
def _aof(redis_persistence: RedisPersistence) -> None:
    _attach(check_aof(redis_persistence))


@given("the Redis RDB copies in the deployment's object storage", target_fixture="redis_copies")
def _redis_copies(deployment: Deployment) -> Catalogue:
    return _timeline("Redis RDB copies", catalogue_of(deployment, "redis"))


@then(parsers.parse("a Redis RDB copy exists for each of the last {days:d} days"))
def _copies(deployment: Deployment, redis_copies: Catalogue, days: int) -> None:
    stated_objective(deployment, "redis_copy_days", days)
    _attach(check_redis_copies(redis_copies, deployment.config.objectives))


@then("the newest Redis RDB copy passes redis-check-rdb")
def _rdb_intact(deployment: Deployment, redis_copies: Catalogue) -> None:
    tool = find_redis_check_rdb(deployment.config.services.redis_server)
    _attach(verify_rdb_copy(deployment.storage.client(), redis_copies, tool, trust=deployment.manifest_trust()))


@then(parsers.parse("the {role:Bucket} bucket has versioning Enabled", extra_types=BUCKET))
def _versioning(deployment: Deployment, role: str) -> None:
    _attach(check_versioning(deployment.storage.client(), _bucket(deployment, role)))


@then(
    parsers.parse(
        "a lifecycle rule of the {role:Bucket} bucket keeps noncurrent versions {days:d} days and no rule expires "
        "them sooner",
        extra_types=BUCKET,
    )
)
def _rule_keeps(deployment: Deployment, role: str, days: int) -> None:
    stated_objective(deployment, "noncurrent_days", days)
    bucket = _bucket(deployment, role)
    _attach(check_noncurrent_retention(deployment.storage.client(), bucket, days, require_rule=True))


@then(
    parsers.parse(
        "no lifecycle rule of the {role:Bucket} bucket expires noncurrent versions sooner than {days:d} days",
        extra_types=BUCKET,
    )
)
def _no_rule_sooner(deployment: Deployment, role: str, days: int) -> None:
    stated_objective(deployment, "noncurrent_days", days)
    _attach(check_noncurrent_retention(deployment.storage.client(), _bucket(deployment, role), days))


@given("the drill configuration allows a canary write to the uploads bucket")
def _canary_allowed(deployment: Deployment) -> None:
    if not deployment.config.storage.allow_canary_write:
        pytest.skip("storage.allow_canary_write is false: the drill writes nothing to production's buckets")


@then("a canary object deleted from the uploads bucket is read back from its previous version")
def _canary(deployment: Deployment) -> None:
    _attach(check_canary_recovery(deployment.storage.client(), deployment.uploads_bucket))
