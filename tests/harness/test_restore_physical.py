"""The newest base backup and Redis copy of the sandbox world restore into throwaway servers; broken copies fail."""

from __future__ import annotations

import pytest

from harness.backup.store import put_manifest
from harness.deployment import Deployment
from harness.errors import CheckFailed
from harness.restore.base import restore_base
from harness.restore.redis import check_key_count, restore_redis
from harness.restore.select import newest_backup
from harness.services.provider import Provider
from harness.storage.manifest import BackupManifest, manifest_key
from sandbox.world import VariantContext, World


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


def test_the_newest_redis_copy_restores_with_its_key_count(provider: Provider, deployment: Deployment) -> None:
    copy = _newest(deployment, [deployment.config.storage.redis_prefix], ".rdb")
    server = restore_redis(provider, deployment, copy)
    try:
        assert check_key_count(server, copy) == copy.keys
        with server.client() as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        server.stop()


def test_a_redis_copy_with_fewer_keys_than_its_manifest_fails(provider: Provider, world: World) -> None:
    prefix = world.config.storage.redis_prefix

    def more_keys_in_manifest(ctx: VariantContext) -> None:
        newest = max(k["Key"] for k in ctx.client.list_objects_v2(Bucket=ctx.bucket, Prefix=prefix)["Contents"]
                     if k["Key"].endswith(".rdb"))  # fmt: skip
        raw = ctx.client.get_object(Bucket=ctx.bucket, Key=manifest_key(newest))["Body"].read()
        manifest = BackupManifest.model_validate_json(raw)
        patched = manifest.model_copy(update={"keys": (manifest.keys or 0) + 5})
        put_manifest(ctx.client, ctx.bucket, patched, ctx.world.manifest_signer)  # a faulty backup host signs it

    broken = world.variant("redis keys", more_keys_in_manifest)
    copy = _newest(broken, [prefix], ".rdb")
    server = restore_redis(provider, broken, copy, name="fewer")
    try:
        with pytest.raises(
            CheckFailed, match=rf"^{copy.key}: restored Redis holds {(copy.keys or 0) - 5} keys, manifest {copy.keys}$"
        ):
            check_key_count(server, copy)
    finally:
        server.stop()
