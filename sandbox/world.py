"""The sandbox world: "production" built on this machine, with a backup history made by the real backup code.

A drill needs something to verify. For the sandbox, this module starts a production PostgreSQL (migrated to
head), a production Redis (AOF plus RDB saves) and an S3 endpoint, and then replays four weeks of business
in chronological order. Whenever the simulated clock passes a backup time it runs the very functions an
operator's cron runs (:mod:`harness.backup`) with ``taken_at`` set to that time, so each dump holds exactly
the rows that existed then and its manifest says so. Only backups that the retention rules would keep are
taken (the others would be pruned at once), which keeps the build well under 30 s on two cores.

Hosts: everything runs on 127.0.0.1, so the world reports its database host as
:data:`PRODUCTION_DB_HOST`, the name production's database would have; the off-server rule then compares the
storage endpoint's host with that name, as it would for a real deployment.

Data is deterministic (seeded) except for "now", which anchors the history so that the newest dump is half
a dump interval old (:func:`timeline`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
from alembic import command
from pydantic import SecretStr

from harness.backup.base import backup_base
from harness.backup.postgres import DumpOptions, backup_postgres, dump_options
from harness.backup.redis import backup_redis
from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import HarnessError
from harness.redact import register_secret
from harness.services.postgres import PostgresServer
from harness.services.provider import Provider
from harness.services.redis import RedisServer
from harness.services.s3 import S3Server
from harness.storage.signing import ManifestSigner
from sandbox.codeblack.revisions import alembic_config
from sandbox.codeblack.seed import CRITICAL_KEYS, NORMAL_KEYS
from sandbox.codeblack.signing import public_key_b64

__all__ = [
    "HEARTBEAT_KEY",
    "MANIFEST_SEED",
    "PRODUCTION_DB_HOST",
    "Mutation",
    "Timeline",
    "VariantContext",
    "World",
    "WorldOptions",
    "list_keys",
    "set_noncurrent_rule",
    "timeline",
]

log = logging.getLogger("sandbox.world")

PRODUCTION_DB_HOST = "db.codeblack.internal"
"""The simulated production database host name (every server really listens on 127.0.0.1)."""

HEARTBEAT_KEY = "codeblack:heartbeat"
"""The Redis key production's app refreshes (the world sets it at the start of every simulated day and at "now")."""
MANIFEST_SEED = base64.b64encode(hashlib.sha256(b"codeblack-drills sandbox manifests: a published rehearsal key")
                                 .digest()).decode()  # fmt: skip
"""The seed the world signs its manifests with, published on purpose: the sandbox is a rehearsal whose records
are never evidence, and the embedded ``drill.toml`` carries its public key so that the monthly drill on the
sandbox authenticates manifests exactly as on a real target. A real target's seed lives only in the variable
``[backup] signing_key_env`` names, and only on its backup hosts."""

RECORDS_SEED = base64.b64encode(hashlib.sha256(b"codeblack-drills sandbox drill records: a published rehearsal key")
                                .digest()).decode()  # fmt: skip
"""The seed the sandbox signs its drill records with, published like :data:`MANIFEST_SEED` (the embedded
``drill.toml`` carries its public key as ``[reports] verify_key``): a rehearsal's records prove the mechanism,
never a recovery. A real target's records seed lives only in the variable ``[reports] signing_key_env`` names."""

PRODUCTION_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "4",
    "fsync": "off",  # a simulation: durability of the sandbox's own disk is not what is being drilled
    "synchronous_commit": "off",
}


@dataclass(frozen=True)
class WorldOptions:
    """Knobs for worlds whose live servers differ (bucket-level breakage is a cheap :meth:`World.variant`)."""

    history_days: int = 28
    seed: int = 20_261_124
    redis_appendonly: str = "yes"
    redis_save: str = "3600 1 300 100"
    applications_per_hour: tuple[int, int] = (3, 9)
    base_compression: str = "gzip:1"


@dataclass(frozen=True)
class Timeline:
    """When each kind of backup is taken: only the times the retention rules keep."""

    start: datetime
    now: datetime
    marks: tuple[datetime, ...]
    dumps: frozenset[datetime]
    days: frozenset[datetime]
    daily: frozenset[datetime]
    weekly: frozenset[datetime]
    redis: frozenset[datetime]


