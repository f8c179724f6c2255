"""Choosing where throwaway servers come from, once per session, and saying which was chosen and why.

``local`` runs them as processes from local binaries; ``docker`` runs the drill's throwaways as containers of the
project's images (:mod:`harness.services.docker`, whose docstring lists what stays local under every provider and why),
and the S3 endpoint too when the engine has the S3 image and is this machine's. ``auto`` runs local processes, and a
staging copy in a container when the dump was taken by a PostgreSQL major that is not installed here but whose image the
engine has: staging runs production's major.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.config import ServiceSettings
from harness.errors import ServiceError
from harness.restore.dump_header import DumpHeader
from harness.services.docker import (
    ContainerPostgres,
    ContainerRedis,
    ImageBinaries,
    docker_available,
    engine_address,
    has_image,
    image_installation,
    image_majors,
    local_engine,
)
from harness.services.docker_s3 import ContainerS3
from harness.services.pgversions import StagingPostgres, choose_staging, install_hint
from harness.services.postgres import (
    LocalPostgres,
    PostgresBinaries,
    PostgresServer,
    PreparedData,
    find_binaries,
    installations,
)
from harness.services.redis import LocalRedis, RedisServer, find_redis_server
from harness.services.s3 import MotoS3, S3Server

__all__ = ["Provider", "choose_provider", "s3_choice"]

log = logging.getLogger("harness.services")


def choose_provider(settings: ServiceSettings) -> tuple[Literal["local", "docker"], str]:
    """``local`` unless asked for Docker, or ``auto`` finds no ``redis-server`` but an engine that answers; why.

    Local processes are preferred by ``auto`` because they start in under a second and need no engine.
    PostgreSQL's binaries are a locked dependency, so only a missing ``redis-server`` sends ``auto`` to Docker;
    a staging copy of a dump whose major is not installed still runs in a container (:meth:`Provider.staging`).

    Raises:
        ServiceError: ``docker`` was asked for and no engine answers; or ``auto`` found neither.
    """
    if settings.provider == "docker":
        if not docker_available():
            raise ServiceError(
                f"services.provider = 'docker' but no Docker engine answers at {engine_address()}; "
                "start Docker (scripts/containers, or point DOCKER_HOST at one) or set services.provider = 'local'"
            )
        return "docker", "services.provider = 'docker'"
    if settings.provider == "local":
        return "local", "services.provider = 'local'"
    try:
        find_redis_server(settings.redis_server)
    except ServiceError:
        if docker_available():
            log.info("no local redis-server; a Docker engine answers, so the throwaway servers are containers")
            return "docker", f"auto: no local redis-server, and a Docker engine answers at {engine_address()}"
        raise
    return "local", "auto: local processes start fastest"


@dataclass
class Provider:
    """Starts throwaway servers as local processes or as containers; callers get the same interface."""

    settings: ServiceSettings
    kind: Literal["local", "docker"]
    binaries: PostgresBinaries
    why: str = ""
    #: PostgreSQL images the engine has, by major (``auto`` and ``docker`` with an engine; else empty).
    images: dict[int, str] = field(default_factory=dict)
    #: Where the S3 endpoint runs and why: ``services.s3_image`` under ``docker`` when usable, else empty (moto).
    s3_image: str = ""
    s3_why: str = "moto (local)"

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Provider:
        """Resolve the choice once; the report states it.

        Raises:
            ServiceError: Docker was asked for and no engine answers, or local binaries are missing.
        """
        kind, why = choose_provider(settings)
        images: dict[int, str] = {}
        if kind == "docker" or (settings.provider == "auto" and docker_available()):
            images = image_majors(settings.postgres_image)
        provider = cls(settings, kind, find_binaries(settings.postgres_bin_dir), why, images)
        if kind == "docker":
            provider.s3_image, provider.s3_why = s3_choice(settings.s3_image)
        return provider

    @property
    def postgres_image(self) -> str:
        """The image of the session's throwaway PostgreSQL under Docker: the local client tools' major."""
        return self.image_for(int(self.binaries.major))

    def image_for(self, major: int) -> str:
        """The image of one PostgreSQL major (``services.postgres_image`` with ``{major}`` filled in)."""
        return self.settings.postgres_image.replace("{major}", str(major))

    def describe(self) -> str:
        """One line for the report: which provider, why, and which images or binaries."""
        local = f"PostgreSQL {self.binaries.version} from {self.binaries.source}"
        majors = ", ".join(str(major) for major in sorted(self.images)) or "none built"
        if self.kind == "docker":
            return (
                f"docker ({self.why}; PostgreSQL images: {majors}; {self.settings.redis_image}; S3: {self.s3_why}); "
                f"physical restores and production's PostgreSQL and Redis stand-ins local ({local})"
            )
        containers = f"; staging in a container when the dump's major is not installed here (images: {majors})"
        return f"local ({self.why}; {local}; redis-server; moto S3{containers if self.images else ''})"

    def staging(self, header: DumpHeader | None, services: ServiceSettings | None = None) -> StagingPostgres:
        """The PostgreSQL a dump with ``header`` restores into: its major, from an image or installed here.

        Under ``docker`` an image of the major comes first; under ``auto`` an installation here does, and an
        image stands in when the major is not installed. The choice says which and why. ``services``: the
        drill's settings when they differ from the session's (``postgres_major``, ``postgres_bin_dir``).

        Raises:
            ServiceError: no image or installation can restore the dump (what exists, and how to get the major).
        """
        services = services or self.settings
        local = installations(services.postgres_bin_dir)
        images: list[PostgresBinaries] = [image_installation(tag, major) for major, tag in self.images.items()]
        available = images + local if self.kind == "docker" else local + images
        return choose_staging(header, self.binaries, configured_dir=services.postgres_bin_dir,
                              forced=services.postgres_major, available=available, hint=self._hint)  # fmt: skip

    def _hint(self, major: int) -> str:
        if not self.images and self.kind == "local":
            return install_hint(major)
        return f"build its image (scripts/images postgres:{major}) or {install_hint(major)}"

    def postgres(
        self,
        name: str,
        *,
        settings: Mapping[str, str] | None = None,
        throwaway: bool = True,
        binaries: PostgresBinaries | None = None,
        files: Path | None = None,
        prepared: PreparedData | None = None,
    ) -> PostgresServer:
        """A PostgreSQL the harness owns; ``throwaway=False`` for one standing in for production (always local).

        ``binaries`` choose another installation than the session's (a staging copy runs the dump's major): an
        image's runs in a container under every provider. ``files``: a directory the server's own tools read
        (the dump's), which a container mounts read-only. A container gets ``services.postgres_memory_mb``.
        ``prepared``: a copy of the template made ahead, which a local server of its installation starts from
        (the caller discards it either way).
        """
        binaries = binaries or self.binaries
        image = binaries.image if isinstance(binaries, ImageBinaries) else ""
        if not image and self.kind == "docker" and throwaway:
            image = self.image_for(int(binaries.major))
        if image:
            return ContainerPostgres.create(name, image=image, settings=settings, files=files,
                                            memory_limit=self.settings.postgres_memory_mb * 2**20)  # fmt: skip
        ahead = prepared.data if prepared is not None and prepared.fits(binaries) else None
        return LocalPostgres.create(name, settings=settings, binaries=binaries, throwaway=throwaway, data_dir=ahead)

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

        ``memory_limit`` (bytes) caps a local server's address space, or a container's memory.
        """
        if self.kind == "docker" and throwaway:
            return ContainerRedis.create(name, image=self.settings.redis_image, settings=settings, rdb_file=rdb_file,
                                         memory_limit=memory_limit)  # fmt: skip
        return LocalRedis.create(name, settings=settings, rdb_file=rdb_file, executable=self.settings.redis_server,
                                 memory_limit=memory_limit)  # fmt: skip

    def s3(self) -> S3Server:
        """A throwaway S3 endpoint: moto, in a container of :attr:`s3_image` when one was chosen, else local."""
        return ContainerS3.create(image=self.s3_image) if self.s3_image else MotoS3.create()


def s3_choice(image: str) -> tuple[str, str]:
    """The S3 image to run under ``docker`` (empty: a local moto), and the words saying which and why.

    Only a local engine's container runs it: moto accepts any credentials, so its port is never published on a
    remote engine's host, where an internal network would not be reachable from here either.
    """
    if not local_engine():
        return "", f"moto (local: the engine at {engine_address()} is remote, and S3 is not published there)"
    if not has_image(image):
        return "", f"moto (local: the engine has no image {image}; scripts/images s3 builds it)"
    return image, f"moto in a {image} container"
