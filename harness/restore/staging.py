"""Restore the newest logical dump into an isolated, throwaway staging PostgreSQL.

The plan's first restore step: "Restore PostgreSQL into isolated staging first." Recovery time matters, so
the download and the provisioning overlap: the dump streams to disk (hashed on the way, see
:mod:`harness.storage.download`) in a worker thread while the main thread starts a PostgreSQL tuned for
restore speed (it is disposable: no fsync, large maintenance memory), of the major the dump's header names:
read off the download's first bytes, not fetched apart. What does not need the header starts with the
download: the template copy (:class:`~harness.services.postgres.PreparedData`) and the roles file. The
server is started from the main thread on purpose: its parent-death signal is tied to the starting thread,
and a worker thread ends long before the session does. Then ``pg_restore --jobs N`` loads the dump, its
verbose log kept as evidence and followed line by line to log progress (items done of the dump's TOC
entries, rate, ETA).

With ``[staging] provider = "server"`` the copy goes into a database of the run's own on an existing server
instead (:mod:`harness.services.external`), restored over the network by the client tools of that server's
major, as a role of the run; production's roles are not created there.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from psycopg import sql

from harness.config import DatabaseSettings, DrillConfig, Objectives
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError, ServiceError
from harness.integrity.amcheck import install_amcheck
from harness.integrity.redis_keys import RestoredKeyspace
from harness.integrity.rows import RestoredCounts, count_restored
from harness.measure.objectives import Measure, NewestData, redis_rpo, rpo_name, store_rpo
from harness.measure.projection import ProductionSize, combined_size, production_size, project_rto
from harness.measure.stopwatch import Stopwatch
from harness.progress import Progress
from harness.restore.dump_header import HEADER_BYTES, DumpHeader, major_of, parse_dump_header
from harness.restore.extensions import (
    TocListing,
    create_extensions,
    needed_extensions,
    prepare_extensions,
    read_toc,
)
from harness.restore.preflight import check_schema
from harness.restore.roles import Roles, check_owners, fetch_globals, missing_role, pass_lists, restore_roles
from harness.restore.select import check_dumped_database
from harness.services.base import label_dir, remove_dir, run_tool, wait_until
from harness.services.external import ExternalPostgres, StagingServer
from harness.services.pgversions import StagingPostgres, choose_staging
from harness.services.postgres import (
    RESTORE_TUNED,
    PostgresBinaries,
    PostgresServer,
    PreparedData,
    ensure_throwaway,
    probe_installations,
)
from harness.services.provider import Provider
from harness.services.redis import RedisServer
from harness.storage.catalogue import BackupObject
from harness.storage.download import Downloaded, HeadHook, TransferLimits, download_object, verify_against
from harness.storage.manifest import GLOBALS_SUFFIX, BackupManifest

__all__ = ["RESTORE_TIMEOUT_S", "Staging", "fetch_verified", "restore_logical", "rto_projection"]

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
        redis_keys: the restored Redis's keys right after its restore (before the app could write to it).
        has_manifest: whether the dump had a manifest (else ``dump`` was made from the download).
        jobs: how many parallel jobs pg_restore used.
        postgres_choice: which PostgreSQL staging runs and why (the dump's major, or what stood in for it).
        roles: the roles restored from the dump's globals, with owners and grants (``None``: the dump has none).
        roles_warning: why owners and grants were not restored (empty when they were).
        server_description: the existing staging server's version and settings (empty: a throwaway server).
        settings: the ``[database]`` (or ``[[databases]]`` entry) the copy was restored and is checked for.
        label: the entry's name in a drill of several databases (``""``: the target has one ``[database]``).
        primary: whether it is the first database, the one the app, the migrations and Redis go with.
        verified_at: when the restore and its counts were done (the recovery ends once every database is).
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
    redis_keys: RestoredKeyspace | None = None
    has_manifest: bool = True
    jobs: int = 1
    postgres_choice: StagingPostgres | None = None
    roles: Roles | None = None
    roles_warning: str = ""
    server_description: str = ""
    settings: DatabaseSettings = field(default_factory=DatabaseSettings)
    label: str = ""
    primary: bool = True
    verified_at: datetime | None = None
    on_stop: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def dsn(self) -> str:
        """The libpq URL of the restored database, as its owner (no superuser power over restored data)."""
        return self.postgres.dsn(self.dbname, self.postgres.owner_role)

    @property
    def sqlalchemy_url(self) -> str:
        """SQLAlchemy URL of the restored database as its owner (for Alembic run by the harness)."""
        return self.postgres.sqlalchemy_url(self.dbname, self.postgres.owner_role)

    @property
    def app_role(self) -> str:
        """The role the target's app connects as: ``[app] database_role`` when it was restored, else the owner role."""
        return self.roles.app_role if self.roles is not None and self.roles.app_role else self.postgres.owner_role

    @property
    def app_database_url(self) -> str:
        """The URL the target's app gets: its role with its password of this run (the app cannot read the passfile)."""
        return self.postgres.sqlalchemy_url(self.dbname, self.app_role, with_password=True)

    def check_download(self, *, manifests_signed: bool) -> str:
        """The downloaded dump's size and sha256 against its manifest; what was checked, for the evidence.

        A dump taken by other tools has no manifest to compare with. Where manifests are signed
        (``[storage] manifest_verify_key``) a missing one fails: it may have been removed to hide a swapped
        dump. Where they are not, a manifest proves nothing its absence does not, so such a dump is judged by
        its restore and its row floors, and the record says its manifest was not authenticated.

        Raises:
            CheckFailed: the size or sha256 differs, or a manifest is missing where manifests are signed.
        """
        got = f"{self.download.key}: {self.download.size} bytes, sha256 {self.download.sha256}"
        if self.has_manifest:
            verify_against(self.download, self.dump)
            return f"{got}, as its manifest says"
        if manifests_signed:
            raise CheckFailed(
                f"{self.dump.key}: no manifest beside the dump, so its size and sha256 cannot be verified"
            )
        return f"{got}; no manifest beside the dump to compare with (manifests are not signed: no manifest_verify_key)"

    def rpo(self, incident: datetime, objectives: Objectives) -> Measure:
        """The database's RPO in hours (the plan's ``RPO``; ``RPO <name>`` among several), against its objective.

        The objective is the database's own ``rpo_hours`` when its entry sets one, else ``[objectives] rpo_hours``.
        """
        objective = self.settings.rpo_hours or objectives.rpo_hours
        return store_rpo(rpo_name(self.label), incident, self.counts.newest, self.dump.taken_at, objective)

    def rpo_per_store(self, incident: datetime, objectives: Objectives) -> list[Measure]:
        """Each restored store's RPO in hours: PostgreSQL's (the plan's ``RPO``), Redis's when its heartbeat is set."""
        measures = [self.rpo(incident, objectives)]
        if self.redis_newest is not None and self.redis_copy is not None:
            measures.append(redis_rpo(incident, self.redis_newest, self.redis_copy.taken_at, objectives))
        return measures

    def production_size(self, config: DrillConfig) -> ProductionSize | None:
        """Production's size of this database (declared, else its dump's manifest); ``None`` when unknown."""
        manifest_size = self.dump.database_size if self.has_manifest else None
        key = f"[[databases]] {self.label} production_size_gb" if self.label else "[database] production_size_gb"
        return production_size(config.database.production_size_gb, manifest_size, key)

    def restored_bytes(self) -> int:
        """The size of the restored database on staging (``pg_database_size``)."""
        with self.postgres.connect(self.dbname, self.postgres.owner_role) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row is not None else 0

    def stop(self) -> None:
        """Stop both throwaway servers and remove their directories, then run ``on_stop``."""
        if self.redis is not None:
            self.redis.stop()
        self.postgres.stop()
        for then in self.on_stop:
            then()