def timeline(config: DrillConfig, now: datetime, history_days: int) -> Timeline:
    """The simulated clock's stops between ``now - history_days`` and ``now``, and what each one backs up.

    Dumps every ``dump_interval_hours``, the newest half an interval before ``now``; the world's days start
    at the newest stop and every 24 h before it. Base backups at the newest ``daily_snapshots`` day starts and
    the newest ``weekly_snapshots`` that fall on a Sunday; a Redis copy at each day start within the retention
    window. The stops are anchored to ``now``, not to the wall clock's midnight, so that every drill of a
    fresh world measures the same RPOs: with stops at midnight UTC, a world built just before 00:00, 06:00,
    12:00 or 18:00 and drilled just after held newest data one whole interval old, and missed its RPO.
    """
    objectives = config.objectives
    interval = timedelta(hours=objectives.dump_interval_hours)
    newest = now - interval / 2
    start = newest - timedelta(days=history_days)
    marks: list[datetime] = []
    mark = newest
    while mark >= start:
        marks.append(mark)
        mark -= interval
    marks.reverse()
    window = now - timedelta(days=objectives.retention_days)
    days = [m for m in marks if (newest - m) % timedelta(days=1) == timedelta(0)]
    sundays = [m for m in days if m.weekday() == 6]
    return Timeline(
        start=start,
        now=now,
        marks=tuple(marks),
        dumps=frozenset(m for m in marks if m > window),
        days=frozenset(days),
        daily=frozenset(days[-objectives.daily_snapshots :] if objectives.daily_snapshots else ()),
        weekly=frozenset(sundays[-objectives.weekly_snapshots :] if objectives.weekly_snapshots else ()),
        redis=frozenset(m for m in days if m > window),
    )


# --- the business history -------------------------------------------------------------------------------

_FIRST = ("Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena")
_LAST = ("Novak", "Okafor", "Petrov", "Quist", "Rossi", "Sato", "Tanaka", "Ulrich", "Varga", "Weber", "Yilmaz")
_ACTORS = ("ops-alice", "ops-bob", "ops-carol", "ops-dave")

Row = tuple[Any, ...]


@dataclass
class _Table:
    """Rows of one table in chronological order; ``sent`` counts those already inserted."""

    name: str
    columns: tuple[str, ...]
    time_index: int
    rows: list[Row] = field(default_factory=list)
    sent: int = 0

    def due(self, until: datetime) -> list[Row]:
        """The rows created up to ``until`` that are not inserted yet."""
        end = self.sent
        while end < len(self.rows) and self.rows[end][self.time_index] <= until:
            end += 1
        batch, self.sent = self.rows[self.sent : end], end
        return batch


def _history(rng: random.Random, start: datetime, now: datetime, per_hour: tuple[int, int]) -> list[_Table]:
    """Seeded, realistic business rows from ``start`` to ``now``, each table sorted by its time column."""
    apps = _Table("applications", ("applicant_name", "email", "status", "amount", "created_at"), 4)
    orders = _Table("orders", ("application_id", "amount", "currency", "status", "created_at"), 4)
    blacklist = _Table("blacklist_entries", ("kind", "value", "reason", "created_at"), 3)
    audit = _Table(
        "config_change_history",
        ("config_key", "action", "actor", "old_value", "new_value", "status", "reason", "created_at"),
        7,
    )
    beats = _Table("heartbeats", ("source", "beat_at"), 1)
    hour = start
    while hour < now:
        for _ in range(rng.randint(*per_hour)):
            at = hour + timedelta(seconds=rng.randrange(3600))
            if at > now:
                continue
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            amount = Decimal(rng.randrange(5_000, 500_000)) / 100
            status = rng.choice(("submitted", "approved", "approved", "declined"))
            apps.rows.append((f"{first} {last}", f"{first}.{last}{len(apps.rows)}@mail.example".lower(),
                              status, amount, at))  # fmt: skip
            for _ in range(rng.choice((0, 1, 1, 1, 2)) if status == "approved" else 0):
                ordered = at + timedelta(minutes=rng.randrange(5, 240))
                if ordered <= now:
                    orders.rows.append((len(apps.rows), amount, rng.choice(("EUR", "EUR", "USD")),
                                        rng.choice(("created", "paid", "paid")), ordered))  # fmt: skip
        if rng.random() < 0.9:
            kind = rng.choice(("email", "phone", "device"))
            at = hour + timedelta(seconds=rng.randrange(3600))
            blacklist.rows.append((kind, f"{kind}-{len(blacklist.rows):06d}", "chargeback", at))
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            at = hour + timedelta(seconds=rng.randrange(3000))
            audit.rows.extend(_config_change(rng, at, len(audit.rows)))
        beats.rows.extend(("api-1", hour + timedelta(minutes=m)) for m in range(0, 60, 5))
        hour += timedelta(hours=1)
    for table in (apps, orders, blacklist, audit, beats):
        table.rows = [r for r in table.rows if r[table.time_index] <= now]
        table.rows.sort(key=lambda r, i=table.time_index: r[i])  # type: ignore[misc]
    return [apps, orders, blacklist, audit, beats]


