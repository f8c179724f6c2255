"""The newest full backup checkpoint a destructive migration could be undone from.

The plan asks for "a full backup checkpoint before apply": the newest logical dump or daily base backup in the
backup catalogue, whichever is newer, found through :mod:`harness.storage.catalogue` (read only).
"""

from __future__ import annotations

from harness.deployment import Deployment
from harness.errors import HarnessError
from harness.migrations.destructive import Checkpoint
from harness.storage.catalogue import list_backups

__all__ = ["newest_checkpoint"]

_NO_BACKUPS = "no backups under"


def newest_checkpoint(deployment: Deployment) -> Checkpoint | None:
    """The newest logical dump or base backup of the deployment, or ``None`` when storage holds neither.

    Raises:
        HarnessError: storage cannot be listed (an empty prefix is not an error: it is no checkpoint).
    """
    storage = deployment.config.storage
    client = deployment.storage.client()
    found: list[Checkpoint] = []
    for prefix, suffix in ((storage.logical_prefix, ".dump"), (storage.base_daily_prefix, "base.tar.gz")):
        try:
            catalogue = list_backups(
                client,
                deployment.backup_bucket,
                prefix,
                storage.timestamp_pattern,
                storage.timestamp_format,
                suffix=suffix,
                strict=False,
            )
        except HarnessError as exc:
            if str(exc).startswith(_NO_BACKUPS):
                continue
            raise
        newest = catalogue.newest()
        found.append(Checkpoint(f"s3://{deployment.backup_bucket}/{newest.key}", newest.taken_at))
    return max(found, key=lambda checkpoint: checkpoint.taken_at, default=None)
