"""Physical restore of the newest base backup: unpack, start, reach consistency.

A logical dump proves the data; a base backup proves the cluster can be brought back as it was, files and
all, which is the faster path for a large database. The drill downloads ``base.tar.gz`` (verified against
its manifest), ``pg_wal.tar.gz`` and PostgreSQL's own ``backup_manifest``, lets ``pg_verifybackup`` check
every file against that manifest, unpacks the data directory with the WAL into ``pg_wal``, and starts a
throwaway server on it. PostgreSQL replays the WAL from the backup's checkpoint; the server only accepts
connections once it is consistent, and ``pg_control`` must then say "in production".
"""

from __future__ import annotations

import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.restore.staging import fetch_verified
from harness.services.base import label_dir, remove_dir, run_tool
from harness.services.postgres import LocalPostgres
from harness.services.provider import Provider
from harness.storage.download import download_object
from harness.storage.manifest import BackupManifest

__all__ = ["BaseRestore", "restore_base"]

log = logging.getLogger("harness.restore")

COMPANIONS = ("pg_wal.tar.gz", "backup_manifest")


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


def _unpack(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CheckFailed(f"{archive.name}: cannot be unpacked: {exc}") from None


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
        CheckFailed: the archive differs from its manifest, fails ``pg_verifybackup``, cannot be unpacked, or
            the started cluster is not "in production" or cannot count ``tables``.
        HarnessError: a companion file is missing; the server did not start (its log quoted).
    """
    folder = backup.key.rsplit("/", 1)[0]
    client = deployment.storage.client()
    work = label_dir(f"base-{name}")
    try:
        fetch_verified(deployment, backup, work)
        for companion in COMPANIONS:
            try:
                download_object(client, deployment.backup_bucket, f"{folder}/{companion}", work)
            except HarnessError as exc:
                raise HarnessError(f"base backup {folder}/ lacks {companion}: {exc}") from None
        verify = _verify(provider, work, folder)
        data = work / "data"
        data.mkdir()
        _unpack(work / "base.tar.gz", data)
        _unpack(work / "pg_wal.tar.gz", data / "pg_wal")
        server = provider.restored_postgres(name, data)
    finally:
        remove_dir(work)
    try:
        state = _cluster_state(server)
        counts = _counts(server, deployment.config.database.name, tables)
        if state != "in production":
            raise CheckFailed(f"{backup.key}: restored cluster state is {state!r}, not 'in production'")
    except BaseException:
        server.stop()
        raise
    log.info("base backup %s restored into %s: %s", backup.key, name, counts)
    return BaseRestore(server, backup, state, verify, counts)


def _verify(provider: Provider, work: Path, folder: str) -> str:
    tool = provider.binaries.tool("pg_verifybackup")
    argv: list[str | os.PathLike[str]] = [tool, "--no-parse-wal", "--manifest-path", work / "backup_manifest", work]
    try:
        result = run_tool(argv, what=f"pg_verifybackup of {folder}/", timeout=3600)
    except HarnessError as exc:
        raise CheckFailed(str(exc)) from None
    return (result.stdout + result.stderr).decode(errors="replace")


def _counts(server: LocalPostgres, dbname: str, tables: list[str]) -> dict[str, int]:
    counts = {}
    with server.connect(dbname) as conn:
        in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if in_recovery and in_recovery[0]:
            raise CheckFailed(f"restored cluster {server.name} is still in recovery")
        for table in tables:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts
