"""Restore the newest logical dump into an isolated, throwaway staging PostgreSQL.

The plan's first restore step: "Restore PostgreSQL into isolated staging first." Recovery time matters, so
the download and the provisioning overlap: the dump streams to disk (hashed on the way, see
:mod:`harness.storage.download`) in a worker thread while the main thread starts a PostgreSQL tuned for
restore speed (it is disposable: no fsync, large maintenance memory). The server is started from the main
thread on purpose: its parent-death signal is tied to the starting thread, and a worker thread ends long
before the session does. Then ``pg_restore --jobs N`` loads the dump, its verbose log kept as evidence and
followed line by line to log progress (items done of the dump's TOC entries, rate, ETA).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from harness.config import DrillConfig, Objectives
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError, ServiceError
from harness.integrity.rows import RestoredCounts, count_restored
from harness.measure.objectives import Measure, NewestData, data_loss
from harness.measure.stopwatch import Stopwatch
from harness.progress import Progress
from harness.services.base import label_dir, remove_dir, run_tool, wait_until
from harness.services.postgres import RESTORE_TUNED, PostgresServer, ensure_throwaway
from harness.services.provider import Provider
from harness.services.redis import RedisServer
from harness.storage.catalogue import BackupObject
from harness.storage.download import Downloaded, TransferLimits, download_object, verify_against
from harness.storage.manifest import BackupManifest

__all__ = ["RESTORE_TIMEOUT_S", "Staging", "fetch_verified", "restore_logical"]

log = logging.getLogger("harness.restore")

#: pg_restore's deadline: generous, but a wedged restore must end the drill rather than hang it.
RESTORE_TIMEOUT_S = 4 * 3600.0


@dataclass
class Staging:
    """The isolated staging copy: a throwaway PostgreSQL holding the restored dump (and a restored Redis).

    Attributes:
        postgres: the throwaway server (``ensure_throwaway`` passes for it, for no other).
        dbname: the restored database.
        dump: the manifest of the dump that was restored.
        download: key, size, hash and time of the download.
        restore_log: pg_restore's verbose output (evidence).
        timings: the drill's stopwatch (download, provision, restore phases so far).
        counts: what the restored database held right after the restore (before any gate wrote to it).
        redis: the throwaway Redis restored from the newest RDB copy, when one was restored.
        redis_copy: the manifest of that RDB copy.
        redis_error: why no Redis was restored (empty when it was, or when there is no copy).
        redis_newest: the newest heartbeat the restored Redis held right after its restore (when configured).
        has_manifest: whether the dump had a manifest (else ``dump`` was made from the download).
        jobs: how many parallel jobs pg_restore used.
        on_stop: what to do once both servers are stopped (e.g. let the thread that started one end).
    """

    postgres: PostgresServer
    dbname: str
    dump: BackupManifest
    download: Downloaded
    restore_log: str
    timings: Stopwatch
    counts: RestoredCounts
    redis: RedisServer | None = None
    redis_copy: BackupManifest | None = None
    redis_error: str = ""
    redis_newest: NewestData | None = None
    has_manifest: bool = True
    jobs: int = 1
    on_stop: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def dsn(self) -> str:
        """The libpq URL of the restored database."""
        return self.postgres.dsn(self.dbname)

    @property
    def sqlalchemy_url(self) -> str:
        """SQLAlchemy URL of the restored database (for Alembic and the app)."""
        return self.postgres.sqlalchemy_url(self.dbname)

    def data_loss_windows(self, incident: datetime, objectives: Objectives) -> list[Measure]:
        """The data-loss window of each restored store, in seconds (Redis only when its heartbeat is configured).

        PostgreSQL is held to the RPO; Redis to the age its daily copies may reach (``max_rdb_save_age_hours``).
        """
        losses = [data_loss("PostgreSQL", incident, self.counts.newest, self.dump.taken_at, objectives.rpo_hours)]
        if self.redis_newest is not None and self.redis_copy is not None:
            losses.append(data_loss("Redis", incident, self.redis_newest, self.redis_copy.taken_at,
                                    objectives.max_rdb_save_age_hours))  # fmt: skip
        return losses

    def stop(self) -> None:
        """Stop both throwaway servers and remove their directories, then run ``on_stop``."""
        if self.redis is not None:
            self.redis.stop()
        self.postgres.stop()
        for then in self.on_stop:
            then()


def fetch_verified(deployment: Deployment, manifest: BackupManifest, directory: Path) -> Downloaded:
    """Download a backup object and refuse it unless its size and sha256 match its manifest.

    An object of another size than the manifest's is refused before the download starts; the download keeps
    ``[storage]``'s deadline and minimum rate.

    Raises:
        CheckFailed: size or hash differ (names the key, expected and actual).
        HarnessError: the download missed its deadline or minimum rate, or storage failed.
    """
    got = _download(deployment, manifest.key, directory, manifest.size)
    verify_against(got, manifest)
    return got


def _download(deployment: Deployment, key: str, directory: Path, size: int | None = None) -> Downloaded:
    limits = TransferLimits.from_settings(deployment.config.storage)
    client = deployment.storage.client()
    return download_object(client, deployment.backup_bucket, key, directory, expected_size=size, limits=limits)


def _timed_fetch(
    deployment: Deployment, dump: BackupObject, manifest: BackupManifest | None, directory: Path, watch: Stopwatch
) -> tuple[Downloaded, BackupManifest]:
    """Download the dump; verified against its manifest, or described by one made from the download."""
    with watch.phase("download"):
        if manifest is not None:
            return fetch_verified(deployment, manifest, directory), manifest
        got = _download(deployment, dump.key, directory)
        log.warning("%s has no manifest: its size and hash cannot be verified", dump.key)
        made = BackupManifest(kind="logical", key=dump.key, taken_at=dump.taken_at, format="custom",
                              sha256=got.sha256, size=got.size, tool="none (no manifest beside the dump)")  # fmt: skip
        return got, made


_ITEM = re.compile(r"^pg_restore: (?:processing|finished) item (\d+) ")


class _RestoreProgress:
    """Follows ``pg_restore --verbose``: an item is done when it is processed (serial) or finished (parallel).

    The total is the dump's TOC entries as ``pg_restore --list`` prints them; pg_restore also processes a few
    entries the list leaves out (encoding, search path), which are not counted. A dump whose list cannot be
    read gets no total: pg_restore itself then says what is wrong with it.
    """

    def __init__(self, server: PostgresServer, path: Path, what: str) -> None:
        self.entries: set[str] | None = None
        try:
            listing = run_tool([server.binaries.tool("pg_restore"), "--list", path], what=what, timeout=600)
            lines = listing.stdout.decode(errors="replace").splitlines()
            self.entries = {line.split(";", 1)[0] for line in lines if line and not line.startswith(";")}
        except ServiceError:
            pass
        self.seen: set[str] = set()
        self.progress = Progress(what, None if self.entries is None else len(self.entries), unit="items")

    def finish(self, note: str) -> None:
        """pg_restore exited cleanly, so every entry is restored, also one whose line it did not print."""
        if self.entries is not None and len(self.seen) < len(self.entries):
            self.progress.update(len(self.entries))
        self.progress.finish(note)

    def line(self, text: str) -> None:
        match = _ITEM.match(text)
        if match and (self.entries is None or match[1] in self.entries) and match[1] not in self.seen:
            self.seen.add(match[1])
            self.progress.update(len(self.seen))


def _pg_restore(server: PostgresServer, dbname: str, dump: BackupManifest, path: Path, jobs: int) -> str:
    argv: list[str | os.PathLike[str]] = [
        server.binaries.tool("pg_restore"), "--verbose", "--jobs", str(jobs), "--no-owner", "--no-privileges",
        "--exit-on-error", "--dbname", dbname, path,
    ]  # fmt: skip
    what = f"pg_restore of {dump.key}"
    progress = _RestoreProgress(server, path, what)
    try:
        result = run_tool(argv, what=what, timeout=RESTORE_TIMEOUT_S, env=server.tool_env(),
                          stdout=subprocess.DEVNULL, on_stderr=progress.line)  # fmt: skip
    except ServiceError as exc:
        if _died(server):
            raise HarnessError(
                f"staging PostgreSQL {server.name} died during pg_restore of {dump.key}: {server.log_tail(3)}"
            ) from None
        raise CheckFailed(f"{dump.key}: does not restore: {exc}") from None
    progress.finish(f"{jobs} jobs")
    return result.stderr.decode(errors="replace")


def _died(server: PostgresServer, grace_s: float = 0.5) -> bool:
    """Whether the server is down, allowing a moment for a kill pg_restore noticed first.

    A killed process group dies one process at a time: pg_restore can see its backend gone while the
    postmaster is still being ended.
    """
    try:
        wait_until(lambda: not server.alive(), timeout=grace_s, what=f"{server.name} to end", interval=0.02)
    except ServiceError:
        return False
    return True


def restore_logical(
    provider: Provider,
    deployment: Deployment,
    config: DrillConfig,
    dump: BackupObject,
    manifest: BackupManifest | None,
    *,
    watch: Stopwatch,
    name: str = "staging",
) -> Staging:
    """Download (verified) and restore ``dump`` into a new throwaway PostgreSQL, overlapping the two.

    Without a manifest (a dump taken by other tools) nothing can be verified before the restore;
    :attr:`Staging.has_manifest` is then false and the integrity checks fall back to ``minimum_rows``.

    Raises:
        CheckFailed: the dump differs from its manifest or pg_restore refuses it (its message quoted).
        HarnessError: the staging server died, the disk filled, or the server did not start.
    """
    base = Path(config.restore.work_dir) if config.restore.work_dir else None
    directory = label_dir("dump", base)
    jobs = config.restore.jobs or os.cpu_count() or 1
    server: PostgresServer | None = None
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="dump-download") as pool:
            pending: Future[tuple[Downloaded, BackupManifest]] = pool.submit(
                _timed_fetch, deployment, dump, manifest, directory, watch
            )
            with watch.phase("provision"):
                server = provider.postgres(name, settings=RESTORE_TUNED)
                ensure_throwaway(server.dsn())
                dbname = config.database.name
                server.create_database(dbname)
            downloaded, described = pending.result()
        with watch.phase("restore"):
            restore_log = _pg_restore(server, dbname, described, downloaded.path, jobs)
        with watch.phase("checks"), server.connect(dbname) as conn:
            counts = count_restored(conn, config.database, described.taken_at)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    finally:
        remove_dir(directory)
    log.info("restored %s into %s/%s with %d jobs", dump.key, server.name, dbname, jobs)
    return Staging(server, dbname, described, downloaded, restore_log, watch, counts,
                   has_manifest=manifest is not None, jobs=jobs)  # fmt: skip
