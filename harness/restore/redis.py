"""Restore the newest Redis RDB copy into a throwaway Redis.

The plan copies Redis backup files off-server daily; a copy that does not load, or loads without the keys
that were saved, would lose the command and audit data the plan keeps in Redis. The restored server is
switched to ``appendonly yes`` (rewriting its AOF from memory) so the app's deep health accepts it. Its keys
are compared with the copy's manifest apart (:mod:`harness.integrity.redis_keys`), so a short copy fails its
own scenario while the app can still start.
"""

from __future__ import annotations

import logging

import redis

from harness.deployment import Deployment
from harness.errors import CheckFailed, ServiceError
from harness.restore.staging import fetch_verified
from harness.services.base import label_dir, remove_dir, wait_until
from harness.services.provider import Provider
from harness.services.redis import RedisServer
from harness.storage.manifest import BackupManifest

__all__ = ["restore_redis"]

log = logging.getLogger("harness.restore")


def _rewriting(client: redis.Redis) -> bool:
    info = client.info("persistence")
    return bool(info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"])


def restore_redis(
    provider: Provider, deployment: Deployment, copy: BackupManifest, *, name: str = "staging"
) -> RedisServer:
    """Download (verified) and load an RDB copy into a new throwaway Redis with ``appendonly yes``.

    Raises:
        CheckFailed: the file's size or hash differ from the copy's manifest, or loading it needs more memory
            than ``[restore] redis_memory_mb`` (a crafted RDB expands a few MB into gigabytes).
        ServiceError: Redis refused to load the file (its log quoted), or its AOF rewrite did not finish.
    """
    directory = label_dir("rdb")
    limit_mb = deployment.config.restore.redis_memory_mb
    try:
        got = fetch_verified(deployment, copy, directory)
        server = provider.redis(name, rdb_file=got.path, memory_limit=limit_mb * 2**20)
    except ServiceError as exc:
        if "memory" not in str(exc).lower():
            raise
        raise CheckFailed(f"{copy.key}: loading it takes more than [restore] redis_memory_mb = {limit_mb} "
                          f"(a {copy.size}-byte copy): {exc}") from None  # fmt: skip
    finally:
        remove_dir(directory)
    try:
        with server.client() as client:
            client.config_set("appendonly", "yes")
            # A server stopped during its first AOF rewrite hangs on shutdown; let the rewrite finish.
            wait_until(lambda: not _rewriting(client), timeout=60, what=f"AOF rewrite of Redis {name}")
    except (redis.RedisError, ServiceError):
        server.stop()
        raise
    log.info("restored %s into Redis %s", copy.key, name)
    return server
