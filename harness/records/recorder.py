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
from datetime import UTC, datetime
from pathlib import Path

from harness.config import DrillConfig
from harness.records.actions import action_items, decide, unverified
from harness.records.controls import control_statuses
from harness.records.record import ActionItem, BackupUsed, Check, DrillRecord, Measure, Verdict, WaiverEntry
from harness.services.base import run_id
from harness.storage.manifest import BackupManifest, TableStats
from harness.storage.signing import ManifestTrust

__all__ = ["DrillRecorder"]


def _harness_version() -> str:
    try:
        return importlib.metadata.version("codeblack-drills")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _verdict(checks: list[Check], measures: list[Measure]) -> Verdict:
    """The session's GO/NO-GO: nothing failed, every objective met, and the restore drill verified staging."""
    verdict = decide(checks, measures)
    missing = unverified(checks)
    if not missing:
        return verdict
    failures = verdict.reasons if verdict.decision == "NO-GO" else []
    return Verdict(decision="NO-GO", reasons=[*failures, *missing])


@dataclass
class DrillRecorder:
    """What the session learned about the drill; turned into a :class:`DrillRecord` at the end."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    backup: BackupUsed | None = None
    restored_rows: dict[str, int] = field(default_factory=dict)
    manifests_authenticated: bool = False
    measures: list[Measure] = field(default_factory=list)
    rto_phases: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    extra_items: list[ActionItem] = field(default_factory=list)
    waivers: list[WaiverEntry] = field(default_factory=list)
    checks: dict[str, Check] = field(default_factory=dict)
    written: DrillRecord | None = None
    path: Path | None = None
    error: str = ""

    def backup_used(self, manifest: BackupManifest, tables: Mapping[str, TableStats] | None = None) -> None:
        """Name the backup the drill restored (key, content hash, size, time) and, once restored, its rows per table.

        The rows are the basis of a later drill whose dump has no manifest (:mod:`harness.integrity.baseline`).
        """
        self.backup = BackupUsed(key=manifest.key, sha256=manifest.sha256, size=manifest.size,
                                 taken_at=manifest.taken_at)  # fmt: skip
        if tables is not None:
            self.restored_rows = {table: stats.rows for table, stats in tables.items()}
        self.env.update({"backup.key": manifest.key, "backup.sha256": manifest.sha256})

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

    def phases(self, phases: dict[str, float]) -> None:
        """Record RTO's phase breakdown in seconds, in the order the phases ran."""
        self.rto_phases.update(phases)

    def environment(self, key: str, value: str) -> None:
        """Record a fact about the environment (server versions, provider) for the record and Allure."""
        self.env[key] = str(value)

    def action_item(self, text: str, what: str = "operator note") -> None:
        """Add an action item the automatic ones cannot know about."""
        self.extra_items.append(ActionItem(what=what, number="", todo=text))

    def waiver(self, rule: str, subject: str, approved_by: str, reason: str) -> None:
        """Record a gate bypassed on purpose, with who approved it and why."""
        self.waivers.append(WaiverEntry(rule=rule, subject=subject, approved_by=approved_by, reason=reason))

    def build(self, config: DrillConfig) -> DrillRecord:
        """The record of this session as it stands now (not yet sealed into the chain)."""
        checks = list(self.checks.values())
        waivers = [WaiverEntry(**w.model_dump()) for w in config.waivers]
        return DrillRecord(
            run_id=run_id(),
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
            target=config.target.name,
            provider=self.env.get("provider", f"services.provider = {config.services.provider}"),
            harness_version=_harness_version(),
            environment={"target": config.target.name, **self.env},
            backup=self.backup,
            restored_rows=self.restored_rows,
            manifests_authenticated=self.manifests_authenticated,
            checks=checks,
            measures=self.measures,
            rto_phases=self.rto_phases,
            verdict=_verdict(checks, self.measures),
            action_items=action_items(checks, self.measures, self.rto_phases) + self.extra_items,
            waivers=[*waivers, *(w for w in self.waivers if w not in waivers)],
            controls=control_statuses(checks, self.measures),
        )