def rto_projection(
    copies: Sequence[Staging], config: DrillConfig, rto_minutes: float, phases: Mapping[str, float]
) -> Measure | list[str]:
    """The RTO projected to production's size of every database restored (:mod:`harness.measure.projection`).

    Returns the databases whose production size is unknown instead, when any is: projecting the others alone
    would understate the recovery.
    """
    sizes = {copy.label or copy.dbname: copy.production_size(config.for_database(copy.label)) for copy in copies}
    unknown = [name for name, size in sizes.items() if size is None]
    if unknown:
        return unknown
    known = {name: size for name, size in sizes.items() if size is not None}
    restored = sum(copy.restored_bytes() for copy in copies)
    combined = combined_size(known, of=len(config.databases))
    return project_rto(rto_minutes, phases, restored, combined, config.objectives)


def fetch_verified(
    deployment: Deployment, manifest: BackupManifest, directory: Path, on_head: HeadHook | None = None
) -> Downloaded:
    """Download a backup object and refuse it unless its size and sha256 match its manifest.

    An object of another size than the manifest's is refused before the download starts; the download keeps
    ``[storage]``'s deadline and minimum rate.

    Raises:
        CheckFailed: size or hash differ (names the key, expected and actual).
        HarnessError: the download missed its deadline or minimum rate, or storage failed.
    """
    got = _download(deployment, manifest.key, directory, manifest.size, on_head)
    verify_against(got, manifest)
    return got


