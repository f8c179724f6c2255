"""The Redis copy against a real throwaway Redis and S3: its key count and the sample of its keys."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.backup.redis import backup_redis
from harness.errors import CheckFailed, HarnessError
from harness.integrity import compare_keyspace, observe_keyspace
from harness.integrity.redis_keys import MAX_DIGESTED_BYTES
from harness.services.redis import LocalRedis, RedisServer
from harness.services.s3 import MotoS3
from harness.storage.manifest import MAX_KEY_COUNT, BackupManifest, parse_manifest


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


def _every_type(rd: redis.Redis) -> None:
    """Keys of every sampled type, a binary value, a key that expires and one in another database."""
    rd.flushall()
    rd.set("session:42", "user-7")
    rd.set("blob", bytes(range(256)))
    rd.hset("config:cache", mapping={"b": "2", "a": "1"})
    rd.sadd("blacklist", "device-1", "device-2")
    rd.zadd("offenders", {"203.0.113.1": 3.25, "203.0.113.2": 1e-7})
    rd.rpush("audit", "first", "second")
    rd.xadd("events", {"event": "sync", "at": "now"})
    rd.set("ratelimit:203.0.113.9", 5, ex=3600)
    rd.select(1)  # type: ignore[no-untyped-call]
    rd.set("other-db", "1")


def test_the_copy_s_manifest_samples_every_type_but_keys_that_expire(
    redis_server: RedisServer, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """The sample is read from the copy; restored from the copy, the same keys compare equal."""
    client, name = bucket
    copy = _copy_of(redis_server, bucket)
    with redis_server.client() as rd:
        rd.set("session:42", "changed after the save")  # the live server moves on; the copy does not
    sample = copy.sample
    assert sample is not None
    assert sample.persistent == {"string": 3, "hash": 1, "set": 1, "zset": 1, "list": 1, "stream": 1}
    assert sample.expiring == {"string": 1}
    assert sorted((k.db, k.key, k.type) for k in sample.keys) == [
        (0, "audit", "list"), (0, "blacklist", "set"), (0, "blob", "string"), (0, "config:cache", "hash"),
        (0, "events", "stream"), (0, "offenders", "zset"), (0, "session:42", "string"), (1, "other-db", "string"),
    ]  # fmt: skip
    restored = _restored(client, name, copy, tmp_path)
    try:
        comparison = compare_keyspace(copy, observe_keyspace(restored, sample))
    finally:
        restored.stop()
    comparison.check()
    assert comparison.evidence["keys sampled"] == comparison.evidence["sampled keys matched"] == 8
    assert comparison.basis.startswith("8 of 8 sampled keys matched type, size and value digest")
    assert "user-7" not in repr(comparison.evidence), "values never reach the evidence"


def _one_key(rd: redis.Redis) -> None:
    rd.flushall()
    rd.set("one", "1")


def _copy_of(
    redis_server: RedisServer,
    bucket: tuple[Any, str],
    fill: Callable[[redis.Redis], None] = _every_type,
    **options: Any,
) -> BackupManifest:
    """A copy of the Redis ``fill`` wrote (default: a key of every type), backed up with ``options``."""
    client, name = bucket
    with redis_server.client() as rd:
        fill(rd)
    return backup_redis(redis_server.url, client, name, "redis/rdb/", wait_timeout=10, **options)


def test_sampling_can_be_turned_off(redis_server: RedisServer, bucket: tuple[Any, str]) -> None:
    copy = _copy_of(redis_server, bucket, _one_key, sample_keys=0)
    assert (copy.keys, copy.sample) == (1, None)


def test_the_sample_is_capped_spread_and_the_same_for_the_same_copy(
    redis_server: RedisServer, bucket: tuple[Any, str]
) -> None:
    client, name = bucket
    with redis_server.client() as rd:
        rd.flushall()
        rd.mset({f"order:{i:04d}": str(i) for i in range(300)})
    first = backup_redis(redis_server.url, client, name, "redis/rdb/", wait_timeout=10, sample_keys=16)
    second = backup_redis(redis_server.url, client, name, "redis/rdb/", bgsave=False, sample_keys=16)
    assert first.sample is not None
    assert second.sample is not None
    assert first.sample.keys == second.sample.keys
    picked = sorted(int(k.key.split(":")[1]) for k in first.sample.keys)
    assert len(picked) == 16
    assert picked[0] < 100, "spread over the key space, not the first keys SCAN meets"
    assert picked[-1] > 200


def _restored(client: Any, bucket: str, copy: BackupManifest, directory: Path) -> LocalRedis:
    rdb = directory / "copy.rdb"
    rdb.write_bytes(client.get_object(Bucket=bucket, Key=copy.key)["Body"].read())
    return LocalRedis.create("sample-check", rdb_file=rdb)


ANOTHER = "holds another value after restore than the one the copy's manifest digested"


@pytest.mark.parametrize(
    ("differ", "expected"),
    [
        (
            lambda rd: rd.rpush("audit", "3"),
            "key 'audit' (list) holds 3 elements after restore, 2 in the copy's manifest",
        ),
        (lambda rd: rd.expire("blob", 60), "key 'blob' has an expiry after restore but none in the copy's manifest"),
        (lambda rd: rd.hset("config:cache", "a", "9"), f"key 'config:cache' (hash) {ANOTHER}"),
        (lambda rd: rd.zadd("offenders", {"203.0.113.1": 3.5}), f"key 'offenders' (zset) {ANOTHER}"),
        (
            lambda rd: rd.set("unsampled", "x"),
            "restored Redis holds 4 string keys without an expiry, the copy's manifest 3",
        ),
        (
            lambda rd: rd.set("late", "x", ex=60),
            "restored Redis holds 2 string keys with an expiry, more than the 1 of the copy's manifest",
        ),
        (lambda rd: rd.delete("ratelimit:203.0.113.9"), ""),  # a key with an expiry may expire before the restore
        (
            lambda rd: rd.rename("session:42", "session:43"),
            "key 'session:42' sampled in the copy's manifest is missing after restore",
        ),
    ],
)
def test_each_difference_from_the_copy_s_manifest_fails_in_one_line(
    redis_server: RedisServer, bucket: tuple[Any, str], tmp_path: Path, differ: Callable[[redis.Redis], Any],
    expected: str,
) -> None:  # fmt: skip
    """The restored server is changed before it is read, as a copy that differs from its manifest would load."""
    client, name = bucket
    copy = _copy_of(redis_server, bucket, sample_keys=8)
    restored = _restored(client, name, copy, tmp_path)
    try:
        with restored.client() as rd:
            differ(rd)
        comparison = compare_keyspace(copy, observe_keyspace(restored, copy.sample))
    finally:
        restored.stop()
    if not expected:
        comparison.check()
        return
    with pytest.raises(CheckFailed, match=f"^{re.escape(f'{copy.key}: {expected}')}$"):
        comparison.check()


def test_a_hostile_key_name_is_escaped_and_cut_in_the_message(
    redis_server: RedisServer, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, name = bucket
    hostile = "\x1b[2J" + "k" * 200
    with redis_server.client() as rd:
        rd.flushall()
        rd.hset(hostile, "secret-field", "secret-value")
    copy = backup_redis(redis_server.url, client, name, "redis/rdb/", wait_timeout=10)
    restored = _restored(client, name, copy, tmp_path)
    try:
        with restored.client() as rd:
            rd.delete(hostile)
            rd.set(hostile, "x")
        comparison = compare_keyspace(copy, observe_keyspace(restored, copy.sample))
    finally:
        restored.stop()
    shown = repr(hostile[:80]) + "… (204 characters)"
    with pytest.raises(CheckFailed) as failed:
        comparison.check()
    assert str(failed.value) == f"{copy.key}: key {shown} is a hash in the copy's manifest but a string after restore"
    assert "\x1b" not in str(failed.value)
    assert "secret" not in str(failed.value) + repr(comparison.evidence)


def test_a_sampled_key_whose_elements_grew_huge_is_not_read_whole(
    redis_server: RedisServer, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """A sample's size counts elements: the same two elements, 40 MB each, take more than a key may to be read."""
    client, name = bucket
    copy = _copy_of(redis_server, bucket)
    restored = _restored(client, name, copy, tmp_path)
    try:
        with restored.client() as rd:
            rd.delete("audit")
            rd.rpush("audit", "f" * 40 * 2**20, "s" * 40 * 2**20)
        seen = observe_keyspace(restored, copy.sample)
        comparison = compare_keyspace(copy, seen)
    finally:
        restored.stop()
    assert copy.sample is not None
    [audit] = [key for entry, key in zip(copy.sample.keys, seen.sampled, strict=True) if entry.key == "audit"]
    assert (audit.size, audit.digest) == (2, None)
    with pytest.raises(CheckFailed, match=rf"^{re.escape(copy.key)}: key 'audit' \(list\) takes \d+ bytes after "
                       rf"restore, more than the {MAX_DIGESTED_BYTES} a sampled key may \(the backup samples none that "
                       r"large\); it was not read$"):  # fmt: skip
        comparison.check()


