"""Choosing where throwaway servers come from, once per session, and saying which was chosen.

``local`` runs them as processes from local binaries; ``docker`` runs the drill's throwaways as containers
(:mod:`harness.services.docker`, whose docstring lists what stays local under every provider and why).
PostgreSQL's local binaries are needed either way: the client tools come from them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.config import ServiceSettings
from harness.errors import ServiceError
from harness.services.docker import (
    ContainerPostgres,
    ContainerRedis,
    MinioS3,
    docker_available,
    engine_address,
)
from harness.services.postgres import LocalPostgres, PostgresBinaries, PostgresServer, find_binaries
from harness.services.redis import LocalRedis, RedisServer, find_redis_server
from harness.services.s3 import MotoS3, S3Server

__all__ = ["Provider", "choose_provider"]

log = logging.getLogger("harness.services")


def choose_provider(settings: ServiceSettings) -> Literal["local", "docker"]:
    """``local`` unless asked for Docker, or ``auto`` finds no ``redis-server`` but an engine that answers.

    Local processes are preferred by ``auto`` because they start in under a second and need no engine.
    PostgreSQL's binaries are a locked dependency (and the client tools everywhere), so only a missing
    ``redis-server`` sends ``auto`` to Docker.

    Raises:
        ServiceError: ``docker`` was asked for and no engine answers; or ``auto`` found neither.
    """
    if settings.provider == "docker":
        if not docker_available():
            raise ServiceError(
                f"services.provider = 'docker' but no Docker engine answers at {engine_address()}; "
                "start Docker (or point DOCKER_HOST at one) or set services.provider = 'local'"
            )
        return "docker"
    if settings.provider == "local":
        return "local"
    try:
        find_redis_server(settings.redis_server)
    except ServiceError:
        if docker_available():
            log.info("no local redis-server; a Docker engine answers, so the throwaway servers are containers")
            return "docker"
        raise
    return "local"


@dataclass
class Provider:
    """Starts throwaway servers as local processes or as containers; callers get the same interface."""

    settings: ServiceSettings
    kind: Literal["local", "docker"]
    binaries: PostgresBinaries

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Provider:
        """Resolve the choice once; the report states it.

        Raises:
            ServiceError: Docker was asked for and no engine answers, or local binaries are missing.
        """
        kind = choose_provider(settings)
        return cls(settings, kind, find_binaries(settings.postgres_bin_dir))

    @property
    def postgres_image(self) -> str:
        """The PostgreSQL image: as configured, or the local client tools' major version (``postgres:18``)."""
        return self.image_for(self.binaries)

    def image_for(self, binaries: PostgresBinaries) -> str:
        """The image whose server matches ``binaries`` (the client tools used against it), unless configured."""
        return self.settings.postgres_image or f"postgres:{binaries.major}"

    def describe(self) -> str:
        """One line for the report: which provider, which images or binaries."""
        local = f"PostgreSQL {self.binaries.version} from {self.binaries.source}"
        if self.kind == "docker":
            return (
                f"docker ({self.postgres_image}, {self.settings.redis_image}, {self.settings.minio_image}); "
                f"client tools, physical restores and production stand-ins local ({local})"
            )
        return f"local ({local}; redis-server; moto S3)"

    def postgres(
        self,
        name: str,
        *,
        settings: Mapping[str, str] | None = None,
        throwaway: bool = True,
        binaries: PostgresBinaries | None = None,
    ) -> PostgresServer:
        """A PostgreSQL the harness owns; ``throwaway=False`` for one standing in for production (always local).

        ``binaries`` choose another installation than the session's (a staging copy runs the dump's major).
        """
        binaries = binaries or self.binaries
        if self.kind == "docker" and throwaway:
            return ContainerPostgres.create(name, image=self.image_for(binaries), binaries=binaries, settings=settings)
        return LocalPostgres.create(name, settings=settings, binaries=binaries, throwaway=throwaway)

    def restored_postgres(
        self, name: str, data_dir: Path, *, settings: Mapping[str, str] | None = None
    ) -> LocalPostgres:
        """A throwaway PostgreSQL on a restored data directory; local under every provider (the files are here).

        ``settings`` go on its command line, where they override the data directory's configuration files.
        """
        return LocalPostgres.create(name, binaries=self.binaries, data_dir=data_dir, settings=settings)

    def redis(
        self,
        name: str,
        *,
        settings: Mapping[str, str] | None = None,
        rdb_file: Path | None = None,
        throwaway: bool = True,
        memory_limit: int | None = None,
    ) -> RedisServer:
        """A Redis the harness owns; ``throwaway=False`` for one standing in for production (always local).

        ``memory_limit`` (bytes) caps a local server's address space; a container has the engine's limits.
        """
        if self.kind == "docker" and throwaway:
            return ContainerRedis.create(name, image=self.settings.redis_image, settings=settings, rdb_file=rdb_file)
        return LocalRedis.create(name, settings=settings, rdb_file=rdb_file, executable=self.settings.redis_server,
                                 memory_limit=memory_limit)  # fmt: skip

    def s3(self) -> S3Server:
        """A throwaway S3 endpoint: moto here, MinIO in a container."""
        if self.kind == "docker":
            return MinioS3.create(image=self.settings.minio_image)
        return MotoS3.create()
