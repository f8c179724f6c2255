"""Steps of the restore drill: one ``harness`` call each, evidence attached, assert or return."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pytest_bdd import given, then, when

from harness.app.runner import AppProcess
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.integrity import (
    RowBaseline,
    check_amcheck,
    check_audit_rows,
    check_recent_inserts,
    compare_keyspace,
    compare_row_counts,
    compare_with_previous,
)
from harness.measure import Stopwatch, cut_over_verdict, rto_measure
from harness.records import load_chain
from harness.records.cadence import check_drill_interval
from harness.restore.base import BaseRestore
from harness.restore.staging import Staging, rto_projection
from harness.services.keeper import Keeper
from harness.services.postgres import ensure_throwaway

from .evidence import attach_json, attach_table, attach_text

if TYPE_CHECKING:  # a clone's fixtures/ or the installed package's: only annotations name it
    from fixtures.drill_record import DrillRecorder


@given("the newest logical backup restored into isolated staging", target_fixture="restored")
def _restored(database_copy: Staging, drill_record: DrillRecorder) -> Staging:
    drill_record.backup_used(database_copy.dump, database_copy.counts.tables, database=database_copy.label,
                             primary=database_copy.primary)  # fmt: skip
    attach_json("backup restored", {**database_copy.download.evidence(), "database": database_copy.dbname,
                                    "manifest": database_copy.has_manifest,
                                    "manifest authenticity": drill_record.env.get("manifests", "")})  # fmt: skip
    return database_copy


@then("the restored dump's size and sha256 match the manifest written when it was taken")
def _hash_matches(restored: Staging, deployment: Deployment) -> None:
    signed = deployment.manifest_trust().authenticated
    attach_text("dump size and sha256", restored.check_download(manifests_signed=signed))


@then("the staging database runs on a throwaway server this drill created, not on production")
def _isolated(restored: Staging, deployment: Deployment) -> None:
    attach_json("staging server", {"cluster_name": restored.postgres.cluster_name, "port": restored.postgres.port,
                                   "production database host": deployment.database_host})  # fmt: skip
    ensure_throwaway(restored.dsn)


@then("pg_restore loaded the whole dump with parallel jobs, its log kept as evidence")
def _restore_log(restored: Staging) -> None:
    attach_text(f"pg_restore --jobs {restored.jobs} log", restored.restore_log)
    # The restore may have run ahead of this scenario on another thread: its phases say when they really ran.
    attach_table("restore phases so far (seconds after the incident)", ["phase", "start", "end", "seconds"],
                 [[p.name, p.start_s, p.end_s, round(p.seconds, 3)] for p in restored.timings.timeline()])  # fmt: skip


@then("each critical table holds exactly the rows the backup's manifest counted")
def _row_counts(restored: Staging, row_baseline: RowBaseline | None, drill_record: DrillRecorder) -> None:
    comparison = compare_row_counts(restored.counts.tables, restored.dump if restored.has_manifest else None,
                                    restored.settings, row_baseline)  # fmt: skip
    drill_record.environment(f"rows.basis.{restored.label}" if restored.label else "rows.basis", comparison.basis)
    attach_table(f"expected vs restored ({comparison.basis})", list(comparison.header), comparison.rows)
    comparison.check()


@then("no critical table holds fewer rows than the previous drill restored, beyond the shrink drill.toml allows")
def _no_shrink(restored: Staging, previous_drill: RowBaseline | None) -> None:
    comparison = compare_with_previous(restored.counts.tables, previous_drill,
                                       restored.settings.max_shrink_fraction)  # fmt: skip
    attach_table(f"previous drill vs restored ({comparison.basis})", list(comparison.header), comparison.rows)
    comparison.check()


@then("each critical table holds the rows inserted in the 24 hours before the backup")
def _recent_inserts(restored: Staging, drill_record: DrillRecorder) -> None:
    inserts = check_recent_inserts(restored.counts.tables, restored.dump, has_manifest=restored.has_manifest,
                                   require=restored.settings.require_recent_inserts)  # fmt: skip
    attach_table("inserts in the 24 h before the backup", list(inserts.header), inserts.rows)
    if inserts.warning:
        attach_text("warning", inserts.warning)
        drill_record.action_item(inserts.warning, what="warning: no inserts in the 24 h before the backup")


@then("the audit table holds records of the 24 hours before the backup")
def _audit_rows(restored: Staging) -> None:
    attach_json("audit records in the window", {"table": restored.settings.audit_table,
                                                "rows": restored.counts.audit_rows})  # fmt: skip
    check_audit_rows(restored.counts, restored.settings, restored.dump.taken_at)


@then("pg_amcheck finds no corruption in the restored database")
def _amcheck(restored: Staging, drill_clock: Stopwatch) -> None:
    with drill_clock.phase("checks"):
        attach_text("pg_amcheck", check_amcheck(restored.postgres, restored.dbname) or "no corruption found")


@then(
    "the restored Redis holds each key sampled when the copy was taken, with its type and value, and as many keys of "
    "each type as the copy"
)
def _redis_keys(restored: Staging, drill_record: DrillRecorder) -> None:
    if restored.redis_copy is None or restored.redis is None:
        raise HarnessError(f"no Redis copy restored: {restored.redis_error or 'no RDB copy in the backup bucket'}")
    if restored.redis_keys is None:
        raise HarnessError(f"{restored.redis_copy.key}: restored, but its keys were not read: {restored.redis_error}")
    comparison = compare_keyspace(restored.redis_copy, restored.redis_keys)
    drill_record.environment("redis.keys", comparison.basis)
    if comparison.advice:
        drill_record.action_item(comparison.advice, what="Redis copy compared by key count only")
    attach_json("Redis copy's keys (counts only, never values)", comparison.evidence)
    comparison.check()


@when("the application is started against the staging copy", target_fixture="app")
def _app(request: pytest.FixtureRequest) -> AppProcess:
    app: AppProcess = request.getfixturevalue("staging_app")
    return app


@then("the application's deep health endpoint answers healthy for every component")
def _healthy(app: AppProcess) -> None:
    answer = app.wait_healthy(app.request_timeout_s)
    attach_json(f"GET {app.health_path}", {"status_code": answer.status_code, "body": answer.body})


@when(
    "the recovery reaches its last applicable step: the application healthy, else the restored database verified",
    target_fixture="recovered_at",
)
def _recovered(recovery_end: str, drill_record: DrillRecorder) -> str:
    drill_record.environment("rto.stopped_at", recovery_end)
    return recovery_end


@then("the recovery time from the incident to that step is within the RTO objective")
def _rto(drill_clock: Stopwatch, deployment: Deployment, drill_record: DrillRecorder, recovered_at: str) -> None:
    rto = rto_measure(drill_clock, deployment.config.objectives, stopped_at=recovered_at)
    drill_record.measure(rto.name, rto.value, rto.objective, rto.unit, rto.detail)
    drill_record.phases(drill_clock.rounded_phases(), drill_clock.timeline())
    attach_json("RTO", {**rto.as_dict(), "incident": drill_clock.incident, "phases_s": drill_clock.rounded_phases()})
    if not rto.met:
        raise CheckFailed(rto.describe())


@then("the recovery time projected to production's size is within the RTO objective")
def _rto_projected(
    restored: Staging,
    database_stagings: dict[str, Keeper[Staging]],
    drill_clock: Stopwatch,
    deployment: Deployment,
    drill_record: DrillRecorder,
    recovered_at: str,
) -> None:
    # Every database this process restored (on a pytest-xdist worker: its share; the controller keeps the
    # slowest worker's RTO, and the projection says which databases it covers).
    copies = [restored, *(keeper.result() for keeper in database_stagings.values())]
    rto_minutes = drill_clock.rto.total_seconds() / 60
    projected = rto_projection(copies, deployment.config, rto_minutes, drill_clock.phases)
    if isinstance(projected, list):
        unknown = (
            "not projected: production's size is unknown; declare [database] production_size_gb, or take the "
            "backups with `codeblack-drills backup postgres` (its manifest records the size)"
            if len(copies) == 1
            else f"not projected: production's size of {', '.join(projected)} is unknown; declare production_size_gb "
            "in their [[databases]] entries, or take the backups with `codeblack-drills backup postgres --database`"
        )
        drill_record.environment("rto.projected", unknown)
        attach_text("RTO projected", unknown)
        return
    drill_record.measure(projected.name, projected.value, projected.objective, projected.unit, projected.detail)
    attach_json("RTO projected", projected.as_dict())
    if not projected.met:
        raise CheckFailed(projected.describe())


@then("the data lost since the newest restored data is within the RPO objective")
def _rpo(restored: Staging, drill_clock: Stopwatch, deployment: Deployment, drill_record: DrillRecorder) -> None:
    rpo = restored.rpo(drill_clock.incident, deployment.config.objectives)
    drill_record.measure(rpo.name, rpo.value, rpo.objective, rpo.unit, rpo.detail)
    attach_json("RPO", {**rpo.as_dict(), "incident": drill_clock.incident, "basis": restored.counts.newest.basis})
    if not rpo.met:
        raise CheckFailed(rpo.describe())


@then(
    "the RPO of PostgreSQL and of Redis, in hours to the second up to their newest heartbeats, is within each objective"
)
def _data_loss(restored: Staging, drill_clock: Stopwatch, deployment: Deployment, drill_record: DrillRecorder) -> None:
    losses = restored.rpo_per_store(drill_clock.incident, deployment.config.objectives)
    attach_table("RPO per store", ["measure", "value", "objective", "unit", "met", "detail"],
                 [loss.row() for loss in losses])  # fmt: skip
    for loss in losses:
        drill_record.measure(loss.name, loss.value, loss.objective, loss.unit, loss.detail)
    missed = [loss.describe() for loss in losses if not loss.met]
    if missed:
        raise CheckFailed("; ".join(missed))


@given("the newest base backup restored into its own throwaway server", target_fixture="base_restored")
def _base(base_staging: BaseRestore) -> BaseRestore:
    attach_text("pg_verifybackup", base_staging.verify_log)
    return base_staging


@then("the restored cluster is consistent and answers queries on the critical tables")
def _consistent(base_restored: BaseRestore) -> None:
    attach_json("base backup restored", base_restored.evidence())
    if base_restored.cluster_state != "in production":
        raise CheckFailed(
            f"the restored base backup's cluster is {base_restored.cluster_state!r}, not 'in production': it did "
            "not reach consistency"
        )


@then("the previous restore drill of this target, read from the drill records, is at most a month old")
def _monthly(deployment: Deployment, drill_records: Path, drill_record: DrillRecorder) -> None:
    config = deployment.config
    evidence = check_drill_interval(load_chain(drill_records), config.target.name, drill_record.started_at,
                                    config.objectives.drill_interval_days, str(drill_records))  # fmt: skip
    attach_text("previous restore drill", evidence)


@then("cut-over is GO only because every restore step passed and both objectives were met")
def _cut_over(
    drill_record: DrillRecorder, cut_over_objectives: list[str], cut_over_deferred: str, request: pytest.FixtureRequest
) -> None:
    drill_record.cut_over = request.node.nodeid  # a distributed drill's controller decides it on every share
    checks = [check for node, check in drill_record.checks.items() if node != request.node.nodeid]
    verdict = cut_over_verdict(checks, drill_record.measures, objectives=cut_over_objectives)
    attach_json("cut-over verdict", verdict.model_dump())
    if verdict.decision != "GO":  # the verdict's reasons are the operator's line, not pytest's traceback
        raise CheckFailed("NO-GO: " + "; ".join(verdict.reasons))
    if cut_over_deferred:  # a worker's GO is of its share alone: neither a pass nor a failure of the drill
        pytest.skip(cut_over_deferred)
