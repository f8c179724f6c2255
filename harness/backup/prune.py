"""Retention: delete what the plan no longer asks to keep, and nothing else.

The plan keeps 14 days of logical dumps, 7 daily and 4 weekly base backups, and daily Redis copies; keeping
more costs money, keeping less breaks the recovery point the drill promises. Time-based rules allow
``retention_grace_hours`` so a dump taken a little late is not deleted a cycle early. The newest backup of
each kind is never deleted, whatever its age: if backups stopped, pruning must not erase the last one left.
Each object goes with its manifest (and a dump with its globals); a base backup goes as a whole folder
(archive, WAL, backup manifest).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from harness.backup.base import BASE_ARCHIVE
from harness.config import DrillConfig
from harness.errors import HarnessError
from harness.storage.catalogue import BackupObject, Catalogue, list_backups, storage_errors
from harness.storage.manifest import GLOBALS_SUFFIX

__all__ = ["prune"]

log = logging.getLogger("harness.backup.prune")


def _catalogue(client: Any, bucket: str, prefix: str, config: DrillConfig, suffix: str = "") -> Catalogue | None:
    """The backups under ``prefix``, or ``None`` when it holds nothing (nothing to prune is not an error)."""
    with storage_errors(client, f"s3://{bucket}/{prefix}"):
        if not client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0):
            return None
    storage = config.storage
    return list_backups(client, bucket, prefix, storage.timestamp_pattern, storage.timestamp_format, suffix=suffix)


def _older_than(catalogue: Catalogue | None, cutoff: datetime) -> list[BackupObject]:
    if catalogue is None:
        return []
    return [obj for obj in catalogue.objects[:-1] if obj.taken_at < cutoff]


def _beyond_count(catalogue: Catalogue | None, keep: int) -> list[BackupObject]:
    if catalogue is None:
        return []
    return list(catalogue.objects[: max(len(catalogue.objects) - max(keep, 1), 0)])


def _with_manifests(catalogue: Catalogue | None, objects: Iterable[BackupObject]) -> list[str]:
    keys: list[str] = []
    for obj in objects:
        keys.append(obj.key)
        if catalogue is not None and (manifest := catalogue.manifest_for(obj)) is not None:
            keys.append(manifest)
        if catalogue is not None and obj.key + GLOBALS_SUFFIX in catalogue.companions:
            keys.append(obj.key + GLOBALS_SUFFIX)
    return keys


def _folders(client: Any, bucket: str, objects: Iterable[BackupObject]) -> list[str]:
    """Every key in the folders of these base backups (archive, WAL, backup manifest, our manifest)."""
    keys: list[str] = []
    for obj in objects:
        folder = obj.key.rsplit("/", 1)[0] + "/"
        with storage_errors(client, f"s3://{bucket}/{folder}"):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
                keys.extend(str(item["Key"]) for item in page.get("Contents", ()))
    return keys


def prune(client: Any, bucket: str, config: DrillConfig, *, now: datetime, dry_run: bool = False) -> list[str]:
    """Delete (or with ``dry_run`` only list) the backups the retention rules no longer keep.

    Args:
        client: a boto3 S3 client.
        bucket: the backup bucket.
        config: prefixes, key pattern and the objectives (retention days and grace, snapshot counts).
        now: the time ages are measured from.
        dry_run: list what would go without deleting.

    Returns:
        The keys removed (or that would be removed), sorted.

    Raises:
        HarnessError: storage refused the listing or a deletion, or a key carries no timestamp.
    """
    storage, objectives = config.storage, config.objectives
    cutoff = now - timedelta(days=objectives.retention_days, hours=objectives.retention_grace_hours)
    doomed: list[str] = []
    # Each database of [[databases]] keeps its own newest dump, under its own prefix.
    logical = [config.for_database(name).storage.logical_prefix for name in config.database_names()]
    for prefix in (*logical, storage.redis_prefix):
        catalogue = _catalogue(client, bucket, prefix, config)
        doomed += _with_manifests(catalogue, _older_than(catalogue, cutoff))
    for prefix, keep in ((storage.base_daily_prefix, objectives.daily_snapshots),
                         (storage.base_weekly_prefix, objectives.weekly_snapshots)):  # fmt: skip
        catalogue = _catalogue(client, bucket, prefix, config, suffix=BASE_ARCHIVE)
        doomed += _folders(client, bucket, _beyond_count(catalogue, keep))
    doomed = sorted(set(doomed))
    log.info("prune s3://%s: %d object(s) %s", bucket, len(doomed), "would go (dry run)" if dry_run else "removed")
    if not dry_run:
        for start in range(0, len(doomed), 1000):
            batch = [{"Key": key} for key in doomed[start : start + 1000]]
            with storage_errors(client, f"s3://{bucket}"):
                answer = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            if errors := answer.get("Errors"):
                first = errors[0]
                raise HarnessError(
                    f"s3://{bucket}/{first['Key']}: not deleted ({first.get('Code')}: {first.get('Message', '')}); "
                    f"{len(errors)} key(s) of this batch failed"
                )
    return doomed
