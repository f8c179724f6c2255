"""Whether restore drills are in fact run monthly, read from the drill records of the target.

The plan asks for a restore drill every month. The drill records are the only account of past drills, and
their chain is verified (:mod:`harness.records.chain`), so a drill reads its own cadence there: the newest
record of the same target in which the restore drill ran must be at most ``[objectives]
drill_interval_days`` old. A run that only gated migrations is no restore drill and does not count.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from harness.errors import CheckFailed
from harness.records.record import RAN, DrillRecord

__all__ = ["check_drill_interval", "previous_restore_drill"]


def previous_restore_drill(chain: list[DrillRecord], target: str) -> DrillRecord | None:
    """The newest record of ``target`` in which at least one restore drill scenario ran."""
    drills = [r for r in chain if r.target == target and any(c.area == "restore_drill" and c.status in RAN
                                                              for c in r.checks)]  # fmt: skip
    return drills[-1] if drills else None


def check_drill_interval(chain: list[DrillRecord], target: str, now: datetime, days: int, where: str) -> str:
    """The previous restore drill's age as one line of evidence; refused when it is older than ``days``.

    A target with no previous drill has no cadence to judge yet: the line says this drill starts its record.

    Raises:
        CheckFailed: the previous restore drill finished more than ``days`` days before ``now``.
    """
    previous = previous_restore_drill(chain, target)
    if previous is None:
        return f"no previous restore drill of {target} in {where}: this drill starts the record of its cadence"
    age = now - previous.finished_at
    told = f"the previous restore drill of {target} ({previous.run_id}, finished {previous.finished_at:%Y-%m-%d})"
    if age > timedelta(days=days):
        raise CheckFailed(
            f"{where}: {told} was {age.days} days before this one, more than the {days} days allowed "
            "(objectives.drill_interval_days): run the restore drill every month"
        )
    return f"{told} was {age.total_seconds() / 86400:.1f} days before this one (at most {days})"
