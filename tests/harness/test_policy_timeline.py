"""Schedule rules over crafted timelines in a real (moto) bucket: dumps, daily and weekly snapshots."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.config import Objectives
from harness.errors import CheckFailed
from harness.policy.logical import check_dump_gaps, check_dump_retention, check_newest_dump
from harness.policy.snapshots import check_daily_snapshots, check_snapshots_kept, check_weekly_snapshots
from harness.storage.catalogue import Catalogue, list_backups
from harness.storage.manifest import format_timestamp
from tests.harness.test_catalogue import _put_many, bucket_fixture  # noqa: F401 - the bucket fixture

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
PLAN = Objectives()
LOGICAL = "postgres/logical/"


def _dump_key(age_hours: float) -> str:
    return f"{LOGICAL}codeblack-{format_timestamp(NOW - timedelta(hours=age_hours))}.dump"


def _dumps(s3_server: Any, bucket: tuple[Any, str], ages: list[float]) -> Catalogue:
    client, name = bucket
    _put_many(s3_server, name, [_dump_key(age) for age in ages])
    return list_backups(client, name, LOGICAL)


def _every_six_hours(first: float = 1, count: int = 56) -> list[float]:
    return [first + 6 * i for i in range(count)]


def test_a_healthy_dump_timeline_passes(s3_server: Any, bucket: tuple[Any, str]) -> None:
    catalogue = _dumps(s3_server, bucket, _every_six_hours())
    assert check_newest_dump(catalogue, PLAN, NOW).measured == 1.0
    assert check_dump_gaps(catalogue, PLAN, NOW).measured == 6.0
    coverage, retention = check_dump_retention(catalogue, PLAN, NOW)
    assert (coverage.measured, retention.limit) == (13.79, 14.25)


_NINE_HOUR_GAP = [age for age in _every_six_hours() if age < 48] + [age + 3 for age in _every_six_hours() if age >= 48]


@pytest.mark.parametrize(
    ("ages", "check", "message"),
    [
        pytest.param(
            _every_six_hours(first=13), check_newest_dump,
            f"newest logical backup {_dump_key(13)} is 13.0 h old, more than the 6 h allowed "
            "(objectives.dump_interval_hours)",
            id="stale newest dump",
        ),
        pytest.param(
            _NINE_HOUR_GAP, check_dump_gaps,
            f"9.0 h between logical backup {_dump_key(52)} and the next, {_dump_key(43)}, more than the 6 h allowed "
            "(objectives.dump_interval_hours); 1 such gap(s) in the last 14 days",
            id="a 9 h gap",
        ),
        pytest.param(
            [*_every_six_hours(), 15 * 24], check_dump_retention,
            f"logical backup {_dump_key(15 * 24)} is 15.0 days old, beyond the 14.25 days kept "
            "(objectives.retention_days + retention_grace_hours); 1 such object(s) still stored",
            id="a dump older than retention kept",
        ),
        pytest.param(
            _every_six_hours(count=41), check_dump_retention,
            f"oldest logical backup {_dump_key(241)} is 10.0 days old: the last 14 days are not covered "
            "(objectives.retention_days)",
            id="dumps reach back only 10 days",
        ),
    ],
)  # fmt: skip
def test_a_broken_dump_timeline_fails_naming_the_dump_and_number(
    s3_server: Any, bucket: tuple[Any, str], ages: list[float], check: Callable[..., Any], message: str
) -> None:
    catalogue = _dumps(s3_server, bucket, ages)
    with pytest.raises(CheckFailed) as caught:
        check(catalogue, PLAN, NOW)
    assert str(caught.value) == message


def _snapshots(s3_server: Any, bucket: tuple[Any, str], kind: str, ages_days: list[float]) -> Catalogue:
    client, name = bucket
    folders = [f"postgres/base/{kind}/{format_timestamp(NOW - timedelta(days=age))}/" for age in ages_days]
    _put_many(s3_server, name, [folder + file for folder in folders for file in ("base.tar.gz", "pg_wal.tar.gz")])
    return list_backups(client, name, f"postgres/base/{kind}/", suffix="base.tar.gz")


def _daily_key(age_days: float) -> str:
    return f"postgres/base/daily/{format_timestamp(NOW - timedelta(days=age_days))}/base.tar.gz"


def test_a_week_of_daily_and_a_month_of_weekly_snapshots_pass(s3_server: Any, bucket: tuple[Any, str]) -> None:
    daily = _snapshots(s3_server, bucket, "daily", [0.5 + day for day in range(7)])
    weekly = _snapshots(s3_server, bucket, "weekly", [2 + 7 * week for week in range(4)])
    assert check_daily_snapshots(daily, PLAN, NOW).measured == {"newest_h": 12.0, "widest_gap_h": 24.0,
                                                                "oldest_days": 6.5}  # fmt: skip
    assert check_weekly_snapshots(weekly, PLAN, NOW).measured["oldest_days"] == 23.0
    assert [evidence.measured for evidence in check_snapshots_kept(daily, weekly, PLAN, NOW)] == [7, 4]


def test_a_missing_day_of_snapshots_fails(s3_server: Any, bucket: tuple[Any, str]) -> None:
    daily = _snapshots(s3_server, bucket, "daily", [0.5, 2.5, 3.5, 4.5, 5.5, 6.5])
    with pytest.raises(CheckFailed) as caught:
        check_daily_snapshots(daily, PLAN, NOW)
    assert str(caught.value) == (
        f"48.0 h between daily base backup {_daily_key(2.5)} and the next, {_daily_key(0.5)}, more than the 30 h "
        "allowed (objectives.daily_snapshots = 7); 1 such gap(s) in the last 7 days"
    )


def test_snapshots_beyond_the_policy_fail(s3_server: Any, bucket: tuple[Any, str]) -> None:
    daily = _snapshots(s3_server, bucket, "daily", [0.5 + day for day in range(9)])
    weekly = _snapshots(s3_server, bucket, "weekly", [2.0])
    with pytest.raises(CheckFailed) as caught:
        check_snapshots_kept(daily, weekly, PLAN, NOW)
    assert str(caught.value) == (
        f"daily base backup: 9 kept, more than the 7 the plan keeps (objectives.daily_snapshots); the oldest, "
        f"{_daily_key(8.5)}, is 8.5 days old"
    )


def test_a_missing_week_fails_on_the_weekly_schedule(s3_server: Any, bucket: tuple[Any, str]) -> None:
    weekly = _snapshots(s3_server, bucket, "weekly", [2.0, 9.0, 16.0])
    with pytest.raises(CheckFailed) as caught:
        check_weekly_snapshots(weekly, PLAN, NOW)
    assert str(caught.value) == (
        f"oldest weekly base backup {_daily_key(16).replace('daily', 'weekly')} is 16.0 days old: the last 28 days "
        "are not covered (objectives.weekly_snapshots = 4)"
    )
