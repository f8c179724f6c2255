"""The Redis copy against a real throwaway Redis and S3."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from harness.backup.redis import backup_redis
from harness.errors import HarnessError
from harness.services.redis import RedisServer
from harness.services.s3 import MotoS3


@pytest.fixture
def bucket(s3_server: MotoS3) -> tuple[Any, str]:
    """A fresh bucket on the session's moto, with its client."""
    client = s3_server.client()
    name = f"r-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return client, name


def test_copy_after_bgsave_carries_key_count_and_hash(redis_server: RedisServer, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    with redis_server.client() as rd:
        rd.flushall()
        rd.mset({f"session:{i}": "x" for i in range(37)})
        rd.select(1)  # type: ignore[no-untyped-call]
        rd.set("other-db", "1")
    first = backup_redis(redis_server.url, client, name, "redis/rdb/", wait_timeout=10)
    with redis_server.client() as rd:
        rd.set("session:late", "x")
    second = backup_redis(redis_server.url, client, name, "redis/rdb/", wait_timeout=10)
    assert first.keys == 37 + 1
    assert second.keys == 37 + 2, "a second copy in the same second must wait for its own save"
    body = client.get_object(Bucket=name, Key=second.key)["Body"].read()
    assert body[:5] == b"REDIS"
    assert hashlib.sha256(body).hexdigest() == second.sha256
    assert len(body) == second.size


def test_no_rdb_file_is_said_clearly(redis_factory: Callable[..., RedisServer], s3_server: MotoS3) -> None:
    never_saved = redis_factory(save="")
    with pytest.raises(HarnessError, match=r"RDB file .*dump\.rdb is not readable here; run `backup redis` on"):
        backup_redis(never_saved.url, s3_server.client(), "unused", "redis/rdb/", bgsave=False)


def test_the_key_count_is_the_files_not_the_live_servers(redis_server: RedisServer, bucket: tuple[Any, str]) -> None:
    """Writes after the save must not enter the manifest: the restore loads the file, not the live server."""
    client, name = bucket
    with redis_server.client() as rd:
        rd.flushall()
        rd.mset({f"order:{i}": "x" for i in range(10)})
    backup_redis(redis_server.url, client, name, "redis/rdb/", wait_timeout=10)
    with redis_server.client() as rd:
        rd.set("order:after-the-save", "x")
        assert rd.dbsize() == 11
    copy = backup_redis(redis_server.url, client, name, "redis/rdb/", bgsave=False)
    assert copy.keys == 10
