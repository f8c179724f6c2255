"""Physical restore of the newest base backup: unpack, start, reach consistency.

A logical dump proves the data; a base backup proves the cluster can be brought back as it was, files and
all, which is the faster path for a large database. The drill downloads ``base.tar.gz``, ``pg_wal.tar.gz``
and PostgreSQL's own ``backup_manifest``, each refused unless its size and sha256 are the ones the manifest
beside ``base.tar.gz`` records; unpacks the data directory with the WAL into ``pg_wal`` through
:mod:`harness.restore.tarball` (its own member checks, capped at the expanded sizes the manifest declares);
replaces the backup's configuration with the harness's (:mod:`harness.restore.cluster_config`); lets
``pg_verifybackup``, run as the service user, check every other file against ``backup_manifest``; and starts a
throwaway server on it. PostgreSQL replays the WAL from the backup's checkpoint; the server only accepts
connections once it is consistent, and ``pg_control`` must then say "in production".

Everything in the bucket is untrusted: a backup whose manifest predates companion hashes is refused, as is
every tarball member that is not a plain file or directory below the data directory.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from harness.backup.base import BASE_ARCHIVE
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.restore.cluster_config import SESSION_OPTIONS, WRITTEN, restored_settings, take_over_config
from harness.restore.staging import fetch_verified
from harness.restore.tarball import size_cap, unpack
from harness.services.base import give_to_service_user, label_dir, remove_dir, run_tool
from harness.services.postgres import LocalPostgres
from harness.services.provider import Provider
from harness.storage.catalogue import storage_errors
from harness.storage.manifest import BackupManifest, Companion

__all__ = ["BaseRestore", "restore_base"]

log = logging.getLogger("harness.restore")

WAL_ARCHIVE = "pg_wal.tar.gz"
COMPANIONS = (WAL_ARCHIVE, "backup_manifest")


@dataclass
class BaseRestore:
    """A throwaway server running on a restored base backup, and what proved it consistent."""

    postgres: LocalPostgres
    backup: BackupManifest
    cluster_state: str
    verify_log: str
    counts: dict[str, int]

    def evidence(self) -> dict[str, Any]:
        """What the report attaches."""
        return {"key": self.backup.key, "taken_at": self.backup.taken_at.isoformat(), "size": self.backup.size,
                "sha256": self.backup.sha256, "pg_control": self.cluster_state, "row_counts": self.counts}  # fmt: skip


def _declared(backup: BackupManifest, folder: str) -> tuple[int, dict[str, Companion]]:
    """The expanded size of ``base.tar.gz`` and the companions its manifest records, or a one-line refusal."""
    companions = {name: backup.companions.get(name) for name in COMPANIONS}
    wal = companions[WAL_ARCHIVE]
    if backup.expanded is None or wal is None or wal.expanded is None or companions["backup_manifest"] is None:
        raise CheckFailed(
            f"{folder}/: base backup predates companion hashes (its manifest records no sha256 for "
            f"{' and '.join(COMPANIONS)}, or no expanded sizes), so it cannot be verified; take a new base backup"
        )
    others = sorted(set(backup.companions) - set(COMPANIONS))
    if any(name.endswith(".tar.gz") for name in others):
        raise CheckFailed(f"{folder}/: has tablespace archives ({', '.join(others)}); tablespaces are not supported "
                          "(the drill restores only the main data directory)")  # fmt: skip
    return backup.expanded, {name: found for name, found in companions.items() if found is not None}


def _fetch(deployment: Deployment, described: BackupManifest, directory: Path) -> None:
    """Download one file of the backup, refused unless its size and sha256 are the manifest's.

    The size is compared before the download too, so an oversized object never reaches the disk.
    """
    client = deployment.storage.client()
    with storage_errors(client, f"cannot read s3://{deployment.backup_bucket}/{described.key}"):
        stored = int(client.head_object(Bucket=deployment.backup_bucket, Key=described.key)["ContentLength"])
    if stored != described.size:
        raise CheckFailed(f"{described.key}: size {stored} bytes differs from the manifest's {described.size} bytes")
    fetch_verified(deployment, described, directory)


def _fetch_companion(
    deployment: Deployment, backup: BackupManifest, name: str, declared: Companion, directory: Path
) -> None:
    folder = backup.key.rsplit("/", 1)[0]
    described = backup.model_copy(update={"key": f"{folder}/{name}", "sha256": declared.sha256, "size": declared.size})
    try:
        _fetch(deployment, described, directory)
    except HarnessError as exc:
        raise HarnessError(f"base backup {folder}/ lacks {name}: {exc}") from None


def _fits(work: Path, folder: str, needed: int) -> None:
    """Refuse up front a backup whose declared sizes (downloads plus capped expansion) exceed the free disk."""
    free = shutil.disk_usage(work).free
    if needed > free:
        raise HarnessError(f"base backup {folder}/ needs {needed} bytes on disk as its manifest declares it, only "
                           f"{free} are free in {work}; free space there")  # fmt: skip


def _cluster_state(server: LocalPostgres) -> str:
    out = run_tool([server.binaries.tool("pg_controldata"), server.data_dir], what="pg_controldata", timeout=30)
    for line in out.stdout.decode(errors="replace").splitlines():
        if line.startswith("Database cluster state:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def restore_base(
    provider: Provider, deployment: Deployment, backup: BackupManifest, tables: list[str], *, name: str = "base"
) -> BaseRestore:
    """Restore ``backup`` (a ``base.tar.gz`` manifest) into a new throwaway server and prove it consistent.

    Raises:
        CheckFailed: the manifest predates companion hashes; a file differs from its manifest; a tarball member
            breaks :mod:`harness.restore.tarball`'s rules or the expansion passes its cap; the backup has
            tablespaces; ``pg_verifybackup`` fails; the started cluster is not "in production" or cannot count
            ``tables``. Always one line naming the object (and the member).
        HarnessError: a companion file is missing; the disk cannot hold what the manifest declares; the server
            did not start (its log quoted).
        ConfigError: ``[database] name`` is not set.
    """
    dbname = deployment.config.database_name()
    folder = backup.key.rsplit("/", 1)[0]
    expanded, companions = _declared(backup, folder)
    wal = companions[WAL_ARCHIVE]
    work = label_dir(f"base-{name}")
    try:
        _fits(work, folder, backup.size + sum(c.size for c in companions.values())
              + size_cap(expanded) + size_cap(wal.expanded or 0))  # fmt: skip
        downloads, manifest_dir, data = work / "download", work / "manifest", work / "data"
        for directory in (downloads, manifest_dir, data):
            directory.mkdir(mode=0o700)
        _fetch(deployment, backup, downloads)
        _fetch_companion(deployment, backup, WAL_ARCHIVE, wal, downloads)
        _fetch_companion(deployment, backup, "backup_manifest", companions["backup_manifest"], manifest_dir)
        unpack(downloads / BASE_ARCHIVE, data, what=backup.key, declared=expanded)
        (data / "pg_wal").mkdir(mode=0o700, exist_ok=True)
        unpack(downloads / WAL_ARCHIVE, data / "pg_wal", what=f"{folder}/{WAL_ARCHIVE}", declared=wal.expanded or 0)
        removed = take_over_config(data, what=backup.key)
        log.info("base backup %s: removed %s; its configuration replaced by the harness's", folder,
                 ", ".join(removed) or "nothing")  # fmt: skip
        verify = _verify(provider, work, folder)
        server = provider.restored_postgres(name, data, settings=restored_settings(int(provider.binaries.major)))
    finally:
        remove_dir(work)
    try:
        state = _cluster_state(server)
        counts = _counts(server, dbname, tables)
        if state != "in production":
            raise CheckFailed(f"{backup.key}: restored cluster state is {state!r}, not 'in production'")
    except BaseException:
        server.stop()
        raise
    log.info("base backup %s restored into %s: %s", backup.key, name, counts)
    return BaseRestore(server, backup, state, verify, counts)


def _verify(provider: Provider, work: Path, folder: str) -> str:
    """``pg_verifybackup`` of the unpacked data directory, run as the service user (it parses untrusted input).

    Only ``data`` and ``manifest`` are handed over; ``work`` itself stays the harness's, and the downloads in it
    unreadable to others. The configuration files :func:`take_over_config` replaced are not the backup's any more.
    """
    tool = provider.binaries.tool("pg_verifybackup")
    ignored = [arg for name in WRITTEN for arg in ("--ignore", name)]
    manifest = work / "manifest" / "backup_manifest"
    argv: list[str | os.PathLike[str]] = [tool, "--no-parse-wal", "--manifest-path", manifest, *ignored, work / "data"]
    for handed in ("manifest", "data"):
        give_to_service_user(work / handed)
    work.chmod(0o711)
    try:
        result = run_tool(argv, what=f"pg_verifybackup of {folder}/", timeout=3600, as_service_user=True)
    except HarnessError as exc:
        raise CheckFailed(str(exc)) from None
    return (result.stdout + result.stderr).decode(errors="replace")


def _counts(server: LocalPostgres, dbname: str, tables: list[str]) -> dict[str, int]:
    """Row counts, in sessions whose options override the restored catalog's role and database settings."""
    counts = {}
    try:
        with psycopg.connect(server.dsn(dbname), autocommit=True, connect_timeout=5, options=SESSION_OPTIONS) as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if in_recovery and in_recovery[0]:
                raise CheckFailed(f"restored cluster {server.name} is still in recovery")
            for table in tables:
                row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
                counts[table] = int(row[0]) if row else 0
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckFailed(
            f"restored cluster {server.name}: cannot count the critical tables of {dbname}: {first}"
        ) from None
    return counts
