"""PostgreSQL logical dumps: taken at least every ``dump_interval_hours``, kept ``retention_days``, no longer.

Both the newest dump's age and the widest gap between neighbours are held to ``dump_interval_hours``
(the plan's "run pg_dump at least every 6 hours"), not to ``rpo_hours``: the schedule is what the backup
policy promises, while the RPO actually achieved is measured by the restore drill from the data the restored
database holds. With the plan's numbers both are 6 h.
"""

from __future__ import annotations

from datetime import UTC, datetime

from harness.config import Objectives
from harness.policy.evidence import Evidence
from harness.policy.timeline import check_gaps, check_max_age, check_newest, check_reach
from harness.storage.catalogue import Catalogue

__all__ = ["WHAT", "check_dump_gaps", "check_dump_retention", "check_newest_dump"]

WHAT = "logical backup"
_INTERVAL = "objectives.dump_interval_hours"


def check_newest_dump(catalogue: Catalogue, objectives: Objectives, now: datetime | None = None) -> Evidence:
    """The newest dump is at most ``dump_interval_hours`` old.

    Raises:
        CheckFailed: names the newest dump and its age in hours.
    """
    limit = objectives.dump_interval_hours
    return check_newest(catalogue, WHAT, limit, _INTERVAL, now or datetime.now(UTC))


def check_dump_gaps(catalogue: Catalogue, objectives: Objectives, now: datetime | None = None) -> Evidence:
    """Over the last ``retention_days`` no two consecutive dumps are more than ``dump_interval_hours`` apart.

    Raises:
        CheckFailed: names the two dumps around the widest gap and its hours.
    """
    window = objectives.retention_days * 24.0
    return check_gaps(catalogue, WHAT, objectives.dump_interval_hours, window, _INTERVAL, now or datetime.now(UTC))


def check_dump_retention(catalogue: Catalogue, objectives: Objectives, now: datetime | None = None) -> list[Evidence]:
    """The dumps cover the last ``retention_days`` and none older than that plus ``retention_grace_hours`` is kept.

    "Cover" means the oldest dump is at most one interval younger than the window's start (the dump that
    would fall exactly on the start may already be pruned).

    Raises:
        CheckFailed: names the oldest dump and its age in days (too young, or too old and how many are).
    """
    moment = now or datetime.now(UTC)
    window = objectives.retention_days * 24.0
    kept = window + objectives.retention_grace_hours
    return [
        check_reach(catalogue, WHAT, window, objectives.dump_interval_hours, "objectives.retention_days", moment),
        check_max_age(catalogue, WHAT, kept, "objectives.retention_days + retention_grace_hours", moment),
    ]
