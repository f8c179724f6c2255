"""Steps of the migration gates: parse, one ``harness.migrations`` call, evidence, assert or return."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pytest_bdd import given, then, when

from harness.app.runner import AppProcess
from harness.config import DrillConfig, Waiver
from harness.migrations.checkpoint import newest_checkpoint
from harness.migrations.checksums import FileChecksum, check_checksums, compare_checksums
from harness.migrations.deploy import DeployRehearsal, MaintenanceWindow, WriteSwitch, wait_listening
from harness.migrations.destructive import (
    DestructiveOperation,
    check_checkpoint,
    destructive_revisions,
    find_destructive,
    judgement,
)
from harness.migrations.drift import check_drift
from harness.migrations.history import RevisionGraph, check_linear_history, check_tracked, load_graph
from harness.migrations.lint import LintFinding, check_lint, lint_revisions
from harness.migrations.locks import RevisionTiming, check_budgets
from harness.migrations.project import MigrationProject
from harness.migrations.roundtrip import RoundTrip, check_roundtrip
from harness.migrations.waivers import Waivers
from harness.records.recorder import DrillRecorder
from harness.restore.staging import Staging

from .evidence import attach_json, attach_table, attach_text

log = logging.getLogger("steps.migration_gates")


@given("the target's Alembic migrations named in the drill configuration", target_fixture="migrations")
def _migrations(drill_config: DrillConfig) -> MigrationProject:
    return MigrationProject.from_config(drill_config)


@given("the migration history as Alembic builds it from migrations/versions", target_fixture="revision_graph")
def _revision_graph(migrations: MigrationProject) -> RevisionGraph:
    graph = load_graph(migrations)
    attach_json("revision graph", {"heads": graph.heads, "revisions": graph.evidence()})
    return graph


@given("the waivers approved in the drill configuration", target_fixture="waivers")
def _waivers(drill_config: DrillConfig) -> Waivers:
    waivers = Waivers.of(drill_config.waivers)
    attach_table("waivers in force", Waivers.HEADER, Waivers.evidence(waivers.entries))
    return waivers


def _report_waivers(used: list[Waiver], drill_record: DrillRecorder) -> None:
    """Attach the waivers a gate used and put them in the drill record."""
    attach_table("waivers used", Waivers.HEADER, Waivers.evidence(used))
    for waiver in used:
        drill_record.waiver(waiver.rule, waiver.subject, waiver.approved_by, waiver.reason)


@then("every file in migrations/versions is a revision of the migration history")
def _every_file_tracked(migrations: MigrationProject, revision_graph: RevisionGraph) -> None:
    check_tracked(migrations)
    attach_text("tracked migration files", "\n".join(revision.file for revision in revision_graph.revisions))


@then("the migrations applied to an empty database build exactly the schema the models declare")
def _no_drift(migrations: MigrationProject, pg_database: Any) -> None:
    attach_json("drift diff (autogenerate comparison at head)", check_drift(migrations, pg_database))


@then("the migration history is one linear chain with a single head at the expected revision")
def _linear_history(
    migrations: MigrationProject, revision_graph: RevisionGraph, waivers: Waivers, drill_record: DrillRecorder
) -> None:
    _report_waivers(check_linear_history(migrations, revision_graph, waivers), drill_record)


@then("every revision downgraded one step and upgraded again leaves an identical schema catalogue")
def _reversible(
    migrations: MigrationProject, revision_graph: RevisionGraph, waivers: Waivers, pg_database: Any
) -> None:
    exempt = destructive_revisions(migrations, revision_graph.order)
    results = check_roundtrip(migrations, revision_graph, pg_database, exempt=exempt, waivers=waivers)
    for result in results:  # an exemption is never silent: the scenario's log and the table say why
        if not result.reversed:
            log.info("revision %s not round-tripped: %s", result.revision, result.exemption)
    attach_table("round trips", RoundTrip.HEADER, [result.row() for result in results])


@given("the revisions pending on the staging copy restored from the newest backup", target_fixture="rehearsal")
def _rehearsal(
    migrations: MigrationProject, revision_graph: RevisionGraph, drill_config: DrillConfig, request: Any
) -> DeployRehearsal:
    # A gates-only target has no backups: its deployed revision is [migrations] deployed_head (or none known).
    copy: Staging | None = None if drill_config.gates_only else request.getfixturevalue("staging")
    rehearsal = DeployRehearsal(
        migrations, revision_graph, copy, deployed=drill_config.migrations.deployed_head or None
    )
    pending = rehearsal.pending()
    attach_json("pending revisions", {"deployed": rehearsal.deployed, "pending": pending})
    return rehearsal


@then("every migration file up to the deployed revision is unchanged since its checksum was recorded")
def _history_unedited(rehearsal: DeployRehearsal) -> None:
    report = compare_checksums(rehearsal.project, rehearsal.graph, rehearsal.deployed,
                               recorded_are_applied=rehearsal.database is None)  # fmt: skip
    attach_table(
        f"checksums against the deployed head {report.deployed}", FileChecksum.HEADER, [f.row() for f in report.files]
    )
    check_checksums(report)


@then(
    "each pending migration that drops, truncates or narrows data follows a full backup checkpoint "
    "of at most the configured age"
)
def _checkpoint(
    rehearsal: DeployRehearsal, waivers: Waivers, drill_config: DrillConfig, drill_record: DrillRecorder, request: Any
) -> None:
    found = find_destructive(rehearsal.project, rehearsal.pending())
    attach_table("destructive operations", DestructiveOperation.HEADER, [op.row() for op in found])
    max_age, now, backups = (
        drill_config.migrations.checkpoint_max_age_hours,
        datetime.now(UTC),
        not drill_config.gates_only,
    )
    checkpoint = newest_checkpoint(request.getfixturevalue("deployment")) if backups and found else None
    attach_text(
        "how each destructive revision was judged",
        "\n".join(judgement(found, checkpoint, now=now, backups=backups)) or "none pending",
    )
    used = check_checkpoint(found, checkpoint, max_age_hours=max_age, now=now, waivers=waivers, backups=backups)
    _report_waivers(used, drill_record)


@then("the offline SQL of the pending migrations has no finding of a blocking lint rule")
def _lint(rehearsal: DeployRehearsal, waivers: Waivers, drill_config: DrillConfig, drill_record: DrillRecorder) -> None:
    rules = drill_config.migrations.lint_blocking_rules
    report = lint_revisions(rehearsal.project, rehearsal.graph, rehearsal.pending(), blocking_rules=rules)
    attach_text("offline SQL of the pending migrations", report.script() or "-- no pending migration")
    attach_table("squawk findings", LintFinding.HEADER, [finding.row() for finding in report.findings])
    _report_waivers(check_lint(report, waivers), drill_record)


@given("the target app started against the staging copy", target_fixture="rehearsal_app")
def _app(app_factory: Callable[..., AppProcess], drill_config: DrillConfig) -> AppProcess:
    return wait_listening(app_factory(name="rehearsal"), drill_config.app.startup_timeout_s)


@when("writes are put in maintenance mode if a pending migration is destructive", target_fixture="maintenance")
def _maintenance(rehearsal: DeployRehearsal, rehearsal_app: AppProcess, drill_config: DrillConfig) -> MaintenanceWindow:
    switch = WriteSwitch.from_settings(rehearsal_app.base_url, drill_config.app)
    window = MaintenanceWindow(switch, find_destructive(rehearsal.project, rehearsal.pending())).open()
    attach_json("maintenance mode", {"needed": window.needed, "destructive": [op.row() for op in window.destructive]})
    return window


@then("an ordinary write is refused while maintenance mode is on")
def _refused(maintenance: MaintenanceWindow) -> None:
    attach_json("write during maintenance", {"status": maintenance.check_refused(), "maintenance": maintenance.needed})


@when("the pending migrations are applied with alembic upgrade head")
def _upgrade(rehearsal: DeployRehearsal) -> None:
    attach_json("applied revisions", rehearsal.upgrade())


@then("no pending migration held an exclusive table lock or ran longer than the configured budgets")
def _budgets(rehearsal: DeployRehearsal, drill_config: DrillConfig) -> None:
    attach_table("lock and duration per revision", RevisionTiming.HEADER, [t.row() for t in rehearsal.timings])
    budgets = drill_config.migrations
    check_budgets(rehearsal.timings, lock_budget_s=budgets.lock_budget_s, duration_budget_s=budgets.duration_budget_s)


@then("alembic current on the staging copy is the expected head")
def _current(rehearsal: DeployRehearsal) -> None:
    attach_text("alembic current", rehearsal.check_current())


@then("the app's startup checks and deep health pass on the migrated copy")
def _healthy(rehearsal_app: AppProcess, drill_config: DrillConfig) -> None:
    attach_json("health/deep", rehearsal_app.wait_healthy(timeout=drill_config.app.startup_timeout_s).body)


@when("writes are re-enabled after the migration")
def _reenable(maintenance: MaintenanceWindow) -> None:
    maintenance.close()


@then("an ordinary write is accepted again")
def _accepted(maintenance: MaintenanceWindow) -> None:
    attach_json("write after the deploy", {"status": maintenance.switch.check_writes(refused=False)})
