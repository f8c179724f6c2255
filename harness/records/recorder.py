"""The recorder a drill session reports to, turned into a :class:`DrillRecord` at the end.

Steps and fixtures learn things one at a time (the backup used, RPO, the RTO phases, server versions); the
recorder keeps them until the session ends and builds the record with the verdict, the action items and
the controls derived in one place. It knows nothing about pytest: the plugin in ``fixtures/drill_record.py``
feeds it the scenario outcomes.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from harness.config import DrillConfig
from harness.records.actions import action_items, assign, decide, follow_up, unverified
from harness.records.attribution import attribution
from harness.records.controls import control_statuses
from harness.records.record import (
    ActionItem,
    Attribution,
    BackupUsed,
    Check,
    DrillRecord,
    Measure,
    ObjectiveChange,
    Phase,
    Restored,
    StagingServer,
    Verdict,
    WaiverEntry,
)
from harness.services.base import run_id
from harness.storage.manifest import BackupManifest, TableStats
from harness.storage.signing import ManifestTrust

__all__ = ["DrillRecorder", "previous_of", "replaced_entry"]


def _harness_version() -> str:
    try:
        return importlib.metadata.version("codeblack-drills")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _verdict(checks: list[Check], measures: list[Measure], changes: list[ObjectiveChange]) -> Verdict:
    """The session's GO/NO-GO: nothing failed, every objective met and unchanged unless approved, staging verified.

    An objective loosened since the previous drill without an approval is a NO-GO: a looser objective could
    turn a failing drill into a GO without anyone deciding it. A tightened one cannot, so it is an action item.
    """
    verdict = decide(checks, measures)
    missing = unverified(checks) + [change.line() for change in changes if change.looser and not change.approved_by]
    if not missing:
        return verdict
    failures = verdict.reasons if verdict.decision == "NO-GO" else []
    return Verdict(decision="NO-GO", reasons=[*failures, *missing])


def _change_items(changes: list[ObjectiveChange]) -> list[ActionItem]:
    return [
        ActionItem(
            what=f"objective {change.name}",
            number=change.line(),
            cause=f"objective:{change.name}",
            todo="record the approval in [[objective_approvals]] of drill.toml (objective, value, "
            "approved_by, reason) or restore the previous value",
        )
        for change in changes
        if not change.approved_by
    ]


class _Kind(Protocol):
    @property
    def what(self) -> str: ...


_Named = TypeVar("_Named", bound=_Kind)


def replaced_entry(entries: list[_Named], entry: _Named) -> list[_Named]:
    """``entries`` with the one of ``entry``'s kind replaced in place, or ``entry`` appended."""
    if all(e.what != entry.what for e in entries):
        return [*entries, entry]
    return [entry if e.what == entry.what else e for e in entries]


def previous_of(chain: list[DrillRecord], target: str) -> DrillRecord | None:
    """The newest record of ``target`` in a chain (records of other targets may share the directory)."""
    return next((record for record in reversed(chain) if record.target == target), None)