def _download(
    deployment: Deployment, key: str, directory: Path, size: int | None = None, on_head: HeadHook | None = None
) -> Downloaded:
    limits = TransferLimits.from_settings(deployment.config.storage)
    client = deployment.storage.client()
    return download_object(client, deployment.backup_bucket, key, directory, expected_size=size, limits=limits,
                           on_head=on_head)  # fmt: skip


def _timed_fetch(
    deployment: Deployment, dump: BackupObject, manifest: BackupManifest | None, directory: Path, watch: Stopwatch,
    head: Future[bytes],
) -> tuple[Downloaded, BackupManifest]:  # fmt: skip
    """Download the dump; verified against its manifest, or described by one made from the download.

    ``head`` gets the dump's first bytes as soon as they land (empty when none arrives): its header.
    """
    try:
        with watch.phase("download"):
            if manifest is not None:
                return fetch_verified(deployment, manifest, directory, head.set_result), manifest
            got = _download(deployment, dump.key, directory, on_head=head.set_result)
            log.warning("%s has no manifest: its size and hash cannot be verified", dump.key)
            made = BackupManifest(kind="logical", key=dump.key, taken_at=dump.taken_at, format="custom",
                                  sha256=got.sha256, size=got.size,
                                  tool="none (no manifest beside the dump)")  # fmt: skip
            return got, made
    finally:
        if not head.done():  # no byte arrived: the restore goes on without a header and meets this failure
            head.set_result(b"")


_ITEM = re.compile(r"^pg_restore: (?:processing|finished) item (\d+) ")


class _RestoreProgress:
    """Follows ``pg_restore --verbose``: an item is done when it is processed (serial) or finished (parallel).

    The total is the dump's TOC entries as ``pg_restore --list`` prints them; pg_restore also processes a few
    entries the list leaves out (encoding, search path), which are not counted. A dump whose list cannot be
    read gets no total: pg_restore itself then says what is wrong with it.
    """

    def __init__(self, toc: TocListing | None, what: str) -> None:
        self.entries = None if toc is None else toc.entry_ids
        self.seen: set[str] = set()
        self.errors: list[str] = []
        self.commands: list[str] = []
        self.log: list[str] = []
        self.progress = Progress(what, None if self.entries is None else len(self.entries), unit="items")

    def finish(self, note: str) -> None:
        """pg_restore exited cleanly, so every entry is restored, also one whose line it did not print."""
        if self.entries is not None and len(self.seen) < len(self.entries):
            self.progress.update(len(self.entries))
        self.progress.finish(note)

    def line(self, text: str) -> None:
        self.log.append(text)
        if text.startswith("pg_restore: error:") and "worker process died" not in text:
            self.errors.append(text)
            self.commands.append("")
        elif text.startswith("Command was: ") and self.commands and not self.commands[-1]:
            self.commands[-1] = text
        match = _ITEM.match(text)
        if match and (self.entries is None or match[1] in self.entries) and match[1] not in self.seen:
            self.seen.add(match[1])
            self.progress.update(len(self.seen))


