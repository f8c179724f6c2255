"""The plan's cut-over rule: "Cut over to production only after staging verification".

GO only when every restore-drill step so far passed and both RPO and RTO were measured and met; otherwise
NO-GO with every reason. The decision itself is :func:`harness.records.decide`, the same rule the drill
record applies to the whole session, narrowed here to the restore drill's own scenarios and measures.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.records import Check, Measure, Verdict, decide

__all__ = ["OBJECTIVES", "cut_over_verdict"]

OBJECTIVES = ("RPO", "RTO")


def cut_over_verdict(checks: Iterable[Check], measures: Iterable[Measure], *, area: str = "restore_drill") -> Verdict:
    """Decide cut-over from the ``area``'s scenario outcomes and the RPO/RTO measures.

    A missing RPO or RTO is a reason against: an unmeasured objective is not a met one.
    """
    measured = [m for m in measures if m.name in OBJECTIVES]
    verdict = decide([c for c in checks if c.area == area], measured)
    missing = [f"{name} was not measured" for name in OBJECTIVES if name not in {m.name for m in measured}]
    if not missing:
        return verdict
    reasons = [r for r in verdict.reasons if verdict.decision == "NO-GO"] + missing
    return Verdict(decision="NO-GO", reasons=reasons)
