"""What every backup kind shares: keys carrying their UTC time and manifests beside objects."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.errors import HarnessError
from harness.storage.manifest import BackupManifest, format_timestamp, manifest_key
from harness.storage.signing import ManifestSigner

__all__ = ["backup_time", "put_manifest", "timestamped_key"]

log = logging.getLogger("harness.backup.store")


def backup_time(taken_at: datetime | None) -> datetime:
    """The backup's time in UTC, to the second (keys carry seconds); ``None`` means now."""
    moment = taken_at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise HarnessError(f"backup time {moment.isoformat()} has no time zone; pass an aware UTC datetime")
    return moment.astimezone(UTC).replace(microsecond=0)


def timestamped_key(prefix: str, taken_at: datetime, suffix: str, name: str) -> str:
    """``<prefix><name>-<YYYYmmddTHHMMSSZ><suffix>``, the key layout of the storage contract.

    ``name`` is the target's (:meth:`harness.config.DrillConfig.backup_key_name`); the catalogue reads keys
    by their timestamp only, so a target may rename its backups without losing its history.
    """
    return f"{prefix}{name}-{format_timestamp(taken_at)}{suffix}"


def put_manifest(
    client: Any, bucket: str, manifest: BackupManifest, signer: ManifestSigner | None = None
) -> BackupManifest:
    """Store ``manifest`` beside its object, signed by ``signer`` when given; return it as stored.

    Raises:
        HarnessError: storage refused the write.
    """
    if signer is not None:
        manifest = signer.sign(manifest)
    key = manifest_key(manifest.key)
    if signer is None:
        log.warning("s3://%s/%s: manifest stored unsigned ([backup] signing_key_env is not set); a drill that "
                    "verifies manifests will refuse it", bucket, key)  # fmt: skip
    try:
        client.put_object(Bucket=bucket, Key=key, Body=manifest.to_json(), ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise HarnessError(f"s3://{bucket}/{key}: cannot store manifest: {exc}") from None
    return manifest