def _pg_restore(
    server: PostgresServer, dbname: str, dump: BackupManifest, path: Path, jobs: int, toc: TocListing | None,
    *, use_list: Path | None = None, what: str = "", roles: Roles | None = None, owners: bool = True,
) -> str:  # fmt: skip
    """Run pg_restore as the owner role: with ``roles``, owners and grants too (and its tolerated refusals).

    ``owners=False`` (with ``roles``): grants only, every object left with the owner role (``--no-owner``).
    """
    chosen: list[str | os.PathLike[str]] = ["--use-list", use_list] if use_list is not None else []
    # Without roles: no owners, no grants, stop at the first error. With roles, pg_restore goes on past an error so
    # that an ownership change to a superuser name (refused, tolerated) leaves the object with the owner role.
    how = ["--no-owner", "--no-privileges", "--exit-on-error"] if roles is None else [] if owners else ["--no-owner"]
    argv: list[str | os.PathLike[str]] = [
        server.binaries.tool("pg_restore"), "--verbose", "--jobs", str(jobs), *how, "--dbname", dbname, *chosen, path,
    ]  # fmt: skip
    what = what or f"pg_restore of {dump.key}"
    progress = _RestoreProgress(toc, what)
    try:
        result = run_tool(argv, what=what, timeout=RESTORE_TIMEOUT_S, env=server.tool_env(server.owner_role),
                          stdout=subprocess.DEVNULL, on_stderr=progress.line)  # fmt: skip
    except ServiceError as exc:
        if _died(server):
            raise HarnessError(
                f"staging PostgreSQL {server.name} died during pg_restore of {dump.key}: {server.log_tail(3)}"
            ) from None
        failed = [error for error, command in zip(progress.errors, progress.commands, strict=True)
                  if roles is None or not roles.tolerated(error, command)]  # fmt: skip
        if roles is not None and progress.errors and not failed:
            progress.finish(f"{jobs} jobs")
            return "\n".join(progress.log) + "\n"
        # The first error is the cause; in a parallel restore the last line only says a worker died of it.
        cause = f"{what} failed: {failed[0]}" if failed else str(exc)
        if roles is not None:
            cause = missing_role(cause, roles.source)
        hint = ""
        if "must be superuser" in cause or "permission denied" in cause:
            hint = (f" (the drill restores as {server.owner_role}, a role without superuser power, so that nothing a "
                    "backup holds can run with power over the drill host)")  # fmt: skip
        raise CheckFailed(f"{dump.key}: does not restore: {cause}{hint}") from None
    progress.finish(f"{jobs} jobs")
    return result.stderr.decode(errors="replace")


def _restore(
    server: PostgresServer, dbname: str, dump: BackupManifest, path: Path, jobs: int, chosen: StagingPostgres,
    roles: Roles | None = None,
) -> str:  # fmt: skip
    """Check the dump's extensions, then restore it: in one pass, or in two around the extensions it needs made.

    With ``roles``, owners and grants are restored too, in three passes (:mod:`harness.restore.roles`): the
    schemas; everything else, while the restored roles may own objects anywhere; the schemas' own grants.

    Raises:
        ServiceError: the staging server lacks an extension the dump needs (named, with how to provide it).
        CheckFailed: an object's owner is not among the restored roles, or pg_restore refused the dump.
    """
    pg_restore = server.binaries.tool("pg_restore")
    toc = read_toc(pg_restore, server.share(path), f"pg_restore --list of {dump.key}")
    superuser_extensions = toc is not None and prepare_extensions(server, dbname, toc.extensions(), chosen)
    if toc is None or (roles is None and not superuser_extensions):
        return _pg_restore(server, dbname, dump, path, jobs, toc, roles=roles)
    if roles is not None:
        check_owners(server, toc, dump=dump.key, source=roles.source)
        roles.grant_create(server, dbname, schemas=False)
    if superuser_extensions:
        log.info("%s needs extensions only a superuser can create: restoring its schemas, creating its extensions "
                 "as the harness, then restoring the rest", dump.key)  # fmt: skip
    schemas, first = toc.schemas_only(), ""
    if schemas.lines or superuser_extensions:
        listed = server.share(schemas.write(path.parent / "schemas.list"))
        first = _pg_restore(server, dbname, dump, path, 1, schemas, use_list=listed,
                            what=f"pg_restore of {dump.key} (its schemas)", roles=roles)  # fmt: skip
    if superuser_extensions:
        create_extensions(server, dbname, needed_extensions(server, path, toc))
    rest = toc.without_schemas_and_extensions() if superuser_extensions else toc.without_schemas()
    if roles is None:
        return first + _pg_restore(
            server, dbname, dump, path, jobs, rest, use_list=server.share(rest.write(path.parent / "rest.list"))
        )
    roles.grant_create(server, dbname, schemas=True)
    rest, grants = pass_lists(rest, roles)
    # Every owner a superuser name: each ownership change would be refused and leave its object with the owner
    # role, and pg_restore takes a table whose creation raised an error for one it did not create, so its data
    # would lose the TRUNCATE-then-COPY that wal_level = minimal writes without WAL. --no-owner ends the same.
    owners = not roles.owned_by_superusers_only(rest)
    second = _pg_restore(server, dbname, dump, path, jobs, rest, roles=roles, owners=owners,
                         use_list=server.share(rest.write(path.parent / "rest.list")))  # fmt: skip
    roles.revoke_create(server, dbname)
    if not grants.lines:
        return first + second
    return first + second + _pg_restore(server, dbname, dump, path, 1, grants, roles=roles,
                                        use_list=server.share(grants.write(path.parent / "grants.list")),
                                        what=f"pg_restore of {dump.key} (its schemas' grants)")  # fmt: skip


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


