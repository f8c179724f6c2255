"""A physical base backup: ``pg_basebackup`` with its backup manifest, stored under the daily or weekly prefix.

A logical dump restores a database; a base backup restores the whole cluster and is the starting point of
point-in-time recovery, which is why the plan keeps both. ``pg_basebackup`` writes its tar files to a
temporary directory (it cannot stream several files into one pipe; the WAL needed for consistency goes to
``pg_wal.tar.gz`` beside ``base.tar.gz``); each is then streamed to storage and the
directory is removed whatever happens. The backup manifest with SHA-256 checksums lets ``pg_verifybackup``
prove a downloaded copy is complete. The manifest beside ``base.tar.gz`` records the sha256 and size of every
other file (its ``companions``) and how many bytes each tarball expands to, so a restore verifies everything
it downloads and caps what it unpacks (:mod:`harness.restore.tarball`).
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from harness.backup.postgres import libpq_target
from harness.backup.store import backup_time, put_manifest
from harness.errors import HarnessError
from harness.restore.tarball import expanded_size
from harness.services.base import label_dir, run_tool
from harness.storage.manifest import BackupManifest, Companion, format_timestamp
from harness.storage.signing import ManifestSigner
from harness.storage.upload import upload_file

__all__ = ["BASE_ARCHIVE", "backup_base"]

log = logging.getLogger("harness.backup.base")

BASE_ARCHIVE = "base.tar.gz"
"""The archive the base backup's manifest describes (``<folder>/base.tar.gz.manifest.json``)."""


def backup_base(
    dsn: str,
    client: Any,
    bucket: str,
    prefix: str,
    *,
    pg_basebackup: Path,
    taken_at: datetime | None = None,
    compression: str = "gzip",
    work_dir: Path | None = None,
    timeout_s: float = 6 * 3600.0,
    signer: ManifestSigner | None = None,
) -> BackupManifest:
    """Take a base backup of the cluster at ``dsn`` and store it under ``<prefix><ts>/``.

    The source needs ``wal_level = replica`` (or higher), a free WAL sender and a ``replication`` line in
    ``pg_hba.conf`` for the connecting user.

    Args:
        dsn: libpq URL or conninfo of the cluster (any database; the whole cluster is copied).
        client: a boto3 S3 client.
        bucket: the backup bucket.
        prefix: ``postgres/base/daily/`` or ``postgres/base/weekly/``.
        pg_basebackup: the ``pg_basebackup`` program.
        taken_at: the time the folder and the manifest carry (default now).
        compression: ``pg_basebackup --compress`` for the tar files (gzip, as the ``.tar.gz`` names say).
        work_dir: where the temporary copy goes (default the system temp directory); needs room for it.
        timeout_s: deadline for ``pg_basebackup``.
        signer: signs the manifest (``[backup] signing_key_env``); ``None`` stores it unsigned.

    Returns:
        The manifest of ``base.tar.gz`` as stored.

    Raises:
        HarnessError: the cluster refused, ``pg_basebackup`` failed, or storage refused a write.
    """
    moment = backup_time(taken_at)
    folder = f"{prefix}{format_timestamp(moment)}/"
    conninfo, password_env = libpq_target(dsn)
    try:
        with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
            version_row = conn.execute("SELECT current_setting('server_version')").fetchone()
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the cluster to back up: {str(exc).strip().splitlines()[0]}") from None
    assert version_row is not None
    scratch = label_dir("base-backup", work_dir)  # labelled: a killed backup's copy is swept like a drill's
    try:
        target = scratch / "backup"
        run_tool(
            [pg_basebackup, f"--dbname={conninfo}", "-D", target, "--format=tar", f"--compress={compression}",
             "--wal-method=stream", "--manifest-checksums=SHA256", "--checkpoint=fast", "--no-password"],
            what="pg_basebackup",
            timeout=timeout_s,
            env=password_env,
        )  # fmt: skip
        files = sorted(target.iterdir())
        expanded = {path.name: expanded_size(path) for path in files if path.name.endswith(".tar.gz")}
        stored = {path.name: upload_file(client, bucket, f"{folder}{path.name}", path) for path in files}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    archive = stored.get(BASE_ARCHIVE)
    if archive is None:
        raise HarnessError(f"pg_basebackup wrote no {BASE_ARCHIVE} (got {', '.join(stored)}); is --compress gzip?")
    manifest = BackupManifest(
        kind="base",
        key=archive.key,
        taken_at=moment,
        format="tar",
        compression=compression,
        sha256=archive.sha256,
        size=archive.size,
        server_version=str(version_row[0]),
        expanded=expanded[BASE_ARCHIVE],
        companions={
            name: Companion(sha256=got.sha256, size=got.size, expanded=expanded.get(name))
            for name, got in stored.items()
            if name != BASE_ARCHIVE
        },
    )
    manifest = put_manifest(client, bucket, manifest, signer)
    log.info("base backup s3://%s/%s: %s", bucket, folder, ", ".join(f"{n} {r.size} B" for n, r in stored.items()))
    return manifest
