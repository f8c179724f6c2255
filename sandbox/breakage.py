"""Ready-made ways to break a copy of the world's storage, one per rule the drill checks.

Each function returns a mutation for :meth:`sandbox.world.World.variant`; it changes exactly what its name
says in the variant's copied buckets and nothing else, so a test can assert the exact failure message of the
check it exercises::

    broken = world.variant("gap", gap(hours=24))
    broken = world.variant("rows", missing_rows("orders", 5))

Mutations that need a different dump (``uncompressed_dump``, ``missing_rows``, ``no_recent_inserts``) take it
with the real backup code from a scratch copy of production's database, so the dump is genuine and only the
property under test differs.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from psycopg import sql

from harness.backup.base import BASE_ARCHIVE
from harness.backup.postgres import backup_postgres
from harness.backup.store import put_manifest, timestamped_key
from harness.errors import HarnessError
from harness.services.base import label_dir, remove_dir
from harness.services.redis import LocalRedis
from harness.storage.catalogue import BackupObject, Catalogue, fetch_manifest, list_backups
from harness.storage.manifest import BackupManifest, manifest_key
from sandbox.world import Mutation, VariantContext, set_noncurrent_rule

__all__ = [
    "bulky_newest",
    "expired_kept",
    "gap",
    "hash_mismatch",
    "malformed_manifest",
    "missing_rows",
    "missing_snapshot_day",
    "no_manifest",
    "no_recent_inserts",
    "no_redis_copy_yesterday",
    "redis_key_renamed",
    "redis_sample_differs",
    "replaced_newest",
    "short_noncurrent_rule",
    "stale_newest",
    "truncated_dump",
    "uncompressed_dump",
    "unparsable_key",
    "versioning_suspended",
]


def _catalogue(ctx: VariantContext, prefix: str, suffix: str = "") -> Catalogue:
    storage = ctx.world.config.storage
    return list_backups(ctx.client, ctx.bucket, prefix, storage.timestamp_pattern, storage.timestamp_format,
                        suffix=suffix)  # fmt: skip


def _dumps(ctx: VariantContext) -> Catalogue:
    return _catalogue(ctx, ctx.world.config.storage.logical_prefix)


def _delete(ctx: VariantContext, objects: list[BackupObject], *, folder: bool = False) -> None:
    """Delete objects with their manifests (or their whole folder, for base backups)."""
    for obj in objects:
        if folder:
            prefix = obj.key.rsplit("/", 1)[0] + "/"
            listed = ctx.client.list_objects_v2(Bucket=ctx.bucket, Prefix=prefix).get("Contents", [])
            keys = [str(item["Key"]) for item in listed]
        else:
            keys = [obj.key, manifest_key(obj.key)]
        for key in keys:
            ctx.client.delete_object(Bucket=ctx.bucket, Key=key)


def _rewrite_newest_manifest(
    ctx: VariantContext, change: Callable[[BackupManifest], BackupManifest], prefix: str = ""
) -> None:
    """Rewrite the newest manifest under ``prefix`` (default: the logical dumps'), signed as a faulty host would."""
    newest = _catalogue(ctx, prefix, ".rdb").newest() if prefix else _dumps(ctx).newest()
    put_manifest(
        ctx.client, ctx.bucket, change(fetch_manifest(ctx.client, ctx.bucket, newest.key)), ctx.world.manifest_signer
    )


def stale_newest(hours: float) -> Mutation:
    """Delete the dumps of the last ``hours`` hours, so the newest dump is at least that old."""

    def mutate(ctx: VariantContext) -> None:
        cutoff = ctx.world.now - timedelta(hours=hours)
        _delete(ctx, [obj for obj in _dumps(ctx).objects if obj.taken_at > cutoff])

    return mutate


def gap(hours: float, *, days_ago: float = 7) -> Mutation:
    """Delete consecutive dumps so that two neighbours ``days_ago`` days back are ``hours`` (or more) apart."""

    def mutate(ctx: VariantContext) -> None:
        objects = _dumps(ctx).objects
        anchor = max(obj.taken_at for obj in objects if obj.taken_at <= ctx.world.now - timedelta(days=days_ago))
        _delete(ctx, [obj for obj in objects if anchor < obj.taken_at < anchor + timedelta(hours=hours)])

    return mutate


def expired_kept(days: float) -> Mutation:
    """Add a dump (a real one, with its manifest) dated ``days`` days ago, beyond the retention window."""

    def mutate(ctx: VariantContext) -> None:
        oldest = _dumps(ctx).objects[0]
        manifest = fetch_manifest(ctx.client, ctx.bucket, oldest)
        moment = (ctx.world.now - timedelta(days=days)).replace(minute=0, second=0)
        config = ctx.world.config
        key = timestamped_key(config.storage.logical_prefix, moment, ".dump", config.backup_key_name())
        ctx.client.copy_object(Bucket=ctx.bucket, Key=key, CopySource={"Bucket": ctx.bucket, "Key": oldest.key})
        put_manifest(
            ctx.client,
            ctx.bucket,
            manifest.model_copy(update={"key": key, "taken_at": moment}),
            ctx.world.manifest_signer,
        )

    return mutate


def _day_before_newest(catalogue: Catalogue, days_ago: int) -> list[BackupObject]:
    """The objects taken ``days_ago`` world days before the newest (the world's days start at its newest copy)."""
    taken = sorted({obj.taken_at for obj in catalogue.objects}, reverse=True)
    return [obj for obj in catalogue.objects if obj.taken_at == taken[days_ago]]


def missing_snapshot_day(days_ago: int) -> Mutation:
    """Delete the daily base backup taken ``days_ago`` days before the newest one (1 = the day before it)."""

    def mutate(ctx: VariantContext) -> None:
        daily = _catalogue(ctx, ctx.world.config.storage.base_daily_prefix, BASE_ARCHIVE)
        _delete(ctx, _day_before_newest(daily, days_ago), folder=True)

    return mutate


def no_redis_copy_yesterday() -> Mutation:
    """Delete the Redis RDB copy taken the day before the newest one, and its manifest."""

    def mutate(ctx: VariantContext) -> None:
        _delete(ctx, _day_before_newest(_catalogue(ctx, ctx.world.config.storage.redis_prefix), 1))

    return mutate


def redis_sample_differs(key: str, **change: str) -> Mutation:
    """The newest Redis copy's manifest says something else of its sampled ``key`` (e.g. ``type="set"``)."""

    def sampled(manifest: BackupManifest) -> BackupManifest:
        if manifest.sample is None or key not in {entry.key for entry in manifest.sample.keys}:
            raise HarnessError(f"{manifest.key}: {key!r} is not sampled in its manifest")
        keys = [entry.model_copy(update=change) if entry.key == key else entry for entry in manifest.sample.keys]
        return manifest.model_copy(update={"sample": manifest.sample.model_copy(update={"keys": keys})})

    return lambda ctx: _rewrite_newest_manifest(ctx, sampled, ctx.world.config.storage.redis_prefix)


def redis_key_renamed(key: str, new: str) -> Mutation:
    """The newest Redis copy holds ``key`` as ``new`` (a real RDB, saved by Redis); its manifest is unchanged.

    The manifest's sha256 and size are the new file's, so only the keys tell the copies apart: the key count
    and the counts per type still hold.
    """

    def mutate(ctx: VariantContext) -> None:
        newest = _catalogue(ctx, ctx.world.config.storage.redis_prefix, ".rdb").newest()
        work = label_dir("renamed-copy")
        try:
            ctx.client.download_file(ctx.bucket, newest.key, str(work / "copy.rdb"))
            server = LocalRedis.create("renamed", rdb_file=work / "copy.rdb")
            try:
                with server.client() as client:
                    client.rename(key, new)
                    client.save()
                body = (server.data_dir / "dump.rdb").read_bytes()
            finally:
                server.stop()
        finally:
            remove_dir(work)
        ctx.client.put_object(Bucket=ctx.bucket, Key=newest.key, Body=body)
        _rewrite_newest_manifest(
            ctx,
            lambda m: m.model_copy(update={"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}),
            ctx.world.config.storage.redis_prefix,
        )

    return mutate


def hash_mismatch() -> Mutation:
    """Give the newest dump's manifest a sha256 that is not the object's."""
    return lambda ctx: _rewrite_newest_manifest(
        ctx, lambda m: m.model_copy(update={"sha256": hashlib.sha256(m.sha256.encode()).hexdigest()})
    )


def truncated_dump() -> Mutation:
    """Cut the newest dump to its first half (its manifest still describes the whole)."""

    def mutate(ctx: VariantContext) -> None:
        newest = _dumps(ctx).newest()
        body = ctx.client.get_object(Bucket=ctx.bucket, Key=newest.key)["Body"].read()
        ctx.client.put_object(Bucket=ctx.bucket, Key=newest.key, Body=body[: len(body) // 2])

    return mutate


def replaced_newest(body: bytes) -> Mutation:
    """Replace the newest dump's content with ``body`` and make its manifest agree (size and sha256).

    The download then verifies, so what is tested is how the restore treats a file that is not a usable dump
    (empty, another format), as when a broken cron uploads whatever it produced and hashes that.
    """

    def mutate(ctx: VariantContext) -> None:
        newest = _dumps(ctx).newest()
        ctx.client.put_object(Bucket=ctx.bucket, Key=newest.key, Body=body)
        _rewrite_newest_manifest(
            ctx, lambda m: m.model_copy(update={"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        )

    return mutate


def no_manifest() -> Mutation:
    """Delete the newest dump's manifest (a dump taken by a tool that writes none)."""
    return lambda ctx: ctx.client.delete_object(Bucket=ctx.bucket, Key=manifest_key(_dumps(ctx).newest().key))


def malformed_manifest(text: str) -> Mutation:
    """Overwrite the newest dump's manifest with ``text`` (cut short, or not a manifest at all)."""
    return lambda ctx: ctx.client.put_object(
        Bucket=ctx.bucket, Key=manifest_key(_dumps(ctx).newest().key), Body=text.encode()
    )


def unparsable_key(name: str) -> Mutation:
    """Add an object under the logical prefix whose key carries no timestamp (e.g. ``codeblack-latest.dump``)."""

    def mutate(ctx: VariantContext) -> None:
        key = ctx.world.config.storage.logical_prefix + name
        ctx.client.copy_object(
            Bucket=ctx.bucket, Key=key, CopySource={"Bucket": ctx.bucket, "Key": _dumps(ctx).newest().key}
        )

    return mutate


def versioning_suspended() -> Mutation:
    """Suspend versioning of the uploads bucket (deleted proofs would be gone at once)."""
    return lambda ctx: ctx.client.put_bucket_versioning(
        Bucket=ctx.uploads_bucket, VersioningConfiguration={"Status": "Suspended"}
    )


def short_noncurrent_rule(days: int = 7) -> Mutation:
    """Expire the uploads bucket's noncurrent versions after ``days`` days (the plan asks 30)."""
    return lambda ctx: set_noncurrent_rule(ctx.client, ctx.uploads_bucket, days)


@contextlib.contextmanager
def _scratch_copy(ctx: VariantContext) -> Iterator[str]:
    """A scratch copy of production's database on the same server (dropped afterwards); yields its name.

    This is the world acting as production (a dump taken after a bad delete), not the drill: the server
    stands in for production, so the drill's ``ensure_throwaway`` guard rightly refuses it.
    """
    server = ctx.world.production_pg
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    with server.connect() as conn:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
        conn.execute(create.format(sql.Identifier(name), sql.Identifier(ctx.world.database)))
    try:
        yield name
    finally:
        server.drop_database(name)


def _dump(ctx: VariantContext, dbname: str, taken_at: datetime, *, plain: bool = False) -> BackupManifest:
    world = ctx.world
    dsn = world.production_pg.dsn(dbname)
    options = world.dump_options()
    if plain:
        options = replace(options, dump_format="plain", compression="none")
    return backup_postgres(dsn, ctx.client, ctx.bucket, world.config.storage.logical_prefix,
                           pg_dump=world.production_pg.binaries.tool("pg_dump"), options=options,
                           taken_at=taken_at, signer=world.manifest_signer)  # fmt: skip


def uncompressed_dump() -> Mutation:
    """Add a newest dump in plain SQL without compression (as a misconfigured cron would), with its manifest."""

    def mutate(ctx: VariantContext) -> None:
        with _scratch_copy(ctx) as dbname:
            _dump(ctx, dbname, ctx.world.now, plain=True)

    return mutate


def missing_rows(table: str, count: int, *, recounted: bool = False) -> Mutation:
    """Add a newest dump missing ``count`` rows of ``table`` whose manifest carries the full numbers.

    The dump is real (taken after the deletion), its sha256 and size are its own; only the row numbers in
    the manifest are those from before the deletion, as if rows were lost between counting and dumping.
    With ``recounted`` the manifest is the one the backup wrote for that dump, consistent and signed: rows
    deleted in production before a backup, which no manifest can reveal.
    """

    def mutate(ctx: VariantContext) -> None:
        with _scratch_copy(ctx) as dbname:
            before = None if recounted else _dump(ctx, dbname, ctx.world.now)
            with ctx.world.production_pg.connect(dbname) as conn:
                conn.execute("SET session_replication_role = replica")  # keep referencing rows: only these go
                conn.execute(sql.SQL("DELETE FROM {t} WHERE id IN (SELECT id FROM {t} ORDER BY id DESC LIMIT %s)")
                             .format(t=sql.Identifier(table)), (count,))  # fmt: skip
            after = _dump(ctx, dbname, ctx.world.now)
        if before is not None:
            put_manifest(
                ctx.client, ctx.bucket, after.model_copy(update={"tables": before.tables}), ctx.world.manifest_signer
            )

    return mutate


def bulky_newest(rows: int) -> Mutation:
    """Add a newest dump padded with ``rows`` rows of a non-critical table, so pg_restore takes seconds.

    Fault tests need a restore that is still running when they strike; the critical tables are untouched.
    """

    def mutate(ctx: VariantContext) -> None:
        with _scratch_copy(ctx) as dbname:
            with ctx.world.production_pg.connect(dbname) as conn:
                conn.execute("CREATE TABLE padding AS SELECT g AS id, md5(g::text) AS filler "
                             "FROM generate_series(1, %s) g", (rows,))  # fmt: skip
                conn.execute("CREATE INDEX ON padding (filler)")
            _dump(ctx, dbname, ctx.world.now)

    return mutate


def no_recent_inserts() -> Mutation:
    """Add a newest dump of a database where nothing was inserted in the 24 h before it (a stalled app)."""

    def mutate(ctx: VariantContext) -> None:
        world = ctx.world
        since = world.now - timedelta(hours=24)
        options = world.dump_options()
        with _scratch_copy(ctx) as dbname:
            with world.production_pg.connect(dbname) as conn:
                conn.execute("SET session_replication_role = replica")
                columns = {table: options.time_column(table) for table in options.critical_tables}
                if options.heartbeat_table:
                    columns[options.heartbeat_table] = options.heartbeat_column
                for table, column in columns.items():
                    delete = sql.SQL("DELETE FROM {} WHERE {} > %s")
                    conn.execute(delete.format(sql.Identifier(table), sql.Identifier(column)), (since,))
            _dump(ctx, dbname, world.now)

    return mutate
