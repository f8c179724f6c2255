"""A Redis copy: trigger ``BGSAVE``, wait for it, and stream the RDB file off-server with its manifest.

The plan keeps ``appendonly yes`` for durability on the server, but the file worth copying off-server is the
RDB snapshot: one compact, self-contained file that a throwaway Redis loads at start. The copy is taken right
after a save this function asked for, so its age is known. The file is copied aside first (a later save
replaces it), and the manifest records the key count of that copy as ``redis-check-rdb`` reads it, the count
the drill compares with after loading it; the live server's count would race with every later write.

Beyond the count, the copy itself is loaded into a throwaway Redis on this host and surveyed
(:func:`harness.integrity.redis_keys.survey_keyspace`): its keys per type, with and without an expiry, and a
sample of keys without one (type, size, value digest) go into the signed manifest, so the drill can tell a
copy whose keys were renamed, retyped or overwritten from one that restored whole. That throwaway needs as much
memory as the copy's data (capped by ``[restore] redis_memory_mb``); ``sample_keys = 0`` (``[backup]
redis_sample_keys``) skips it, and the drill then compares counts only and says so.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from harness.backup.store import backup_time, put_manifest, timestamped_key
from harness.errors import HarnessError, ServiceError
from harness.integrity.redis_keys import survey_keyspace
from harness.services.base import label_dir, remove_dir, wait_until
from harness.services.redis import LocalRedis, count_rdb_keys, find_redis_check_rdb
from harness.storage.manifest import BackupManifest, KeyspaceSample
from harness.storage.signing import ManifestSigner
from harness.storage.upload import upload_file

__all__ = ["backup_redis"]

log = logging.getLogger("harness.backup.redis")


def _saves(info: dict[str, Any]) -> tuple[int, int]:
    """A save counter that moves with every completed save (``rdb_saves`` is 7.0+; LASTSAVE before that)."""
    return int(info.get("rdb_saves", 0)), int(info["rdb_last_save_time"])


def _trigger_save(client: redis.Redis, wait_timeout: float, where: str) -> None:
    before = _saves(client.info("persistence"))
    try:
        client.bgsave()
    except redis.ResponseError as exc:
        if "in progress" not in str(exc):
            raise HarnessError(f"{where}: BGSAVE refused: {exc}") from None
    state: dict[str, Any] = {}

    def saved() -> bool:
        state.update(client.info("persistence"))
        return int(state["rdb_bgsave_in_progress"]) == 0 and _saves(state) != before

    wait_until(saved, timeout=wait_timeout, what=f"BGSAVE on {where}", interval=0.02)
    if state.get("rdb_last_bgsave_status") != "ok":
        raise HarnessError(f"{where}: BGSAVE failed (rdb_last_bgsave_status {state.get('rdb_last_bgsave_status')})")


def _survey(copy: Path, sample_keys: int, redis_server: str, memory_mb: int, where: str) -> KeyspaceSample | None:
    """The copy's keyspace, read from a throwaway Redis that loads the copy (never from the live server).

    The throwaway runs on the Redis host beside production, so its address space is capped (``[restore]
    redis_memory_mb``, the cap a restore of the copy has too). A copy that cannot be loaded or read within it
    is still stored: losing a backup to its verification would be worse. Its manifest then counts keys only,
    the log says why, and the drill says it compared counts only.
    """
    try:
        server = LocalRedis.create("copy-survey", rdb_file=copy, executable=redis_server, timeout=300,
                                   memory_limit=memory_mb * 2**20)  # fmt: skip
    except ServiceError as exc:
        log.warning("%s: the copy's keys were not sampled, its manifest counts them only: %s (raise [restore] "
                    "redis_memory_mb, or set [backup] redis_sample_keys = 0)", where, exc)  # fmt: skip
        return None
    try:
        return survey_keyspace(server, sample_keys)
    except redis.RedisError as exc:
        log.warning("%s: the copy's keys were not sampled, its manifest counts them only: %s", where, exc)
        return None
    finally:
        server.stop()


def backup_redis(
    redis_url: str,
    client: Any,
    bucket: str,
    prefix: str,
    *,
    bgsave: bool = True,
    wait_timeout: float = 600.0,
    taken_at: datetime | None = None,
    redis_check_rdb: Path | None = None,
    key_name: str = "backup",
    signer: ManifestSigner | None = None,
    sample_keys: int = 256,
    redis_server: str = "",
    sample_memory_mb: int = 4096,
) -> BackupManifest:
    """Copy the Redis at ``redis_url``'s RDB file to ``<prefix><key_name>-<ts>.rdb`` with its manifest.

    The file is read from the directory Redis reports (``CONFIG GET dir``), so this runs on the Redis host.

    Args:
        redis_url: the live Redis (only BGSAVE is asked of it; no key is written).
        client: a boto3 S3 client.
        bucket: the backup bucket.
        prefix: the Redis prefix, e.g. ``redis/rdb/``.
        bgsave: trigger a save and wait for it first; without it the newest existing RDB is copied.
        wait_timeout: deadline for the save.
        taken_at: the time the key and the manifest carry (default now).
        redis_check_rdb: the tool that counts the copy's keys (default: beside ``redis-server`` or on PATH).
        key_name: the name in the key (the target's: :meth:`harness.config.DrillConfig.backup_key_name`).
        signer: signs the manifest (``[backup] signing_key_env``); ``None`` stores it unsigned.
        sample_keys: how many keys without an expiry to sample (``[backup] redis_sample_keys``); 0: counts only.
        redis_server: the ``redis-server`` that loads the copy to sample it (default: on PATH).
        sample_memory_mb: the address space of that throwaway (``[restore] redis_memory_mb``).

    Returns:
        The manifest as stored.

    Raises:
        HarnessError: Redis cannot be reached, the save failed or timed out, or the RDB file is unreadable.
    """
    moment = backup_time(taken_at)
    where = "Redis " + redis_url.rsplit("@", 1)[-1]
    try:
        with redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5, decode_responses=True) as r:
            if bgsave:
                _trigger_save(r, wait_timeout, where)
            directory = r.config_get("dir")["dir"]
            filename = r.config_get("dbfilename")["dbfilename"]
    except redis.RedisError as exc:
        raise HarnessError(f"{where}: {exc}") from None
    rdb = Path(directory) / filename
    if not rdb.is_file():
        raise HarnessError(
            f"{where}: RDB file {rdb} is not readable here; run `backup redis` on the Redis host "
            "(or mount its data directory) and make sure a save has happened"
        )
    key = timestamped_key(prefix, moment, ".rdb", key_name)
    work = label_dir("redis-copy")
    try:
        copy = work / filename
        try:
            shutil.copyfile(rdb, copy)  # streamed; the server's next save may replace the original meanwhile
        except OSError as exc:
            raise HarnessError(f"{where}: cannot copy RDB file {rdb}: {exc.strerror}") from None
        keys = count_rdb_keys(copy, redis_check_rdb or find_redis_check_rdb(redis_server))
        sample = _survey(copy, sample_keys, redis_server, sample_memory_mb, where) if sample_keys else None
        stored = upload_file(client, bucket, key, copy)
    finally:
        remove_dir(work)
    manifest = BackupManifest(
        kind="redis",
        key=key,
        taken_at=moment,
        format="rdb",
        sha256=stored.sha256,
        size=stored.size,
        keys=keys,
        sample=sample,
    )
    manifest = put_manifest(client, bucket, manifest, signer)
    sampled = f", {len(sample.keys)} sampled" if sample is not None else ", none sampled"
    log.info("redis copy s3://%s/%s: %d bytes, %d keys%s", bucket, key, stored.size, keys, sampled)
    return manifest
