"""Redis persistence against live throwaway servers, and RDB copies (real and corrupt) in moto."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.backup.redis import backup_redis
from harness.config import Objectives
from harness.errors import CheckFailed, HarnessError
from harness.policy.redis_persistence import (
    check_aof,
    check_rdb_snapshots,
    check_redis_copies,
    read_persistence,
    verify_rdb_copy,
)
from harness.services.redis import find_redis_check_rdb
from harness.storage.catalogue import list_backups
from harness.storage.manifest import format_timestamp
from tests.harness.test_catalogue import _put_many, bucket_fixture  # noqa: F401 - the bucket fixture
from tests.ports import closed_port

PREFIX = "redis/rdb/"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_the_plans_persistence_passes(redis_server: Any) -> None:
    state = read_persistence(redis_server.url)
    assert check_aof(state).measured == "yes"
    assert check_rdb_snapshots(state, 24).unit == "h since last save"
    assert state.as_dict()["info"]["rdb_last_bgsave_status"] == "ok"


def test_appendonly_no_and_no_save_rules_fail(redis_factory: Callable[..., Any]) -> None:
    server = redis_factory(appendonly="no")
    state = read_persistence(server.url)
    where = f"127.0.0.1:{server.port}"
    with pytest.raises(CheckFailed) as caught:
        check_aof(state)
    assert str(caught.value) == f"Redis {where}: appendonly is 'no'; the plan requires appendonly yes"
    with pytest.raises(CheckFailed) as caught:
        check_rdb_snapshots(state, 24)
    assert str(caught.value) == (
        f"Redis {where}: save is empty (no RDB snapshot rules); the plan enables RDB snapshots"
    )


def test_an_old_last_save_fails_with_its_age(redis_server: Any) -> None:
    state = read_persistence(redis_server.url)
    saved = datetime.fromtimestamp(int(state.info["rdb_last_save_time"]), UTC)
    with pytest.raises(CheckFailed) as caught:
        check_rdb_snapshots(state, 24, now=saved + timedelta(hours=30))
    assert str(caught.value) == (
        f"Redis 127.0.0.1:{redis_server.port}: last RDB save was 30.0 h ago ({saved:%Y-%m-%dT%H:%M:%SZ}), more "
        "than the 24 h allowed (objectives.max_rdb_save_age_hours)"
    )


def test_an_unreachable_redis_is_one_line() -> None:
    with closed_port() as port, pytest.raises(HarnessError, match=rf"^cannot reach Redis 127.0.0.1:{port}: "):
        read_persistence(f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(HarnessError, match=r"^no live Redis to check: set redis.url_env"):
        read_persistence(None)


def _copy_key(age_days: float) -> str:
    return f"{PREFIX}codeblack-{format_timestamp(NOW - timedelta(days=age_days))}.rdb"


def test_no_redis_copy_yesterday_fails(s3_server: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    _put_many(s3_server, name, [_copy_key(0.5 + day) for day in range(14)])
    assert check_redis_copies(list_backups(client, name, PREFIX), Objectives(), NOW).measured["widest_gap_h"] == 24
    client.delete_object(Bucket=name, Key=_copy_key(1.5))
    with pytest.raises(CheckFailed) as caught:
        check_redis_copies(list_backups(client, name, PREFIX), Objectives(), NOW)
    assert str(caught.value) == (
        f"48.0 h between Redis RDB copy {_copy_key(2.5)} and the next, {_copy_key(0.5)}, more than the 30 h "
        "allowed (objectives.redis_copy_days = 7); 1 such gap(s) in the last 7 days"
    )


def test_the_newest_copy_passes_redis_check_rdb_unless_corrupt(redis_server: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    tool = find_redis_check_rdb()
    backup_redis(redis_server.url, client, name, PREFIX, taken_at=NOW - timedelta(days=1), wait_timeout=30)
    assert verify_rdb_copy(client, list_backups(client, name, PREFIX), tool).measured == "OK"
    client.put_object(Bucket=name, Key=_copy_key(0), Body=b"REDIS0009\xfa\x09redis-ver")  # an aux field cut short
    with pytest.raises(CheckFailed) as caught:
        verify_rdb_copy(client, list_backups(client, name, PREFIX), tool)
    assert (
        str(caught.value)
        == f"Redis RDB copy {_copy_key(0)} fails redis-check-rdb: [offset 20] Unexpected EOF reading RDB file"
    )