def _config_change(rng: random.Random, at: datetime, serial: int) -> list[Row]:
    """Audit rows of one config change: critical keys go proposed → approved (by another actor) → applied."""
    proposer, approver = rng.sample(_ACTORS, 2)
    if rng.random() < 0.3:
        key = rng.choice(CRITICAL_KEYS)
        old, new = f"{rng.randrange(100, 900)}.00", f"{rng.randrange(100, 900)}.00"
        steps = (
            ("proposed", proposer, "pending"),
            ("approved", approver, "approved"),
            ("applied", approver, "applied"),
        )
        return [(key, action, actor, old, new, status, f"change {serial}", at + timedelta(minutes=7 * i))
                for i, (action, actor, status) in enumerate(steps)]  # fmt: skip
    key = rng.choice(NORMAL_KEYS)
    return [(key, "applied", proposer, "old", f"value {serial}", "applied", None, at)]


def _insert(server: PostgresServer, dbname: str, tables: Sequence[_Table], until: datetime) -> int:
    """COPY every row created up to ``until`` (the simulated clock) into production."""
    count = 0
    with server.connect(dbname) as conn, conn.transaction():
        for table in tables:
            batch = table.due(until)
            if not batch:
                continue
            with conn.cursor().copy(f"COPY {table.name} ({', '.join(table.columns)}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
            count += len(batch)
    return count


def _touch_redis(client: redis.Redis, rng: random.Random, moment: datetime) -> None:
    """A day of production Redis traffic: sessions, rate-limit counters, the app's heartbeat.

    Beside the expiring sessions and counters, keys of every type that never expire (the heartbeat, the command
    audit list, a config cache, device and offender lists, an event stream), so a restore drill samples each type.
    """
    with client.pipeline(transaction=False) as pipe:
        for _ in range(rng.randint(20, 40)):
            pipe.set(f"session:{rng.getrandbits(64):016x}", f"user-{rng.randrange(5000)}", ex=14 * 86400)
        for _ in range(rng.randint(5, 15)):
            pipe.set(f"ratelimit:203.0.113.{rng.randrange(256)}", rng.randrange(1, 60), ex=3600)
        pipe.set(HEARTBEAT_KEY, moment.isoformat())
        pipe.lpush("codeblack:audit:commands", f"{moment.isoformat()} config sync")
        pipe.hset("codeblack:config:cache", mapping={"synced_at": moment.isoformat(), f"day:{moment:%m%d}": "ok"})
        pipe.sadd("codeblack:blacklist:devices", f"device-{moment:%Y%m%d}")
        pipe.zadd("codeblack:offenders", {f"203.0.113.{moment.day}": moment.timestamp()})
        pipe.xadd("codeblack:events", {"event": "config sync", "at": moment.isoformat()})
        pipe.execute()


# --- the world --------------------------------------------------------------------------------------------


@dataclass
class VariantContext:
    """What a mutation of a variant gets: storage, the copied buckets, and the world to take real dumps."""

    client: Any
    source_bucket: str
    bucket: str
    uploads_bucket: str
    world: World


Mutation = Callable[[VariantContext], None]


@dataclass
class World:
    """The running production of the sandbox and its backup history."""

    config: DrillConfig
    deployment: Deployment
    production_pg: PostgresServer
    production_redis: RedisServer
    s3: S3Server
    signing_seed: SecretStr = field(repr=False)
    timeline: Timeline
    options: WorldOptions
    build_seconds: float = 0.0
    manifest_signer: ManifestSigner = field(default_factory=lambda: ManifestSigner(MANIFEST_SEED), repr=False)
    records_signer: ManifestSigner = field(default_factory=lambda: ManifestSigner(RECORDS_SEED), repr=False)
    provider: Provider | None = field(default=None, repr=False)
    _extra_redis: list[RedisServer] = field(default_factory=list, repr=False)
    _stopped: bool = False
    _variants: int = 0

    @property
    def now(self) -> datetime:
        """The time the history ends at (the world's "now")."""
        return self.timeline.now

    @property
    def database(self) -> str:
        """The production database's name."""
        return self.config.database.name

    @property
    def dsn(self) -> str:
        """The production database's DSN (for the world's own backups and variants; never for the drill)."""
        return self.production_pg.dsn(self.database)

    def dump_options(self) -> DumpOptions:
        """How the world's logical backups are taken (the same as the CLI's for this config)."""
        return dump_options(self.config)

    @classmethod
    def build(
        cls,
        provider: Provider,
        config: DrillConfig,
        *,
        now: datetime | None = None,
        options: WorldOptions | None = None,
    ) -> World:
        """Start production and replay its history; every server is stopped again if anything fails.

        Args:
            provider: where the throwaway servers come from.
            config: the drill configuration (objectives, buckets, prefixes, critical tables).
            now: where the history ends (default: the current time, to the second).
            options: knobs for the live servers and the history.
        """
        options = options or WorldOptions()
        started = time.monotonic()
        moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        with contextlib.ExitStack() as undo, ThreadPoolExecutor(max_workers=1) as starter:
            # moto's server takes ~2 s to import; it starts beside PostgreSQL. Only moto is started from a
            # worker thread (it then lacks the parent-death signal; the stop below and the sweeper cover it).
            s3_started = starter.submit(provider.s3)
            undo.callback(lambda: s3_started.result().stop())
            pg = provider.postgres("production", settings=PRODUCTION_SETTINGS, throwaway=False)
            undo.callback(pg.stop)
            rd = provider.redis("production", settings={"appendonly": options.redis_appendonly,
                                                        "save": options.redis_save}, throwaway=False)  # fmt: skip
            undo.callback(rd.stop)
            s3 = s3_started.result()
            log.info("world: servers up in %.1f s", time.monotonic() - started)
            world = cls._assemble(config, pg, rd, s3, timeline(config, moment, options.history_days), options)
            world.provider = provider
            world.deployment = replace(world.deployment, provider=f"sandbox world, {provider.describe()}")
            world._replay()
            world.build_seconds = time.monotonic() - started
            undo.pop_all()
        log.info("world: built in %.1f s (history %s → %s)", world.build_seconds, world.timeline.start, moment)
        return world

    @classmethod
    def _assemble(
        cls, config: DrillConfig, pg: PostgresServer, rd: RedisServer, s3: S3Server, line: Timeline, opts: WorldOptions
    ) -> World:
        seed = SecretStr(register_secret(base64.b64encode(secrets.token_bytes(32)).decode()))
        world_config = config.with_changes(
            storage={"endpoint_url": s3.endpoint.url or "", "database_host": PRODUCTION_DB_HOST},
            database={"heartbeat_table": config.database.heartbeat_table or "heartbeats"},
            redis={"heartbeat_key": config.redis.heartbeat_key or HEARTBEAT_KEY},
            app={"verify_key": public_key_b64(seed.get_secret_value())},
        )
        deployment = Deployment(
            name=config.target.name,
            config=world_config,
            storage=s3.endpoint,
            redis_url=rd.url,
            database_host=PRODUCTION_DB_HOST,
            verify_key=world_config.app.verify_key,
            app_secrets={config.app.signing_key_env: seed},
            provider="sandbox world",
        )
        return cls(world_config, deployment, pg, rd, s3, seed, line, opts)

    def _replay(self) -> None:
        """Migrate, create buckets, then walk the clock through the history taking the backups due."""
        phase = time.monotonic()
        self.production_pg.create_database(self.database)
        command.upgrade(alembic_config(self.production_pg.sqlalchemy_url(self.database)), "head")
        client = self.s3.client()
        self._buckets(client)
        log.info("world: database at head and buckets ready in %.1f s", time.monotonic() - phase)
        rng = random.Random(self.options.seed)
        tables = _history(rng, self.timeline.start, self.now, self.options.applications_per_hour)
        storage, line = self.config.storage, self.timeline
        pg_dump, pg_basebackup = (self.production_pg.binaries.tool(t) for t in ("pg_dump", "pg_basebackup"))
        options = self.dump_options()
        spent = dict.fromkeys(("insert", "base", "redis"), 0.0)
        dumps: list[Future[Any]] = []
        with self.production_redis.client() as rd, ThreadPoolExecutor(max_workers=1) as dumper:
            for mark in line.marks:
                phase = time.monotonic()
                _insert(self.production_pg, self.database, tables, mark)
                spent["insert"] += time.monotonic() - phase
                if mark in line.dumps:
                    # The dump streams in the background; the clock moves on once its snapshot is fixed.
                    fixed = threading.Event()
                    dumps.append(dumper.submit(backup_postgres, self.dsn, client, storage.backup_bucket,
                                               storage.logical_prefix, pg_dump=pg_dump, options=options,
                                               taken_at=mark, on_snapshot=fixed.set,
                                               signer=self.manifest_signer))  # fmt: skip
                    while not fixed.wait(0.01):
                        if dumps[-1].done():
                            dumps[-1].result()
                bases = ((storage.base_daily_prefix, line.daily), (storage.base_weekly_prefix, line.weekly))
                for prefix, marks in bases:
                    if mark in marks:
                        phase = time.monotonic()
                        backup_base(self.dsn, client, storage.backup_bucket, prefix, pg_basebackup=pg_basebackup,
                                    taken_at=mark, compression=self.options.base_compression,
                                    signer=self.manifest_signer)  # fmt: skip
                        spent["base"] += time.monotonic() - phase
                if mark in line.days:
                    _touch_redis(rd, rng, mark)
                if mark in line.redis:
                    phase = time.monotonic()
                    backup_redis(self.production_redis.url, client, storage.backup_bucket, storage.redis_prefix,
                                 taken_at=mark, wait_timeout=30, key_name=self.config.backup_key_name(),
                                 signer=self.manifest_signer, sample_keys=self.config.backup.redis_sample_keys,
                                 redis_server=self.config.services.redis_server,
                                 sample_memory_mb=self.config.restore.redis_memory_mb)  # fmt: skip
                    spent["redis"] += time.monotonic() - phase
            for dump in dumps:
                dump.result()
            _insert(self.production_pg, self.database, tables, self.now)
            _touch_redis(rd, rng, self.now)
        log.info(
            "world: rows inserted in %.1f s; %d dumps, %d base backups (%.1f s), %d Redis copies (%.1f s)",
            spent["insert"], len(dumps), len(line.daily) + len(line.weekly), spent["base"],
            len(line.redis), spent["redis"],
        )  # fmt: skip

    def _buckets(self, client: Any) -> None:
        """The versioned backup bucket; the uploads bucket with its lifecycle rule and a few proofs."""
        storage = self.config.storage
        for bucket in (storage.backup_bucket, storage.uploads_bucket):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        set_noncurrent_rule(client, storage.uploads_bucket, self.config.objectives.noncurrent_days)
        records = self.config.reports.storage_bucket
        if records and records not in (storage.backup_bucket, storage.uploads_bucket):
            # Write-once: Object Lock (which turns versioning on) lets each drill record be locked in compliance mode.
            client.create_bucket(Bucket=records, ObjectLockEnabledForBucket=True)
        uploads = storage.uploads_bucket
        jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) + b"\xff\xd9"
        client.put_object(Bucket=uploads, Key="proofs/applications/1/id-front.jpg", Body=jpeg + b"v1")
        client.put_object(Bucket=uploads, Key="proofs/applications/1/id-front.jpg", Body=jpeg + b"v2")
        client.put_object(Bucket=uploads, Key="proofs/applications/2/selfie.jpg", Body=jpeg)
        client.delete_object(Bucket=uploads, Key="proofs/applications/2/selfie.jpg")
        client.put_object(Bucket=uploads, Key="proofs/applications/3/payslip.jpg", Body=jpeg)

    def variant(self, name: str, *mutations: Mutation) -> Deployment:
        """A broken copy of this world's storage, cheap enough for one test: no server is rebuilt.

        Both buckets are copied server-side to new buckets (current objects, versioning and lifecycle), the
        mutations are applied to the copies, and a Deployment pointing at them is returned; the live
        servers are shared with the world (mutations must not change them).

        Example::

            broken = world.variant("stale", stale_newest(hours=13))
            report = check_backup_age(broken)   # fails naming the newest dump and its age
        """
        started = time.monotonic()
        self._variants += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30] or "variant"
        storage = self.config.storage
        client = self.s3.client()
        copies = {}
        for source in (storage.backup_bucket, storage.uploads_bucket):
            copies[source] = f"{source[:20]}-{slug}-{self._variants}"
            _copy_bucket(client, source, copies[source])
        context = VariantContext(client, storage.backup_bucket, copies[storage.backup_bucket],
                                 copies[storage.uploads_bucket], self)  # fmt: skip
        for mutate in mutations:
            mutate(context)
        config = self.config.with_changes(
            storage={"backup_bucket": context.bucket, "uploads_bucket": context.uploads_bucket}
        )
        log.info("world: variant %r (%s) ready in %.1f s", name, context.bucket, time.monotonic() - started)
        return replace(self.deployment, name=f"{self.deployment.name} ({name})", config=config)

    def redis_variant(self, name: str, **settings: str) -> Deployment:
        """A deployment whose live Redis runs with other settings (e.g. ``appendonly="no"``), no rebuild.

        The new Redis starts from production's current RDB, so it holds the same keys; it is stopped with
        the world. Example: ``world.redis_variant("no aof", appendonly="no")``.
        """
        if self.provider is None:
            raise HarnessError("this world was not built by World.build; it has no provider for a Redis variant")
        with self.production_redis.client() as rd:
            rd.save()
            rdb = Path(str(rd.config_get("dir")["dir"])) / str(rd.config_get("dbfilename")["dbfilename"])
        merged = {"appendonly": self.options.redis_appendonly, "save": self.options.redis_save, **settings}
        server = self.provider.redis(f"production-{len(self._extra_redis) + 1}", settings=merged, rdb_file=rdb,
                                     throwaway=False)  # fmt: skip
        self._extra_redis.append(server)
        log.info("world: Redis variant %r on %s with %s", name, server.url, settings)
        return replace(self.deployment, name=f"{self.deployment.name} ({name})", redis_url=server.url)

    def stop(self) -> None:
        """Stop every server of the world; safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        for stop in (*(r.stop for r in self._extra_redis), self.production_redis.stop, self.production_pg.stop,
                     self.s3.stop):  # fmt: skip
            with contextlib.suppress(Exception):
                stop()
        log.info("world: stopped")


def set_noncurrent_rule(client: Any, bucket: str, days: int) -> None:
    """Keep noncurrent (overwritten or deleted) versions ``days`` days, the plan's "retain deleted objects"."""
    rule = {"ID": "retain-deleted", "Status": "Enabled", "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": days}}  # fmt: skip
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})


def list_keys(client: Any, bucket: str, prefix: str = "") -> Iterator[str]:
    """Every current key under ``prefix`` (paginated)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def _copy_bucket(client: Any, source: str, target: str) -> None:
    """Copy a bucket's current objects, versioning state and lifecycle rules server-side."""
    client.create_bucket(Bucket=target)
    status = client.get_bucket_versioning(Bucket=source).get("Status")
    if status:
        client.put_bucket_versioning(Bucket=target, VersioningConfiguration={"Status": status})
    with contextlib.suppress(client.exceptions.ClientError):
        rules = client.get_bucket_lifecycle_configuration(Bucket=source)["Rules"]
        client.put_bucket_lifecycle_configuration(Bucket=target, LifecycleConfiguration={"Rules": rules})
    _each(lambda key: client.copy_object(Bucket=target, Key=key, CopySource={"Bucket": source, "Key": key}),
          list_keys(client, source))  # fmt: skip


def _each(action: Callable[[str], object], keys: Iterable[str]) -> None:
    """Run a storage call per key on a few threads (S3 round trips dominate, not CPU)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(action, keys):
            pass
