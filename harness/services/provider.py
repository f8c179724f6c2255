"""Choosing where throwaway servers come from, once per session, and saying which was chosen."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.config import ServiceSettings
from harness.errors import ServiceError
from harness.services.docker import docker_available
from harness.services.postgres import PostgresBinaries, PostgresServer, find_binaries
from harness.services.redis import RedisServer, find_redis_server
from harness.services.s3 import MotoS3

__all__ = ["Provider", "choose_provider"]

log = logging.getLogger("harness.services")


def choose_provider(settings: ServiceSettings) -> Literal["local", "docker"]:
    """``local`` unless asked for Docker, or ``auto`` finds no local binaries but an engine that answers.

    Local processes are preferred by ``auto`` because they start in under a second and need no engine;
    Docker is the fallback for machines without PostgreSQL or Redis installed.

    Raises:
        ServiceError: ``docker`` was asked for and no engine answers.
    """
    if settings.provider == "docker":
        if not docker_available():
            raise ServiceError("services.provider = 'docker' but no Docker engine answers; use 'local' or 'auto'")
        return "docker"
    if settings.provider == "local":
        return "local"
    try:
        find_binaries(settings.postgres_bin_dir)
        find_redis_server(settings.redis_server)
    except ServiceError:
        if docker_available():
            log.info("no local PostgreSQL/Redis binaries; a Docker engine answers, so containers are used")
            return "docker"
        raise
    return "local"


@dataclass
class Provider:
    """Starts throwaway servers of one kind (local processes here; containers through testcontainers)."""

    settings: ServiceSettings
    kind: Literal["local", "docker"] = "local"
    binaries: PostgresBinaries | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Provider:
        """Resolve the choice once; the report states it."""
        kind = choose_provider(settings)
        binaries = find_binaries(settings.postgres_bin_dir)
        return cls(settings, kind, binaries)

    def describe(self) -> str:
        """One line for the report: which provider, which binaries."""
        if self.kind == "docker":
            return f"docker ({self.settings.postgres_image}, {self.settings.redis_image})"
        assert self.binaries is not None
        return f"local (PostgreSQL {self.binaries.version} from {self.binaries.source}; redis-server)"

    def _local_only(self, what: str) -> None:
        if self.kind == "docker":
            raise ServiceError(
                f"{what} containers are not wired into the drill yet; install the local binaries "
                "(`uv sync`, `apt-get install -y redis-server`) or set services.provider = 'local'"
            )

    def postgres(
        self,
        name: str,
        *,
        settings: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        throwaway: bool = True,
    ) -> PostgresServer:
        """A PostgreSQL the harness owns; ``throwaway=False`` for one standing in for production."""
        self._local_only("PostgreSQL")
        return PostgresServer.create(
            name, settings=settings, binaries=self.binaries, data_dir=data_dir, throwaway=throwaway
        )

    def redis(
        self, name: str, *, settings: Mapping[str, str] | None = None, rdb_file: Path | None = None
    ) -> RedisServer:
        """A throwaway Redis."""
        self._local_only("Redis")
        return RedisServer.create(name, settings=settings, rdb_file=rdb_file, executable=self.settings.redis_server)

    def s3(self) -> MotoS3:
        """A throwaway S3 endpoint (moto)."""
        self._local_only("S3")
        return MotoS3.create()
