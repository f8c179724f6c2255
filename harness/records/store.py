"""The drill records' copy off the drill machine: write-once objects under a prefix of the backup storage.

The local chain proves nothing against whoever can rewrite the whole directory (delete the newest record and
rewrite ``HEAD``, or re-seal every record). At the end of each drill the record's files (JSON, Markdown, chart,
Allure list) are therefore copied to ``[reports] storage_prefix`` in the bucket ``[reports] storage_bucket``
(default: the backup bucket), locked in S3 Object Lock *compliance* mode for ``[reports] retention_days`` where
the bucket has Object Lock enabled: no one, root included, can delete or overwrite them before that date.
``records verify`` then compares the local chain with the stored copy, file by file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.config import DrillConfig
from harness.errors import HarnessError
from harness.records.chain import ALLURE_SUFFIX
from harness.records.trend import TREND_SUFFIX

__all__ = ["RecordStore"]


def _error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class RecordStore:
    """Where the records are kept off the machine: a bucket, a prefix, and how long each copy is locked."""

    client: Any
    bucket: str
    prefix: str
    retention_days: int

    @classmethod
    def from_config(cls, config: DrillConfig, client: Any) -> RecordStore | None:
        """The store ``[reports]`` configures, or ``None`` when ``storage_prefix`` is empty (no copy kept)."""
        reports = config.reports
        if not reports.storage_prefix:
            return None
        bucket = reports.storage_bucket or config.backup_bucket()
        return cls(client, bucket, reports.storage_prefix, reports.retention_days)

    @property
    def where(self) -> str:
        """``s3://bucket/prefix``, for messages."""
        return f"s3://{self.bucket}/{self.prefix}"

    def write_once(self) -> bool:
        """Whether the bucket has Object Lock enabled (then every copy is locked in compliance mode).

        Raises:
            HarnessError: the bucket cannot be reached.
        """
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
                return False
            raise HarnessError(f"{self.where}: cannot read the bucket's Object Lock setting: {_error(exc)}") from None
        except BotoCoreError as exc:
            raise HarnessError(f"{self.where}: cannot reach the records storage: {_error(exc)}") from None
        return bool(answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")

    def keep(self, paths: list[Path]) -> str:
        """Copy each file under the prefix (locked when the bucket supports it); one line saying what was kept.

        Raises:
            HarnessError: the storage refused or could not be reached; the record is then not kept off the machine.
        """
        locked = self.write_once()
        until = datetime.now(UTC) + timedelta(days=self.retention_days)
        lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until} if locked else {}
        for path in paths:
            try:
                self.client.put_object(Bucket=self.bucket, Key=self.prefix + path.name, Body=path.read_bytes(),
                                       ChecksumAlgorithm="SHA256", **lock)  # fmt: skip
            except (BotoCoreError, ClientError) as exc:
                raise HarnessError(f"{self.where}{path.name}: not copied off the machine: {_error(exc)}") from None
        mode = f"write-once until {until:%Y-%m-%d} (Object Lock, compliance mode)" if locked else (
            "NOT write-once: the bucket has no Object Lock"
        )  # fmt: skip
        return f"{len(paths)} files kept at {self.where} ({mode})"

    def digests(self) -> dict[str, str]:
        """The sha256 of every stored file under the prefix, by file name, as first written.

        The oldest version of each key is read: it is the one locked when the record was kept, so a newer
        version put over it (a versioned bucket accepts one) or a delete marker cannot stand in for it.

        Raises:
            HarnessError: the storage cannot be listed or read.
        """
        first: dict[str, str] = {}
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for version in page.get("Versions", []):  # newest first per key: the last one seen is the oldest
                    first[version["Key"]] = version["VersionId"]
            found = {}
            for key, version_id in first.items():
                body = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"].read()
                found[key[len(self.prefix) :]] = hashlib.sha256(body).hexdigest()
        except (BotoCoreError, ClientError) as exc:
            raise HarnessError(f"{self.where}: cannot read the stored drill records: {_error(exc)}") from None
        return found

    def compare(self, directory: Path, local: list[Path]) -> str:
        """The first file that differs between the local records and the stored copy, as one line ("" if none).

        Files are taken in chain order, each record's JSON before the files it covers. A file the stored copy
        holds but the directory lacks was removed here; one that differs was altered or re-sealed here; a local
        file the stored copy lacks was never kept off the machine.
        """
        stored = self.digests()
        here = {path.name: path for path in local}
        for name in sorted(set(stored) | set(here), key=_chain_order):
            path = here.get(name, directory / name)
            if name not in here:
                return f"{path}: missing: removed here, but the stored copy at {self.where} holds it"
            if name not in stored:
                return f"{path}: not in the stored copy at {self.where} (never kept off the machine, or added here)"
            if hashlib.sha256(path.read_bytes()).hexdigest() != stored[name]:
                return f"{path}: altered or re-sealed here: it differs from the stored copy at {self.where}"
        return ""


def _chain_order(name: str) -> tuple[str, bool]:
    """A stored file's record stem, then the record's JSON before the files it covers."""
    stem = name
    for suffix in (ALLURE_SUFFIX, TREND_SUFFIX, ".json", ".md"):
        stem = stem.removesuffix(suffix)
    return stem, not name.endswith(".json")
