"""The plan's cut-over rule: "Cut over to production only after staging verification".

GO only when every restore-drill step so far passed and both RPO and RTO were measured and met; otherwise
NO-GO with every reason. The decision itself is :func:`harness.records.decide`, the same rule the drill
record applies to the whole session, narrowed here to the restore drill's own scenarios and measures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.config import DrillConfig
from harness.measure.objectives import rpo_name
from harness.records import Check, Measure, Verdict, decide

__all__ = ["OBJECTIVES", "cut_over_verdict", "objective_names"]

OBJECTIVES = ("RPO", "RTO")


def objective_names(config: DrillConfig, databases: Sequence[str] | None = None) -> list[str]:
    """The measures cut-over needs: every database's RPO (``RPO <name>`` among several) and the RTO.

    ``databases`` narrows the RPOs to those databases (a worker of a distributed drill judges its own share).
    """
    if not config.multiple_databases:
        return list(OBJECTIVES)
    names = config.database_names() if databases is None else databases
    return [*(rpo_name(name) for name in names), "RTO"]


def cut_over_verdict(
    checks: Iterable[Check],
    measures: Iterable[Measure],
    *,
    area: str = "restore_drill",
    objectives: Sequence[str] = OBJECTIVES,
) -> Verdict:
    """Decide cut-over from the ``area``'s scenario outcomes and the ``objectives``' measures (RPO and RTO).

    A missing objective is a reason against: an unmeasured objective is not a met one.
    """
    measured = [m for m in measures if m.name in objectives]
    verdict = decide([c for c in checks if c.area == area], measured)
    missing = [f"{name} was not measured" for name in objectives if name not in {m.name for m in measured}]
    if not missing:
        return verdict
    reasons = [r for r in verdict.reasons if verdict.decision == "NO-GO"] + missing
    return Verdict(decision="NO-GO", reasons=reasons)
