"""A logical backup: ``pg_dump`` streamed straight into object storage, with a manifest of the same snapshot.

The drill later restores the dump and compares it with the manifest, so the manifest's numbers must describe
exactly the data inside the dump. A REPEATABLE READ transaction exports its snapshot
(``pg_export_snapshot()``), counts the critical tables in it, and ``pg_dump --snapshot`` dumps that very
snapshot: rows committed in between are in neither. The dump never touches local disk or memory beyond one
upload part, so a backup host needs no room for the database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from harness.backup.store import backup_time, put_manifest, timestamped_key
from harness.config import DatabaseSettings, DrillConfig
from harness.counting import count_tables, heartbeat_spec, newest_time
from harness.errors import HarnessError
from harness.redact import register_secret
from harness.services.base import RUN_ENV, run_id, run_tool
from harness.services.postgres import PostgresBinaries, find_binaries, installations
from harness.storage.manifest import GLOBALS_SUFFIX, BackupManifest, Companion
from harness.storage.signing import ManifestSigner
from harness.storage.upload import upload_stream

__all__ = ["DumpOptions", "backup_postgres", "compress_argument", "dump_binaries", "dump_options", "libpq_target"]

log = logging.getLogger("harness.backup.postgres")


@dataclass(frozen=True)
class DumpOptions:
    """What to dump and what to count; the defaults follow the plan (custom format, compressed).

    The counting keys mean what they mean in ``[database]`` of drill.toml (:class:`DatabaseSettings`).
    """

    critical_tables: Sequence[str] = ()
    time_columns: Mapping[str, str] = field(default_factory=dict)
    heartbeat_table: str = ""
    heartbeat_column: str = "beat_at"
    default_time_column: str = "created_at"
    time_zone: str = "UTC"
    count_all_tables: bool = False
    key_name: str = "backup"
    dump_format: str = "custom"
    compression: str = "gzip:6"
    timeout_s: float = 6 * 3600.0
    globals: bool = True
    database_name: str = ""
    """A ``[[databases]]`` entry's name: the DSN must connect to that database (``""``: any database)."""

    def database(self) -> DatabaseSettings:
        """The counting keys as validated settings (a malformed name fails here, before any connection)."""
        try:
            return DatabaseSettings(
                critical_tables=list(self.critical_tables), time_columns=dict(self.time_columns),
                heartbeat_table=self.heartbeat_table, heartbeat_column=self.heartbeat_column,
                default_time_column=self.default_time_column, time_zone=self.time_zone,
                count_all_tables=self.count_all_tables,
            )  # fmt: skip
        except ValidationError as exc:
            first = exc.errors()[0]
            raise HarnessError(f"[database] {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None

    def time_column(self, table: str) -> str:
        """The column holding a critical table's insert time (``""``: none)."""
        return self.database().time_column(table)


def dump_options(config: DrillConfig) -> DumpOptions:
    """The dump options a drill configuration asks for (its tables, time columns, heartbeat, key name)."""
    database = config.database
    return DumpOptions(
        critical_tables=tuple(database.critical_tables),
        time_columns=dict(database.time_columns),
        heartbeat_table=database.heartbeat_table,
        heartbeat_column=database.heartbeat_column,
        default_time_column=database.default_time_column,
        time_zone=database.time_zone,
        count_all_tables=database.count_all_tables,
        key_name=config.backup_key_name(),
        globals=config.backup.globals,
        database_name=database.name if config.multiple_databases else "",
    )


def libpq_target(dsn: str) -> tuple[str, dict[str, str]]:
    """Split a DSN into a password-free conninfo and the environment carrying the password.

    A password inside ``--dbname`` would be visible to every user of the host in the process list.
    """
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise HarnessError("the database DSN is not a valid libpq connection string or URL") from None
    password = params.pop("password", None)
    env = {"PGPASSWORD": register_secret(str(password))} if password else {}
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def dump_binaries(dsn: str, configured: str = "") -> PostgresBinaries:
    """The PostgreSQL whose ``pg_dump`` backs up the server at ``dsn``.

    The configured directory when there is one; else the installation of the server's own major version, so
    that the drill's staging of that major can read the dump (a newer ``pg_dump`` writes an archive an older
    ``pg_restore`` refuses); else the newest installed, which can dump any older server.

    Raises:
        HarnessError: the server cannot be reached, or no PostgreSQL is installed.
    """
    if configured:
        return find_binaries(configured)
    with _connect(dsn) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
    found = sorted(installations(), key=lambda b: -int(b.major))  # stable: the preference within a major stays
    exact = [b for b in found if row is not None and int(b.major) == row[0]]
    return exact[0] if exact else found[0] if found else find_binaries()


def _connect(dsn: str) -> psycopg.Connection[tuple[Any, ...]]:
    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the database to back up: {str(exc).strip().splitlines()[0]}") from None


def _tool_major(tool: Path) -> int:
    """The major version a client tool reports (``pg_dump (PostgreSQL) 15.18 (Debian ...)`` gives 15)."""
    out = run_tool([tool, "--version"], what=f"{tool} --version", timeout=30)
    match = re.search(r"\)\s*(\d+)", out.stdout.decode(errors="replace"))
    if match is None:
        raise HarnessError(f"{tool} --version does not name a PostgreSQL version: {out.stdout[:80]!r}")
    return int(match[1])


def compress_argument(pg_dump: Path, compression: str) -> str:
    """``--compress`` as this ``pg_dump`` takes it: ``method:detail`` since PostgreSQL 16, a gzip level before.

    PostgreSQL 13 to 15 take only ``-Z 0..9`` (gzip); ``gzip:6``, ``gzip:level=6`` and ``gzip`` become ``6``,
    ``none`` becomes ``0``.

    Raises:
        HarnessError: an older ``pg_dump`` cannot compress with the method asked (lz4, zstd).
    """
    major = _tool_major(pg_dump)
    if major >= 16 or compression.isdigit():
        return f"--compress={compression}"
    method, _, detail = compression.partition(":")
    if method == "none":
        return "--compress=0"
    level = detail.removeprefix("level=") or "6"
    if method != "gzip" or not level.isdigit():
        raise HarnessError(
            f"pg_dump {major} ({pg_dump}) cannot compress with {compression!r}: before PostgreSQL 16 it takes "
            "only a gzip level 0-9; use gzip or a pg_dump of PostgreSQL 16 or newer"
        )
    return f"--compress={level}"


def backup_postgres(
    dsn: str,
    client: Any,
    bucket: str,
    prefix: str,
    *,
    pg_dump: Path,
    options: DumpOptions,
    taken_at: datetime | None = None,
    on_snapshot: Callable[[], None] | None = None,
    signer: ManifestSigner | None = None,
) -> BackupManifest:
    """Dump the database at ``dsn`` into ``bucket`` under ``<prefix><key name>-<ts>.dump`` with its manifest.

    With ``options.globals`` the cluster's roles and memberships (``pg_dumpall --globals-only
    --no-role-passwords``, from ``pg_dump``'s installation) are stored beside it at ``<key>.globals.sql``, their
    sha256 and size in the manifest, so a restore can give objects their owners and roles their grants.

    Args:
        dsn: libpq URL or conninfo of the database to back up (read only: nothing is written to it).
        client: a boto3 S3 client.
        bucket: the backup bucket.
        prefix: the logical-dump prefix, e.g. ``postgres/logical/``.
        pg_dump: the ``pg_dump`` program (same major version as the server, or newer).
        options: tables to count (:mod:`harness.counting`), the key's name, format and compression.
        taken_at: the time the key and the manifest carry (default now); the sandbox world passes the
            simulated time so its history spans days.
        on_snapshot: called once the snapshot is fixed and counted, before the dump streams; writes made
            after it are in neither the dump nor the manifest (the sandbox world resumes its inserts there).
        signer: signs the manifest (``[backup] signing_key_env``); ``None`` stores it unsigned.

    Returns:
        The manifest as stored.

    Raises:
        HarnessError: the database, a table or storage cannot be read or written; ``pg_dump`` failed; a
            configured table or time column is missing or not a time (one line naming the key of drill.toml);
            the DSN connects to another database than ``options.database_name``.
    """
    moment = backup_time(taken_at)
    settings = options.database()
    key = timestamped_key(prefix, moment, ".dump", options.key_name)
    conninfo, password_env = libpq_target(dsn)
    roles = _dump_globals(pg_dump, conninfo, password_env, key) if options.globals else None
    with _connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot_row = conn.execute("SELECT pg_export_snapshot(), current_setting('server_version'), "
                                    "current_database(), pg_database_size(current_database())").fetchone()  # fmt: skip
        assert snapshot_row is not None
        snapshot, server_version, database, database_size = snapshot_row
        if options.database_name and database != options.database_name:
            raise HarnessError(
                f"the DSN connects to database {database!r}, not to {options.database_name!r} of [[databases]] (whose "
                "dumps this prefix holds): point --dsn-env at that database"
            )
        tables = count_tables(conn, settings, moment)
        beat = heartbeat_spec(settings)
        heartbeat = None if beat is None else newest_time(conn, beat, settings.time_zone)
        if on_snapshot is not None:
            on_snapshot()
        argv = [os.fspath(pg_dump), f"--format={options.dump_format}", compress_argument(pg_dump, options.compression),
                f"--snapshot={snapshot}", "--no-password", f"--dbname={conninfo}"]  # fmt: skip
        result = _stream_dump(argv, {**password_env, RUN_ENV: run_id()}, client, bucket, key, options.timeout_s)
    manifest = BackupManifest(
        kind="logical",
        key=key,
        taken_at=moment,
        format=options.dump_format,
        compression=options.compression,
        sha256=result[0],
        size=result[1],
        server_version=server_version,
        database=database,
        tables=tables,
        all_tables=settings.count_all_tables,
        heartbeat=heartbeat,
        database_size=database_size,
        globals=None if roles is None else _put_globals(client, bucket, key, roles),
    )
    manifest = put_manifest(client, bucket, manifest, signer)
    log.info("logical backup s3://%s/%s: %d bytes, sha256 %s", bucket, key, manifest.size, manifest.sha256[:12])
    return manifest


def _dump_globals(pg_dump: Path, conninfo: str, password_env: dict[str, str], key: str) -> bytes:
    """The cluster's roles and memberships as ``pg_dumpall --globals-only --no-role-passwords`` writes them.

    Taken before the dump, so a backup user that cannot read them fails the backup before anything is stored.

    Raises:
        HarnessError: ``pg_dumpall`` failed (one line naming ``[backup] globals``, which turns it off).
    """
    argv: list[str | os.PathLike[str]] = [pg_dump.parent / "pg_dumpall", "--globals-only", "--no-role-passwords",
                                          "--no-password", f"--dbname={conninfo}"]  # fmt: skip
    try:
        out = subprocess.run([os.fspath(a) for a in argv], capture_output=True, timeout=600, check=False,
                             env={**os.environ, **password_env, RUN_ENV: run_id()})  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"cannot run {argv[0]} for the roles beside {key}: {exc}") from None
    if out.returncode != 0:
        lines = out.stderr.decode(errors="replace").strip().splitlines()
        cause = next((line for line in lines if "error:" in line), lines[-1] if lines else f"exit {out.returncode}")
        raise HarnessError(
            f"cannot store the roles beside {key}: {cause.strip()}; the backup user must be able to read the "
            "cluster's roles (pg_roles, pg_auth_members), or set [backup] globals = false in drill.toml (the drill "
            "then cannot verify owners and grants)"
        )
    return out.stdout


