"""A logical backup: ``pg_dump`` streamed straight into object storage, with a manifest of the same snapshot.

The drill later restores the dump and compares it with the manifest, so the manifest's numbers must describe
exactly the data inside the dump. A REPEATABLE READ transaction exports its snapshot
(``pg_export_snapshot()``), counts the critical tables in it, and ``pg_dump --snapshot`` dumps that very
snapshot: rows committed in between are in neither. The dump never touches local disk or memory beyond one
upload part, so a backup host needs no room for the database.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from harness.backup.store import backup_time, put_manifest, timestamped_key
from harness.config import DrillConfig
from harness.errors import HarnessError
from harness.redact import register_secret
from harness.services.base import RUN_ENV, run_id
from harness.storage.manifest import BackupManifest, TableStats
from harness.storage.signing import ManifestSigner
from harness.storage.upload import upload_stream

__all__ = ["DumpOptions", "backup_postgres", "dump_options", "libpq_target"]

log = logging.getLogger("harness.backup.postgres")


@dataclass(frozen=True)
class DumpOptions:
    """What to dump and what to count; the defaults follow the plan (custom format, compressed)."""

    critical_tables: Sequence[str] = ()
    time_columns: Mapping[str, str] = field(default_factory=dict)
    heartbeat_table: str = ""
    heartbeat_column: str = "beat_at"
    dump_format: str = "custom"
    compression: str = "gzip:6"
    timeout_s: float = 6 * 3600.0

    def time_column(self, table: str) -> str:
        """The column holding a row's insert time (``created_at`` unless configured)."""
        return self.time_columns.get(table, "created_at")


def dump_options(config: DrillConfig) -> DumpOptions:
    """The dump options a drill configuration asks for (its critical tables, time columns, heartbeat)."""
    database = config.database
    return DumpOptions(
        critical_tables=tuple(database.critical_tables),
        time_columns=dict(database.time_columns),
        heartbeat_table=database.heartbeat_table,
        heartbeat_column=database.heartbeat_column,
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


def _stats(conn: psycopg.Connection[tuple[Any, ...]], table: str, column: str, since: datetime) -> TableStats:
    query = sql.SQL("SELECT count(*), count(*) FILTER (WHERE {col} > %s), max({col}) FROM {table}").format(
        col=sql.Identifier(column), table=sql.Identifier(table)
    )
    try:
        row = conn.execute(query, (since,)).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        raise HarnessError(
            f"critical table {table!r} (time column {column!r}) cannot be counted: {exc.diag.message_primary}; "
            "fix [database] critical_tables / time_columns in drill.toml"
        ) from None
    assert row is not None
    return TableStats(rows=row[0], rows_last_24h=row[1], newest=row[2])


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
    """Dump the database at ``dsn`` into ``bucket`` under ``<prefix>codeblack-<ts>.dump`` with its manifest.

    Args:
        dsn: libpq URL or conninfo of the database to back up (read only: nothing is written to it).
        client: a boto3 S3 client.
        bucket: the backup bucket.
        prefix: the logical-dump prefix, e.g. ``postgres/logical/``.
        pg_dump: the ``pg_dump`` program (same major version as the server, or newer).
        options: tables to count, format and compression.
        taken_at: the time the key and the manifest carry (default now); the sandbox world passes the
            simulated time so its history spans days.
        on_snapshot: called once the snapshot is fixed and counted, before the dump streams; writes made
            after it are in neither the dump nor the manifest (the sandbox world resumes its inserts there).
        signer: signs the manifest (``[backup] signing_key_env``); ``None`` stores it unsigned.

    Returns:
        The manifest as stored.

    Raises:
        HarnessError: the database, a table or storage cannot be read or written; ``pg_dump`` failed.
    """
    moment = backup_time(taken_at)
    key = timestamped_key(prefix, moment, ".dump")
    conninfo, password_env = libpq_target(dsn)
    try:
        conn = psycopg.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the database to back up: {str(exc).strip().splitlines()[0]}") from None
    with conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot_row = conn.execute("SELECT pg_export_snapshot(), current_setting('server_version'), "
                                    "current_database()").fetchone()  # fmt: skip
        assert snapshot_row is not None
        snapshot, server_version, database = snapshot_row
        since = moment - timedelta(hours=24)
        tables = {t: _stats(conn, t, options.time_column(t), since) for t in options.critical_tables}
        heartbeat = None
        if options.heartbeat_table:
            heartbeat = _stats(conn, options.heartbeat_table, options.heartbeat_column, since).newest
        if on_snapshot is not None:
            on_snapshot()
        argv = [os.fspath(pg_dump), f"--format={options.dump_format}", f"--compress={options.compression}",
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
        heartbeat=heartbeat,
    )
    manifest = put_manifest(client, bucket, manifest, signer)
    log.info("logical backup s3://%s/%s: %d bytes, sha256 %s", bucket, key, manifest.size, manifest.sha256[:12])
    return manifest


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