def reset_session_defaults(server: PostgresServer, dbname: str) -> list[str]:
    """Undo the session defaults the restore set (``ALTER DATABASE``/``ALTER ROLE ... SET``); return them.

    ``pg_restore`` without ``--create`` restores no database or role settings, so any found here were set by
    code the dump ran as the owner role, e.g. a ``search_path`` that puts a planted schema before the real
    tables for every later session of the checks, Alembic and the app. They are logged and removed.
    """
    with server.connect() as conn:  # the maintenance database: nothing restored runs here
        found = [f"{row[0]}: {', '.join(row[1])}" for row in conn.execute(
            "SELECT coalesce(r.rolname, 'every role') || ' in ' || coalesce(d.datname, 'every database'), s.setconfig "
            "FROM pg_catalog.pg_db_role_setting s LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole "
            "LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase "
            "WHERE d.datname = %s OR r.rolname = %s", (dbname, server.owner_role))]  # fmt: skip
        if found:
            log.warning("the restore of %s set session defaults, removed: %s", dbname, "; ".join(found))
            database, owner = sql.Identifier(dbname), sql.Identifier(server.owner_role)
            conn.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(database))
            conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(owner))
            conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(owner, database))
    return found


_NO_ROLES_ON_A_SHARED_SERVER = (
    "restored into an existing staging server with --no-owner --no-privileges as the run's own role: production's "
    "roles are cluster-wide, and the drill creates none on a server it shares; owners and grants were not verified"
)


def _client_tools(
    provider: Provider, config: DrillConfig, header: DumpHeader | None, existing: StagingServer | None
) -> StagingPostgres:
    """The installation staging runs (a throwaway) or whose client tools talk to it (an existing server's major)."""
    services = config.services
    if existing is None:
        return provider.staging(header, services)
    return choose_staging(header, provider.binaries, configured_dir=services.postgres_bin_dir, forced=existing.major,
                          forced_by=f"the staging server {existing.address}'s major", clients_only=True)  # fmt: skip


def _provision(
    provider: Provider,
    config: DrillConfig,
    existing: StagingServer | None,
    binaries: PostgresBinaries,
    name: str,
    files: Path,
    prepared: PreparedData | None = None,
) -> tuple[PostgresServer, str]:
    """A throwaway server tuned for restore holding ``[database] name``, or the run's database on ``existing``.

    ``files``: the directory the dump lands in, which a container's server is given to read. ``prepared``: a
    template copy made ahead, used when it is of ``binaries``.
    """
    if existing is not None:
        made = existing.provision(name, binaries)
        return made, made.database
    dbname = config.database_name()
    server = provider.postgres(name, settings=RESTORE_TUNED, binaries=binaries, files=files, prepared=prepared)
    try:
        server.create_database(dbname, owner=server.owner_role)
    except BaseException:
        server.stop()
        raise
    return server, dbname


def _copy_ahead(provider: Provider, config: DrillConfig, manifest: BackupManifest | None) -> bool:
    """Whether to copy the session installation's template before the header names staging's major.

    Only when nothing names another major: ``services.postgres_major``, else the manifest's server version (a
    dump without one leaves the guess open). A copy that goes unused is CPU taken from the download.
    """
    if provider.kind != "local":
        return False
    wanted = config.services.postgres_major or (major_of(manifest.server_version) if manifest is not None else None)
    return wanted is None or wanted == int(provider.binaries.major)