def _put_globals(client: Any, bucket: str, key: str, roles: bytes) -> Companion:
    """Store the globals at ``<key>.globals.sql`` and describe them for the manifest."""
    where = key + GLOBALS_SUFFIX
    try:
        client.put_object(Bucket=bucket, Key=where, Body=roles, ContentType="text/plain")
    except (ClientError, BotoCoreError) as exc:
        raise HarnessError(f"s3://{bucket}/{where}: cannot store the roles: {exc}") from None
    return Companion(sha256=hashlib.sha256(roles).hexdigest(), size=len(roles))


def _stream_dump(
    argv: list[str], env: dict[str, str], client: Any, bucket: str, key: str, timeout: float
) -> tuple[str, int]:
    """Run ``pg_dump`` with its stdout piped into the upload; publish only if it exits 0 in time."""
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env={**os.environ, **env})
        except OSError as exc:
            raise HarnessError(f"cannot run {argv[0]}: {exc.strerror}") from None
        killer = threading.Timer(timeout, process.kill)
        killer.start()

        def check_exit() -> None:
            code = process.wait(timeout=60)
            if code != 0:
                raise HarnessError(f"pg_dump failed for s3://{bucket}/{key}: {_last_line(stderr, code, timeout)}")

        try:
            stdout: IO[bytes] = process.stdout  # type: ignore[assignment]
            result = upload_stream(client, bucket, key, stdout, before_complete=check_exit)
        finally:
            killer.cancel()
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
    return result.sha256, result.size


def _last_line(stderr: IO[bytes], code: int, timeout: float) -> str:
    stderr.seek(0)
    lines = stderr.read().decode(errors="replace").strip().splitlines()
    if code < 0:
        return f"killed after the {timeout:g} s deadline" if not lines else lines[-1]
    return lines[-1] if lines else f"exit code {code}"
