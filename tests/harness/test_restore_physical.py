"""The newest base backup and Redis copy of the sandbox world restore into throwaway servers; broken copies fail.

The Redis copy's broken worlds keep a valid signature (signed with the world's key, as a faulty backup host
would): only the comparison of the restored keys with the manifest can catch them.
"""

from __future__ import annotations

import re

import pytest

from harness.backup.store import put_manifest
from harness.deployment import Deployment
from harness.errors import CheckFailed
from harness.integrity import KeyComparison, compare_keyspace, observe_keyspace
from harness.restore.base import restore_base
from harness.restore.redis import restore_redis
from harness.restore.select import newest_backup
from harness.services.provider import Provider
from harness.storage.manifest import BackupManifest, manifest_key
from sandbox.breakage import redis_key_renamed, redis_sample_differs
from sandbox.world import HEARTBEAT_KEY, Mutation, VariantContext, World


def _newest(deployment: Deployment, prefixes: list[str], suffix: str) -> BackupManifest:
    _, manifest = newest_backup(deployment, prefixes, suffix=suffix)
    assert manifest is not None
    return manifest


def test_the_newest_base_backup_restores_and_reaches_consistency(provider: Provider, deployment: Deployment) -> None:
    storage = deployment.config.storage
    backup = _newest(deployment, [storage.base_daily_prefix, storage.base_weekly_prefix], "base.tar.gz")
    restored = restore_base(provider, deployment, backup, deployment.config.database.critical_tables)
    try:
        assert restored.cluster_state == "in production"
        assert restored.counts["orders"] > 0
        assert "backup successfully verified" in restored.verify_log
    finally:
        restored.postgres.stop()
    assert not restored.postgres.workdir.exists()


def _restored_keys(provider: Provider, deployment: Deployment, name: str) -> tuple[BackupManifest, KeyComparison]:
    """The newest Redis copy of ``deployment`` restored and compared with its manifest; the server stopped."""
    copy = _newest(deployment, [deployment.config.storage.redis_prefix], ".rdb")
    server = restore_redis(provider, deployment, copy, name=name)
    try:
        with server.client() as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
        return copy, compare_keyspace(copy, observe_keyspace(server, copy.sample))
    finally:
        server.stop()


def test_the_newest_redis_copy_restores_with_its_sampled_keys_and_counts(
    provider: Provider, deployment: Deployment
) -> None:
    copy, comparison = _restored_keys(provider, deployment, "staging")
    comparison.check()
    assert copy.sample is not None
    assert {entry.type for entry in copy.sample.keys} == {"string", "list", "hash", "set", "zset", "stream"}
    assert HEARTBEAT_KEY in {entry.key for entry in copy.sample.keys}
    assert copy.sample.expiring["string"] > 0, "sessions and counters expire: counted, never sampled"
    sampled = len(copy.sample.keys)
    assert (comparison.evidence["keys sampled"], comparison.evidence["sampled keys matched"]) == (sampled, sampled)


def test_a_copy_without_a_sample_is_compared_by_count_and_says_so(provider: Provider, world: World) -> None:
    def old_manifest_with_more_keys(ctx: VariantContext) -> None:
        prefix = ctx.world.config.storage.redis_prefix
        newest = max(k["Key"] for k in ctx.client.list_objects_v2(Bucket=ctx.bucket, Prefix=prefix)["Contents"]
                     if k["Key"].endswith(".rdb"))  # fmt: skip
        raw = ctx.client.get_object(Bucket=ctx.bucket, Key=manifest_key(newest))["Body"].read()
        manifest = BackupManifest.model_validate_json(raw)
        patched = manifest.model_copy(update={"keys": (manifest.keys or 0) + 5, "sample": None})
        put_manifest(ctx.client, ctx.bucket, patched, ctx.world.manifest_signer)  # a faulty backup host signs it

    copy, comparison = _restored_keys(provider, world.variant("redis keys", old_manifest_with_more_keys), "fewer")
    assert comparison.basis == "keys compared by count only: the manifest has no sample"
    assert comparison.advice.startswith(f"{copy.key}: its manifest has no key sample, so only the key count was ")
    with pytest.raises(
        CheckFailed, match=rf"^{copy.key}: restored Redis holds {(copy.keys or 0) - 5} keys, manifest {copy.keys}$"
    ):
        comparison.check()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            redis_sample_differs(HEARTBEAT_KEY, digest="0" * 64),
            f"key '{HEARTBEAT_KEY}' (string) holds another value after restore than the one the copy's manifest "
            "digested",
        ),
        (
            redis_sample_differs("codeblack:config:cache", type="set"),
            "key 'codeblack:config:cache' is a set in the copy's manifest but a hash after restore",
        ),
    ],
)
def test_a_sampled_key_whose_value_or_type_differs_fails_naming_it(
    provider: Provider, world: World, change: Mutation, expected: str
) -> None:
    copy, comparison = _restored_keys(provider, world.variant("redis sample", change), "differs")
    with pytest.raises(CheckFailed, match=f"^{re.escape(f'{copy.key}: {expected}')}$"):
        comparison.check()
    sampled = comparison.evidence["keys sampled"]
    assert comparison.evidence["sampled keys matched"] == sampled - 1


def test_a_copy_with_a_sampled_key_renamed_fails_though_its_count_holds(provider: Provider, world: World) -> None:
    renamed = world.variant("redis renamed", redis_key_renamed("codeblack:events", "codeblack:events:renamed"))
    copy, comparison = _restored_keys(provider, renamed, "renamed")
    with pytest.raises(CheckFailed, match=rf"^{re.escape(copy.key)}: key 'codeblack:events' sampled in the copy's "
                       r"manifest is missing after restore$"):  # fmt: skip
        comparison.check()