def test_a_key_of_few_but_large_elements_is_not_sampled(redis_server: RedisServer, bucket: tuple[Any, str]) -> None:
    """What the backup samples, a restored Redis of another version holds within what the drill reads whole."""
    client, name = bucket
    with redis_server.client() as rd:
        rd.flushall()
        rd.rpush("large", "a" * 9 * 2**20, "b" * 9 * 2**20)
        rd.rpush("small", "a", "b")
    copy = backup_redis(redis_server.url, client, name, "redis/rdb/", wait_timeout=10)
    assert copy.sample is not None
    assert [key.key for key in copy.sample.keys] == ["small"]
    assert copy.sample.persistent == {"list": 2}


def test_a_copy_too_large_to_sample_on_the_host_is_stored_counted_only_and_said_so(
    redis_server: RedisServer, bucket: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The survey's throwaway runs beside production within a memory cap; beyond it the backup still happens."""
    client, name = bucket
    copy = _copy_of(redis_server, bucket, _one_key, sample_memory_mb=1)
    assert (copy.keys, copy.sample) == (1, None)
    assert client.head_object(Bucket=name, Key=copy.key)["ContentLength"] == copy.size
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "not sampled" in r.getMessage()]
    assert warning.startswith(f"Redis 127.0.0.1:{redis_server.port}/0: the copy's keys were not sampled, its manifest ")
    assert warning.endswith("(raise [restore] redis_memory_mb, or set [backup] redis_sample_keys = 0)")
    assert redis_server.password not in caplog.text


@pytest.mark.parametrize("field", ["keys", "sample.persistent.string"])
def test_a_key_count_beyond_what_redis_can_hold_is_refused_in_one_short_line(field: str) -> None:
    """JSON allows a number of thousands of digits; quoted in a mismatch it would be a line as long."""
    document: dict[str, Any] = {"kind": "redis", "key": "redis/rdb/x.rdb", "taken_at": "2026-01-01T00:00:00Z",
                                "format": "rdb", "sha256": "0" * 64, "size": 1, "keys": 1,
                                "sample": {"persistent": {"string": 1}, "expiring": {}, "keys": []}}  # fmt: skip
    name = field.rsplit(".", 1)[-1]
    raw = json.dumps(document).replace(f'"{name}": 1', f'"{name}": {"9" * 4000}')
    with pytest.raises(HarnessError) as refused:
        parse_manifest(raw.encode(), where="x.manifest.json")
    assert str(refused.value) == (
        f"x.manifest.json: malformed manifest: {field}: Input should be less than or equal to {MAX_KEY_COUNT}"
    )
