"""The throwaway servers a drill restored into, described for the record: where they ran and how they differ.

A staging copy is disposable, so it is tuned for restore speed (``fsync = off``, no WAL to speak of, no
autovacuum): its restore time is shorter than a durable server's would be. The record lists each server's
host, port and version with the settings in which it differs from the server's shipped defaults (those a
production server runs unless its operator changed them), so RTO is read knowing what it was measured on.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.records.record import StagingServer
from harness.services.external import ExternalPostgres
from harness.services.postgres import PostgresServer
from harness.services.redis import PRODUCTION_PERSISTENCE, RedisServer

__all__ = ["POSTGRES_DEFAULTS", "existing_postgres", "postgres_server", "redis_server"]

POSTGRES_DEFAULTS: Mapping[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "maintenance_work_mem": "64MB",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "5min",
    "autovacuum": "on",
    "shared_buffers": "128MB",
    "max_parallel_maintenance_workers": "2",
    "jit": "on",
    "archive_mode": "off",
    "ssl": "off",
}
"""PostgreSQL's shipped defaults of the settings a throwaway server may change (``postgresql.conf.sample``)."""


def _differing(settings: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in settings.items() if POSTGRES_DEFAULTS.get(name, value) != value}


def postgres_server(what: str, server: PostgresServer, settings: Mapping[str, str]) -> StagingServer:
    """A PostgreSQL throwaway started with ``settings``: those that differ from PostgreSQL's defaults are listed."""
    return StagingServer(what=what, host=server.host, port=server.port, version=f"PostgreSQL {server.binaries.version}",
                         settings=_differing(settings))  # fmt: skip


def existing_postgres(what: str, server: ExternalPostgres) -> StagingServer:
    """An existing server the drill restored into (it tunes nothing there): its own settings that differ."""
    return StagingServer(what=what, host=server.host, port=server.port, version=f"PostgreSQL {server.server.version}",
                         settings=_differing(server.server.settings))  # fmt: skip


def redis_server(what: str, server: RedisServer) -> StagingServer:
    """A Redis throwaway: its version, and its persistence where it differs from production's."""
    with server.client() as client:
        version = str(client.info("server").get("redis_version", "unknown"))
        found = {name: str(client.config_get(name).get(name, "")) for name in PRODUCTION_PERSISTENCE}
    changed = {name: value or '""' for name, value in found.items() if value != PRODUCTION_PERSISTENCE[name]}
    return StagingServer(what=what, host=server.host, port=server.port, version=f"Redis {version}", settings=changed)