@dataclass
class DrillRecorder:
    """What the session learned about the drill; turned into a :class:`DrillRecord` at the end.

    ``verified`` (when each database's copy was verified) and ``cut_over`` (the node id of the scenario that
    judged cut-over) let a drill spread over pytest-xdist workers be merged into one (:mod:`harness.records.shares`).
    """

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    backup: BackupUsed | None = None
    restored_rows: dict[str, int] = field(default_factory=dict)
    database_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    manifests_authenticated: bool = False
    restored: list[Restored] = field(default_factory=list)
    staging: list[StagingServer] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    rto_phases: dict[str, float] = field(default_factory=dict)
    rto_timeline: list[Phase] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    extra_items: list[ActionItem] = field(default_factory=list)
    untested: set[str] = field(default_factory=set)
    waivers: list[WaiverEntry] = field(default_factory=list)
    checks: dict[str, Check] = field(default_factory=dict)
    verified: dict[str, datetime] = field(default_factory=dict)
    cut_over: str = ""
    written: DrillRecord | None = None
    path: Path | None = None
    error: str = ""

    def backup_used(
        self,
        manifest: BackupManifest,
        tables: Mapping[str, TableStats] | None = None,
        *,
        database: str = "",
        primary: bool = True,
    ) -> None:
        """Name the backup the drill restored (key, content hash, size, time) and, once restored, its rows per table.

        The rows are the basis of a later drill whose dump has no manifest (:mod:`harness.integrity.baseline`).
        In a drill of several databases, ``database`` names the one (its rows are kept under its name); the
        ``primary`` one's backup is also the record's ``backup``.
        """
        rows = None if tables is None else {table: stats.rows for table, stats in tables.items()}
        if database and rows is not None:
            self.database_rows[database] = rows
        self.restored_backup(f"PostgreSQL dump {database}" if database else "PostgreSQL dump", manifest)
        if not primary:
            return
        self.backup = BackupUsed(key=manifest.key, sha256=manifest.sha256, size=manifest.size,
                                 taken_at=manifest.taken_at)  # fmt: skip
        if rows is not None:
            self.restored_rows = rows
        self.env.update({"backup.key": manifest.key, "backup.sha256": manifest.sha256})

    def restored_backup(self, what: str, manifest: BackupManifest) -> None:
        """Name a backup the drill restored (``PostgreSQL dump``, ``Redis copy``, ``base backup``), once per kind."""
        entry = Restored(what=what, key=manifest.key, sha256=manifest.sha256, size=manifest.size,
                         taken_at=manifest.taken_at)  # fmt: skip
        self.restored = replaced_entry(self.restored, entry)

    def staging_server(self, server: StagingServer) -> None:
        """Name a throwaway server the drill restored into (once per kind), with its non-default settings."""
        self.staging = replaced_entry(self.staging, server)

    def database_verified(self, database: str, at: datetime) -> None:
        """When ``database``'s copy was restored and counted: a drill spread over workers ends with the last one."""
        self.verified[database] = at

    def manifests(self, trust: ManifestTrust, *, has_manifest: bool) -> None:
        """Record whether the restored backup's manifest was authenticated; if not, an action item says why."""
        self.manifests_authenticated = trust.authenticated and has_manifest
        detail = trust.describe() if has_manifest else "NOT authenticated: no manifest beside the restored dump"
        self.env["manifests"] = detail
        if not trust.authenticated:
            self.action_item("sign manifests ([backup] signing_key_env) and set [storage] manifest_verify_key so "
                             "the drill can tell a forged manifest from a real one", what="manifests")  # fmt: skip

    def measure(self, name: str, value: float, objective: float, unit: str, detail: str = "") -> Measure:
        """Record a figure against its objective (replacing an earlier one of the same name)."""
        entry = Measure(name=name, value=value, unit=unit, objective=objective, met=value <= objective, detail=detail)
        self.measures = [m for m in self.measures if m.name != name] + [entry]
        return entry

    def phases(self, phases: dict[str, float], timeline: list[Phase] | None = None) -> None:
        """Record RTO's phase breakdown in seconds and, when known, when each phase ran (phases may overlap)."""
        self.rto_phases.update(phases)
        if timeline is not None:
            self.rto_timeline = timeline

    def environment(self, key: str, value: str) -> None:
        """Record a fact about the environment (server versions, provider) for the record and Allure."""
        self.env[key] = str(value)

    def action_item(self, text: str, what: str = "operator note") -> None:
        """Add an action item the automatic ones cannot know about."""
        self.extra_items.append(ActionItem(what=what, number="", todo=text))

    def not_retested(self, what: str) -> None:
        """Say this drill could not look at ``what``: a previous item about it is followed up as not re-tested."""
        self.untested.add(what)

    def waiver(self, rule: str, subject: str, approved_by: str, reason: str) -> None:
        """Record a gate bypassed on purpose, with who approved it and why."""
        self.waivers.append(WaiverEntry(rule=rule, subject=subject, approved_by=approved_by, reason=reason))

    def build(
        self, config: DrillConfig, previous: DrillRecord | None = None, *, operator: str | None = None
    ) -> DrillRecord:
        """The record of this session as it stands now (not yet sealed into the chain).

        Args:
            config: the session's configuration.
            previous: the previous record of the same target: its objectives and action items are followed up.
            operator: the ``--operator`` option, if given.
        """
        checks = list(self.checks.values())
        waivers = [WaiverEntry(**w.model_dump()) for w in config.waivers]
        attributed: Attribution = attribution(config, previous, operator)
        finished = datetime.now(UTC)
        changes = attributed.objective_changes
        items = action_items(checks, self.measures, self.rto_phases) + _change_items(changes) + self.extra_items
        items = assign(items, config.reports.action_owner or attributed.operator,
                       (finished + timedelta(days=config.reports.action_due_days)).date())  # fmt: skip
        return DrillRecord(
            run_id=run_id(),
            started_at=self.started_at,
            finished_at=finished,
            target=config.target.name,
            provider=self.env.get("provider", f"services.provider = {config.services.provider}"),
            harness_version=_harness_version(),
            sandbox=config.target.sandbox,
            attribution=attributed,
            environment={"target": config.target.name, **self.env},
            backup=self.backup,
            restored=self.restored,
            staging=self.staging,
            restored_rows=self.restored_rows,
            database_rows=self.database_rows,
            manifests_authenticated=self.manifests_authenticated,
            checks=checks,
            measures=self.measures,
            rto_phases=self.rto_phases,
            rto_timeline=self.rto_timeline,
            verdict=_verdict(checks, self.measures, changes),
            action_items=items,
            follow_up=follow_up(previous, items, checks, self.measures, self.untested),
            waivers=[*waivers, *(w for w in self.waivers if w not in waivers)],
            controls=control_statuses(checks, self.measures, sandbox=config.target.sandbox),
        )
