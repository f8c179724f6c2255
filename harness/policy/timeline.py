"""Rules over a backup timeline: how old the newest is, the gaps between neighbours, how far back it reaches.

The same few rules express every schedule of the plan: dumps every 6 h kept 14 days, a daily snapshot for
each of the last 7 days, a weekly one for each of the last 4 weeks, a daily Redis copy. They work on a
:class:`~harness.storage.catalogue.Catalogue` and an explicit ``now`` (so tests can build any timeline), and
each raises :class:`~harness.errors.CheckFailed` naming the object, the rule (with the ``drill.toml`` setting
it comes from) and the measured number, or returns the :class:`Evidence` it saw.

Times are the ones the keys carry (the backup's start); a timeline with jitter is judged by gaps between
neighbours rather than by fixed calendar slots, so a backup at 02:05 after one at 02:00 the day before is
not "missing" just because a slot boundary fell between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from harness.errors import CheckFailed
from harness.policy.evidence import Evidence
from harness.storage.catalogue import BackupObject, Catalogue

__all__ = [
    "Gap",
    "Schedule",
    "check_count",
    "check_gaps",
    "check_max_age",
    "check_newest",
    "check_reach",
    "check_schedule",
]


@dataclass(frozen=True)
class Schedule:
    """A backup schedule: what it makes, how often, how many periods must be covered, and the setting's name.

    Attributes:
        what: the kind of object, as messages name it (``daily base backup``).
        period_hours: the time between two backups.
        periods: how many consecutive periods, back from now, must each hold a backup.
        tolerance_hours: how late a backup may be before its period counts as missed.
        setting: the ``drill.toml`` keys the numbers come from, quoted in every message.
    """

    what: str
    period_hours: float
    periods: int
    tolerance_hours: float
    setting: str

    @property
    def window_hours(self) -> float:
        """The span that must be covered, back from now."""
        return self.period_hours * self.periods


@dataclass(frozen=True)
class Gap:
    """Two neighbouring backups and the hours between them."""

    before: str
    after: str
    hours: float


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _age(obj: BackupObject, now: datetime) -> float:
    return _hours(now - obj.taken_at)


def check_newest(catalogue: Catalogue, what: str, limit_hours: float, setting: str, now: datetime) -> Evidence:
    """The newest backup is at most ``limit_hours`` old.

    Raises:
        CheckFailed: names the newest key, its age and the limit.
    """
    newest = catalogue.newest()
    age = _age(newest, now)
    if age > limit_hours:
        raise CheckFailed(
            f"newest {what} {newest.key} is {age:.1f} h old, more than the {limit_hours:g} h allowed ({setting})"
        )
    return Evidence(f"newest {what} age", newest.key, round(age, 2), limit_hours, "h", catalogue.timeline()[-5:])


def check_gaps(
    catalogue: Catalogue, what: str, limit_hours: float, window_hours: float, setting: str, now: datetime
) -> Evidence:
    """No two neighbouring backups of the last ``window_hours`` are more than ``limit_hours`` apart.

    The backup just before the window is included, so a gap straddling the window's start counts.

    Raises:
        CheckFailed: names the widest gap's two keys, its hours, the limit and how many gaps break it.
    """
    start = now - timedelta(hours=window_hours)
    objects = catalogue.objects
    first = max((i for i, obj in enumerate(objects) if obj.taken_at < start), default=0)
    gaps = [
        Gap(a.key, b.key, round(_hours(b.taken_at - a.taken_at), 2))
        for a, b in zip(objects[first:], objects[first + 1 :], strict=False)
    ]
    too_long = [gap for gap in gaps if gap.hours > limit_hours]
    widest = max(gaps, key=lambda gap: gap.hours, default=None)
    if too_long:
        worst = max(too_long, key=lambda gap: gap.hours)
        raise CheckFailed(
            f"{worst.hours:.1f} h between {what} {worst.before} and the next, {worst.after}, more than the "
            f"{limit_hours:g} h allowed ({setting}); {len(too_long)} such gap(s) in the last "
            f"{window_hours / 24:g} days"
        )
    return Evidence(
        f"{what} gaps", catalogue.location, widest.hours if widest else 0.0, limit_hours, "h",
        [{"before": gap.before, "after": gap.after, "hours": gap.hours} for gap in gaps],
    )  # fmt: skip


def check_reach(
    catalogue: Catalogue, what: str, window_hours: float, slack_hours: float, setting: str, now: datetime
) -> Evidence:
    """The backups reach back over the whole window: the oldest is at least ``window - slack`` hours old.

    Raises:
        CheckFailed: names the oldest key and its age in days.
    """
    oldest = catalogue.objects[0]
    age = _age(oldest, now)
    if age < window_hours - slack_hours:
        raise CheckFailed(
            f"oldest {what} {oldest.key} is {age / 24:.1f} days old: the last {window_hours / 24:g} days are not "
            f"covered ({setting})"
        )
    return Evidence(f"{what} coverage", oldest.key, round(age / 24, 2), window_hours / 24, "days")


def check_max_age(catalogue: Catalogue, what: str, limit_hours: float, setting: str, now: datetime) -> Evidence:
    """Nothing older than ``limit_hours`` is still stored (retention is enforced, not just hoped for).

    Raises:
        CheckFailed: names the oldest offending key, its age in days and how many such objects remain.
    """
    expired = [obj for obj in catalogue.objects if _age(obj, now) > limit_hours]
    oldest = catalogue.objects[0]
    if expired:
        raise CheckFailed(
            f"{what} {oldest.key} is {_age(oldest, now) / 24:.1f} days old, beyond the {limit_hours / 24:g} days "
            f"kept ({setting}); {len(expired)} such object(s) still stored"
        )
    return Evidence(f"{what} retention", oldest.key, round(_age(oldest, now) / 24, 2), limit_hours / 24, "days")


def check_count(catalogue: Catalogue, what: str, keep: int, setting: str, now: datetime) -> Evidence:
    """No more than ``keep`` backups are stored (the plan's "keep N": nothing beyond the policy).

    Raises:
        CheckFailed: names how many are kept, the limit, and the oldest key with its age in days.
    """
    count = len(catalogue.objects)
    oldest = catalogue.objects[0]
    if count > keep:
        raise CheckFailed(
            f"{what}: {count} kept, more than the {keep} the plan keeps ({setting}); the oldest, {oldest.key}, "
            f"is {_age(oldest, now) / 24:.1f} days old"
        )
    return Evidence(f"{what} count", catalogue.location, count, keep, "count", catalogue.timeline())


def check_schedule(catalogue: Catalogue, schedule: Schedule, now: datetime) -> Evidence:
    """A backup for each of the last ``periods`` periods: newest recent, no missed period, reaching back.

    Raises:
        CheckFailed: from whichever rule breaks first: newest age, a gap (a missed period), or coverage.
    """
    late = schedule.period_hours + schedule.tolerance_hours
    newest = check_newest(catalogue, schedule.what, late, schedule.setting, now)
    gaps = check_gaps(catalogue, schedule.what, late, schedule.window_hours, schedule.setting, now)
    slack = schedule.period_hours + schedule.tolerance_hours
    reach = check_reach(catalogue, schedule.what, schedule.window_hours, slack, schedule.setting, now)
    return Evidence(
        f"{schedule.what} schedule", catalogue.location, {"newest_h": newest.measured, "widest_gap_h": gaps.measured,
                                                          "oldest_days": reach.measured},
        {"period_h": schedule.period_hours, "periods": schedule.periods, "tolerance_h": schedule.tolerance_hours},
        "", catalogue.timeline(),
    )  # fmt: skip
