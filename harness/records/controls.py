"""Which audit controls each feature area evidences, and their status derived from the scenarios.

Auditors think in controls, operators in scenarios. This table joins the two: each area of the suite (one
Gherkin feature) evidences named controls of ISO/IEC 27001:2022, SOC 2 and the AWS Backup Audit Manager
control of the same meaning, and links to the section of the plan it verifies. A control is effective when
at least one of its scenarios ran and none failed, not effective when one failed, and not tested otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.records.html import heading_anchor
from harness.records.record import RAN, Check, ControlStatus, Measure

__all__ = ["AREAS", "CONTROLS", "EPIC", "PLAN_PAGE", "Area", "Control", "control_statuses", "plan_link"]

PLAN_PAGE = "plan.html"  # the plan ([reports] plan) as the report renders it beside its index.html
EPIC = "Backend Operations: Backup and Migration Plan"  # the plan's title: the Allure epic of every scenario


@dataclass(frozen=True)
class Control:
    """A control of a standard, with the feature areas whose scenarios evidence it.

    ``measure`` names a drill measure (``RTO``) that decides the status when the drill took it: a restore can
    pass every check and still miss the target the control is about.
    """

    id: str
    description: str
    areas: tuple[str, ...]
    measure: str = ""


@dataclass(frozen=True)
class Area:
    """A feature area: the plan section it verifies and how severe a failure in it is."""

    name: str
    plan_section: str
    severity: str

    @property
    def plan_link(self) -> str:
        """A link to the plan's section, relative to the report."""
        return plan_link(self.plan_section)


def plan_link(section: str) -> str:
    """A link from the report to a section of the plan page (its GitHub-style heading anchor)."""
    return f"{PLAN_PAGE}#{heading_anchor(section)}"


AREAS = {
    "backup_policy": Area("backup_policy", "Backup Strategy", "critical"),
    "restore_drill": Area("restore_drill", "Restore Procedure (Minimum)", "blocker"),
    "migration_gates": Area("migration_gates", "Migration Workflow", "critical"),
    "config_safety": Area("config_safety", "Change Safety Gates", "critical"),
}

_BACKUP = ("backup_policy", "restore_drill")
_CHANGE = ("migration_gates", "config_safety")
_BAM = "AWS Backup Audit Manager"
CONTROLS = (
    Control("ISO/IEC 27001:2022 A.8.13", "Information backup: copies are kept and tested", _BACKUP),
    Control("ISO/IEC 27001:2022 A.8.32", "Change management: changes are gated and reversible", _CHANGE),
    Control("SOC 2 CC7.5", "Recovery from incidents: restore is exercised and measured", ("restore_drill",)),
    Control("SOC 2 CC8.1", "Change management: changes are authorised, tested and approved", _CHANGE),
    Control(f"{_BAM}: backup-recovery-point-minimum-retention-check", "Recovery points are kept long enough",
            ("backup_policy",)),
    Control(f"{_BAM}: backup-plan-min-frequency-and-min-retention-check", "Backups are taken at the minimum frequency",
            ("backup_policy",)),
    Control(f"{_BAM}: restore-time-for-resources-meet-target", "Restore time meets the RTO target",
            ("restore_drill",), measure="RTO"),
)  # fmt: skip


_Status = Literal["effective", "not effective", "not tested"]


def _judge(control: Control, checks: list[Check], measures: list[Measure]) -> tuple[_Status, list[str]]:
    measured = next((m for m in measures if control.measure and m.name == control.measure), None)
    if measured is not None:
        return ("effective" if measured.met else "not effective"), [f"{measured.name} {measured.against()}"]
    relevant = [check for check in checks if check.area in control.areas and check.status in RAN]
    evidence = [f"{check.scenario} ({check.status})" for check in relevant]
    if any(check.status == "failed" for check in relevant):
        return "not effective", evidence
    return ("effective" if relevant else "not tested"), evidence


def control_statuses(checks: list[Check], measures: list[Measure]) -> list[ControlStatus]:
    """Every control with its status and the scenarios (or the measure) that evidence it."""
    statuses = []
    for control in CONTROLS:
        status, evidence = _judge(control, checks, measures)
        statuses.append(ControlStatus(control=control.id, description=control.description, status=status,
                                      evidence=evidence))  # fmt: skip
    return statuses