def _discard(ahead: Future[PreparedData | None] | None) -> None:
    """Remove the template copy made ahead: unused, or emptied by the server that took it."""
    if ahead is not None and ahead.exception() is None and (prepared := ahead.result()) is not None:
        prepared.discard()


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

    With ``[staging] provider = "server"``, into a new database of the run on the existing server it names.

    Without a manifest (a dump taken by other tools) nothing can be verified before the restore;
    :attr:`Staging.has_manifest` is then false and the integrity checks fall back to ``minimum_rows``.

    Raises:
        CheckFailed: the dump differs from its manifest, its manifest or header records another database
            than a ``[[databases]]`` entry's, or pg_restore refuses it (its message quoted).
        ConfigError: a table or column drill.toml names is not in the restored database (the key named).
        HarnessError: the staging server died, the disk filled, or the server did not start.
    """
    jobs = config.restore.jobs or os.cpu_count() or 1
    server: PostgresServer | None = None
    existing = StagingServer.from_config(config) if config.staging.provider == "server" else None
    directory = label_dir("dump", Path(config.restore.work_dir) if config.restore.work_dir else None)
    ahead: Future[PreparedData | None] | None = None
    try:
        with ThreadPoolExecutor(3, thread_name_prefix="dump-download") as pool:
            head: Future[bytes] = Future()
            pending: Future[tuple[Downloaded, BackupManifest]] = pool.submit(
                _timed_fetch, deployment, dump, manifest, directory, watch, head
            )
            # Off the critical path, beside the dump: the template copy most of a throwaway's start is (made for
            # the session's installation before the header names the one staging runs; unused if another), and
            # the roles, verified against the manifest on their own (created on staging only once the dump is).
            if existing is None and _copy_ahead(provider, config, manifest):
                ahead = pool.submit(PreparedData.copy, provider.binaries)
            globals_ahead = pool.submit(fetch_globals, deployment, manifest, directory) if (
                existing is None and manifest is not None) else None  # fmt: skip
            with watch.phase("provision"):
                probe_installations(config.services.postgres_bin_dir, holding="pg_restore" if existing else "postgres")
                # The header (which PostgreSQL major the dump needs) is read off the download's first bytes.
                header = parse_dump_header(head.result()[:HEADER_BYTES])
                check_dumped_database(config, dump.key, manifest, header)  # before anything is provisioned
                chosen = _client_tools(provider, config, header, existing)
                prepared = ahead.result() if ahead is not None else None
                server, dbname = _provision(provider, config, existing, chosen.binaries, name, directory, prepared)
                chosen = replace(chosen, binaries=server.binaries)  # a container's own, once it runs
                ensure_throwaway(server.dsn(dbname))
                install_amcheck(server, dbname)  # now, while the database is empty: no superuser on restored data
            downloaded, described = pending.result()
        with watch.phase("restore"):
            if globals_ahead is not None:
                found, roles_warning = globals_ahead.result()
            else:  # an existing server gets no roles; a dump without a manifest has none to fetch: both say why
                found, roles_warning = (None, _NO_ROLES_ON_A_SHARED_SERVER) if existing else fetch_globals(
                    deployment, described, directory)  # fmt: skip
            roles = None if found is None else restore_roles(server, found, source=described.key + GLOBALS_SUFFIX,
                                                             app_role=config.app.database_role)  # fmt: skip
            if roles is not None and roles.app_role:
                server.set_password(roles.app_role)
            if roles_warning:
                log.warning("%s", roles_warning)
            restore_log = _restore(server, dbname, described, downloaded.path, jobs, chosen, roles)
            reset_session_defaults(server, dbname)
            if isinstance(server, ExternalPostgres):
                closed = server.reseal()
                log.info("%s: the restore role re-passworded after the restore, %d session(s) of it closed",
                         server.cluster_name, closed)  # fmt: skip
        with watch.phase("checks"), server.connect(dbname, server.owner_role) as conn:
            check_schema(conn, config)  # every name drill.toml gives, before the first count reads it
            counts = count_restored(conn, config.database, described.taken_at)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    finally:
        _discard(ahead)
        remove_dir(directory)
    log.info("restored %s into %s/%s with %d jobs", dump.key, server.name, dbname, jobs)
    return Staging(server, dbname, described, downloaded, restore_log, watch, counts,
                   has_manifest=manifest is not None, jobs=jobs, postgres_choice=chosen, roles=roles,
                   roles_warning=roles_warning, server_description=existing.describe(dbname) if existing else "",
                   settings=config.database, label=config.database_label,
                   primary=config.database.name == config.database_names()[0],
                   verified_at=watch.now())  # fmt: skip
