"""Which audit controls each feature area evidences, and their status derived from the scenarios.

Auditors think in controls, operators in scenarios. This table joins the two: each area of the suite (one
Gherkin feature) collects evidence for named controls of ISO/IEC 27001:2022 and SOC 2, and links to the
section of the plan it verifies. One drill does not make a control effective (that is an auditor's judgement
over a period): a control has "evidence collected in this drill" when at least one of its scenarios ran and
none failed, "failed in this drill" when one failed, "not tested in this drill" otherwise; on the sandbox
every control is a "rehearsal, not evidence", whatever its scenarios did.

AWS Backup Audit Manager's controls (``backup-plan-min-frequency-and-min-retention-check``,
``restore-time-for-resources-meet-target``…) judge AWS Backup plans, recovery points and restore jobs. The
backups this suite verifies are ``pg_dump`` archives, base backups and RDB copies in object storage, which
those controls do not evaluate, so none is mapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from harness.records.html import heading_anchor
from harness.records.record import RAN, REHEARSAL, Check, ControlStatus, ControlStatusName, Measure

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
CONTROLS = (
    Control("ISO/IEC 27001:2022 A.8.13", "Information backup: copies are kept and tested", _BACKUP),
    Control("ISO/IEC 27001:2022 A.8.32", "Change management: changes are gated and reversible", _CHANGE),
    Control("SOC 2 A1.2", "Availability: data backup processes and recovery infrastructure are in place and "
            "monitored", _BACKUP),
    Control("SOC 2 A1.3", "Availability: recovery plan procedures supporting system recovery are tested",
            ("restore_drill",), measure="RTO"),
    Control("SOC 2 CC7.5", "Recovery from incidents: restore is exercised and measured", ("restore_drill",)),
    Control("SOC 2 CC8.1", "Change management: changes are authorised, tested and approved", _CHANGE),
)  # fmt: skip

_Status = Literal["evidence collected in this drill", "failed in this drill", "not tested in this drill"]
COLLECTED: Final = "evidence collected in this drill"
FAILED: Final = "failed in this drill"
NOT_TESTED: Final = "not tested in this drill"


def _judge(control: Control, checks: list[Check], measures: list[Measure]) -> tuple[_Status, list[str]]:
    relevant = [check for check in checks if check.area in control.areas and check.status in RAN]
    evidence = [f"{check.scenario} ({check.status})" for check in relevant]
    measured = next((m for m in measures if control.measure and m.name == control.measure), None)
    if measured is not None:
        evidence.append(f"{measured.name} {measured.against()}")
    if any(check.status == "failed" for check in relevant) or (measured is not None and not measured.met):
        return FAILED, evidence
    return (COLLECTED if relevant or measured else NOT_TESTED), evidence


def control_statuses(checks: list[Check], measures: list[Measure], *, sandbox: bool = False) -> list[ControlStatus]:
    """Every control with what this drill collected for it; on the sandbox, a rehearsal whatever it collected."""
    statuses = []
    for control in CONTROLS:
        judged, evidence = _judge(control, checks, measures)
        status: ControlStatusName = REHEARSAL if sandbox else judged
        statuses.append(ControlStatus(control=control.id, description=control.description, status=status,
                                      evidence=evidence))  # fmt: skip
    return statuses
