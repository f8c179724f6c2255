"""Base backups: daily and weekly snapshots as the policy keeps them, the newest proved with ``pg_verifybackup``.

A daily snapshot for each of the last N days, a weekly one for each of the last M weeks, nothing beyond.

``pg_verifybackup`` of PostgreSQL 18 can read a tar-format backup directly, but then it cannot parse WAL
(``pg_waldump`` does not read tar files; it demands ``--no-parse-wal``), and a base backup without the WAL
it needs does not restore. So the newest backup is downloaded, ``base.tar.gz`` extracted to a plain data
directory with ``pg_wal.tar.gz`` extracted into its ``pg_wal/`` and ``backup_manifest`` beside it, and
verified as a plain backup: every file's checksum and the WAL from the backup's start to its end.

The tarballs are the bucket's, so they are unpacked by the harness's own reader
(:func:`harness.restore.tarball.unpack`), as the physical restore does, never by ``tarfile``: its
``filter="data"`` has had escapes, and the Pythons before 3.11.4 (Debian 12's ``python3`` is 3.11.2) lack it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config import Objectives
from harness.errors import CheckFailed, ServiceError
from harness.policy.evidence import Evidence
from harness.policy.timeline import Schedule, check_count, check_schedule
from harness.restore.tarball import expanded_size, unpack
from harness.services.base import label_dir, remove_dir, run_tool
from harness.storage.catalogue import BackupObject, Catalogue, fetch_manifest
from harness.storage.download import download_object, verify_against
from harness.storage.signing import ManifestTrust

__all__ = [
    "check_daily_snapshots",
    "check_snapshots_kept",
    "check_weekly_snapshots",
    "verify_base_backup",
]

_WAL_ARCHIVE = "pg_wal.tar.gz"
_BACKUP_MANIFEST = "backup_manifest"


def check_daily_snapshots(catalogue: Catalogue, objectives: Objectives, now: datetime | None = None) -> Evidence:
    """A daily base backup for each of the last ``daily_snapshots`` days (late by at most the grace).

    Raises:
        CheckFailed: the newest is over a day (plus grace) old, a day was missed, or the days are not covered.
    """
    schedule = Schedule("daily base backup", 24.0, objectives.daily_snapshots, objectives.retention_grace_hours,
                        f"objectives.daily_snapshots = {objectives.daily_snapshots}")  # fmt: skip
    return check_schedule(catalogue, schedule, now or datetime.now(UTC))


def check_weekly_snapshots(catalogue: Catalogue, objectives: Objectives, now: datetime | None = None) -> Evidence:
    """A weekly base backup for each of the last ``weekly_snapshots`` weeks (late by at most the grace).

    Raises:
        CheckFailed: the newest is over a week (plus grace) old, a week was missed, or the weeks are not covered.
    """
    schedule = Schedule("weekly base backup", 7 * 24.0, objectives.weekly_snapshots, objectives.retention_grace_hours,
                        f"objectives.weekly_snapshots = {objectives.weekly_snapshots}")  # fmt: skip
    return check_schedule(catalogue, schedule, now or datetime.now(UTC))


def check_snapshots_kept(
    daily: Catalogue, weekly: Catalogue, objectives: Objectives, now: datetime | None = None
) -> list[Evidence]:
    """No more daily and weekly base backups are stored than the policy keeps.

    Raises:
        CheckFailed: names the kind, how many are kept, the limit and the oldest extra.
    """
    moment = now or datetime.now(UTC)
    return [
        check_count(daily, "daily base backup", objectives.daily_snapshots, "objectives.daily_snapshots", moment),
        check_count(weekly, "weekly base backup", objectives.weekly_snapshots, "objectives.weekly_snapshots", moment),
    ]


def _companion(catalogue: Catalogue, obj: BackupObject, name: str) -> str:
    key = catalogue.companion(obj, name)
    if key is None:
        raise CheckFailed(f"base backup {obj.key} has no {name} beside it; it cannot be verified or restored")
    return key


def _extract(archive: Path, into: Path, key: str, declared: int | None) -> None:
    """Unpack ``archive`` (the object ``key``) into ``into``, capped at the expanded size its manifest declares.

    Without a manifest the stream's own size is read first (decompressed, nothing written), so the cap holds
    what is there and a full disk is still one line naming the directory.
    """
    into.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        size = expanded_size(archive) if declared is None else declared
    except (OSError, EOFError) as exc:
        raise CheckFailed(f"{key}: not a valid gzip stream: {exc}") from None
    unpack(archive, into, what=key, declared=size)


def verify_base_backup(
    client: Any,
    catalogues: Sequence[Catalogue],
    pg_verifybackup: Path,
    *,
    work_dir: Path | None = None,
    timeout_s: float = 1800.0,
    trust: ManifestTrust | None = None,
) -> Evidence:
    """Download the newest base backup of ``catalogues`` (daily and weekly) and prove it complete.

    ``pg_verifybackup`` checks every file against the backup manifest and parses the WAL it needs. Its
    ``base.tar.gz`` is also compared with its manifest (size and sha256) when one is stored beside it.

    Raises:
        CheckFailed: a companion file is missing, the archive differs from its manifest, cannot be extracted,
            or ``pg_verifybackup`` reports an error (its last line is quoted).
        HarnessError: storage cannot be read or the disk is full.
    """
    catalogue, obj = max(((c, c.newest()) for c in catalogues), key=lambda pair: pair[1].taken_at)
    scratch = label_dir("verifybackup", work_dir)
    try:
        wal_key = _companion(catalogue, obj, _WAL_ARCHIVE)
        manifest_key = _companion(catalogue, obj, _BACKUP_MANIFEST)
        downloads = scratch / "downloads"
        downloads.mkdir()
        base = download_object(client, catalogue.bucket, obj.key, downloads)
        manifest = None
        if catalogue.manifest_for(obj) is not None:
            manifest = fetch_manifest(client, catalogue.bucket, obj, trust)
            verify_against(base, manifest)
        wal = download_object(client, catalogue.bucket, wal_key, downloads)
        backup_manifest = download_object(client, catalogue.bucket, manifest_key, downloads)
        data = scratch / "data"
        wal_declared = manifest.companions.get(_WAL_ARCHIVE) if manifest is not None else None
        _extract(base.path, data, obj.key, manifest.expanded if manifest is not None else None)
        _extract(wal.path, data / "pg_wal", wal_key, wal_declared.expanded if wal_declared is not None else None)
        shutil.copyfile(backup_manifest.path, data / _BACKUP_MANIFEST)
        base.path.unlink()
        try:
            result = run_tool([pg_verifybackup, data], what=f"pg_verifybackup of {obj.key}", timeout=timeout_s)
        except ServiceError as exc:  # the tool ran and refused the backup: a broken rule, not a broken setup
            raise CheckFailed(str(exc)) from None
    finally:
        remove_dir(scratch)
    output = result.stdout.decode(errors="replace").strip()
    files = [base.evidence(), wal.evidence(), backup_manifest.evidence()]
    return Evidence("newest base backup verified", obj.key, output, "backup successfully verified", "",
                    {"files": files, "output": output})  # fmt: skip
