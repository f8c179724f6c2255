"""The testcontainers path: throwaway servers as containers, chosen only when a Docker engine answers.

Kept thin on purpose: the local path is the one exercised everywhere; this one maps the same three servers
onto containers so a machine without ``redis-server`` but with Docker, or a configuration that asks for it
(``services.provider = "docker"``), can still drill. Each container satisfies the interface its local twin
does (:class:`~harness.services.postgres.PostgresServer`, :class:`~harness.services.redis.RedisServer`,
:class:`~harness.services.s3.S3Server`), so the drill cannot tell them apart:

- PostgreSQL: the official image, ``trust`` authentication for ``postgres`` (as locally), and the same
  ``-c cluster_name=codeblack-drills-<run>-<name>`` that :func:`~harness.services.postgres.ensure_throwaway`
  checks, plus the caller's settings (the restore tuning) as ``-c`` options. Client tools stay the local
  binaries, so the image's tag follows their major version unless ``services.postgres_image`` says otherwise.
- Redis: the official image with the caller's persistence settings as ``redis-server`` arguments; an RDB
  copy to restore is put into ``/data`` before the server starts, so it loads it like the local one does.
- S3: MinIO (versioning and lifecycle rules work on its single-drive mode). A plain container with MinIO's
  health wait, not testcontainers' ``MinioContainer``: that module needs the ``minio`` client package, and
  the harness speaks S3 through boto3 only.

What stays local under every provider, and why (the provider routes these to local binaries):

- A physical restore of a base backup: the data directory is unpacked on this machine, and
  ``pg_controldata`` and the local server read it there.
- The sandbox world's production PostgreSQL and Redis (``throwaway=False``): the world's base backups are
  restored physically by the local binaries, which need a cluster written by the same build (compile
  options, locale), and its Redis copies are read from the directory Redis reports (``CONFIG GET dir``).

Every container carries the label ``codeblack-drills.run=<run id>``; :func:`remove_containers` lets the
sweeper remove a dead run's containers (testcontainers' Ryuk does the same when it is enabled).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from harness.errors import ServiceError
from harness.services.base import LABEL, run_id
from harness.services.postgres import OWNER_ROLE, PostgresBinaries, PostgresServer, cluster_label
from harness.services.redis import THROWAWAY_PERSISTENCE, RedisServer
from harness.services.s3 import ACCESS_KEY, SECRET_KEY, S3Endpoint, S3Server

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

__all__ = ["RUN_LABEL", "ContainerPostgres", "ContainerRedis", "MinioS3", "docker_available", "remove_containers"]

log = logging.getLogger("harness.services.docker")

RUN_LABEL = f"{LABEL}.run"
_Container = TypeVar("_Container", bound="DockerContainer")


def docker_available(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers a ping within ``timeout`` seconds (the client alone is not enough)."""
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=timeout)
        with contextlib.closing(client):
            return bool(client.ping())
    except Exception:
        return False


def engine_address() -> str:
    """Where the Docker client looks for an engine, for an error message."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _start(what: str, image: str, recipe: Callable[[], _Container], **create: object) -> _Container:
    """Build the container from ``recipe``, label it with the run id and start it.

    A failure (no engine any more, a missing image, a server that never became ready) is one line and leaves
    nothing running.
    """
    container: _Container | None = None
    try:
        container = recipe().with_kwargs(labels={RUN_LABEL: run_id()}, **create)
        return container.start()
    except Exception as exc:
        if container is not None:
            with contextlib.suppress(Exception):
                container.stop()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ServiceError(
            f"{what} container from {image} did not start: {first}; "
            "check `docker info` and the image names in [services], or set services.provider = 'local'"
        ) from None


def _remove(container: DockerContainer) -> None:
    """Remove a container and its volumes; a second call (already removed) is a no-op."""
    from docker.errors import APIError

    with contextlib.suppress(APIError):
        container.stop()


@dataclass
class ContainerPostgres(PostgresServer):
    """A throwaway PostgreSQL in a container; its client tools are the local ``binaries``."""

    name: str
    host: str
    port: int
    binaries: PostgresBinaries
    container: DockerContainer
    provider: str = "docker"

    @classmethod
    def create(
        cls, name: str, *, image: str, binaries: PostgresBinaries, settings: Mapping[str, str] | None = None
    ) -> ContainerPostgres:
        """Start a container and wait until ``psql`` inside it answers over TCP.

        Raises:
            ServiceError: the engine refused or the server did not become ready; one line.
        """
        from testcontainers.community.postgres import PostgresContainer

        argv = ["postgres", "-c", f"cluster_name={cluster_label(name)}"]
        for key, value in (settings or {}).items():
            argv += ["-c", f"{key}={value}"]

        def recipe() -> PostgresContainer:
            made = PostgresContainer(image, username="postgres", password="postgres", dbname="postgres", driver=None)
            return made.with_env("POSTGRES_HOST_AUTH_METHOD", "trust").with_command(argv)

        # Parallel index builds during pg_restore use shared memory; Docker's default /dev/shm is 64 MB.
        container = _start(f"PostgreSQL {name}", image, recipe, shm_size="1g")
        server = cls(name, container.get_container_host_ip(), container.get_exposed_port(5432), binaries, container)
        with server.connect() as conn:  # restored data is owned by a role without superuser power, as locally
            conn.execute(f"CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER")
        server._allow_writes()
        log.info("PostgreSQL %s ready in container %s on %s:%d", name, image, server.host, server.port)
        return server

    def alive(self) -> bool:
        """Whether the container still runs."""
        try:
            self.container.reload()
        except Exception:
            return False
        return self.container.status == "running"

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the container's output (PostgreSQL logs to stderr)."""
        with contextlib.suppress(Exception):
            out, err = self.container.get_logs()
            return " | ".join((out + err).decode(errors="replace").strip().splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        """Remove the container (it is disposable: no clean shutdown needed). Safe to call twice."""
        self._forbid_writes()
        _remove(self.container)


@dataclass
class ContainerRedis(RedisServer):
    """A throwaway Redis in a container."""

    name: str
    host: str
    port: int
    container: DockerContainer
    provider: str = "docker"

    @classmethod
    def create(
        cls, name: str, *, image: str, settings: Mapping[str, str] | None = None, rdb_file: Path | None = None
    ) -> ContainerRedis:
        """Start a container; ``rdb_file`` is loaded at start (a restore), ``settings`` are config directives.

        Raises:
            ServiceError: the engine refused or Redis did not answer PING (it loads an RDB before it does).
        """
        from testcontainers.community.redis import RedisContainer

        argv = ["redis-server"]
        for key, value in {**THROWAWAY_PERSISTENCE, **dict(settings or {})}.items():
            argv += [f"--{key}", value]

        def recipe() -> RedisContainer:
            made = RedisContainer(image).with_command(argv)
            return made if rdb_file is None else made.with_copy_into_container(rdb_file, "/data/dump.rdb")

        container = _start(f"Redis {name}", image, recipe)
        server = cls(name, container.get_container_host_ip(), container.get_exposed_port(6379), container)
        log.info("Redis %s ready in container %s on %s:%d", name, image, server.host, server.port)
        return server

    def stop(self, timeout: float = 10.0) -> None:
        """Remove the container without saving. Safe to call twice."""
        _remove(self.container)


@dataclass
class MinioS3(S3Server):
    """A throwaway MinIO in a container."""

    host: str
    port: int
    image: str
    container: DockerContainer

    @property
    def endpoint(self) -> S3Endpoint:
        """The endpoint with the throwaway credentials MinIO was started with."""
        return self._throwaway_endpoint(f"http://{self.host}:{self.port}", f"minio ({self.image}, docker)")

    @classmethod
    def create(cls, *, image: str) -> MinioS3:
        """Start MinIO on one drive and wait for its liveness endpoint.

        Raises:
            ServiceError: the engine refused or MinIO did not become live.
        """
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import HttpWaitStrategy

        def recipe() -> DockerContainer:
            made = DockerContainer(image, _wait_strategy=HttpWaitStrategy(9000, "/minio/health/live"))
            made.with_env("MINIO_ROOT_USER", ACCESS_KEY).with_env("MINIO_ROOT_PASSWORD", SECRET_KEY)
            return made.with_exposed_ports(9000).with_command("server /data --address :9000")

        container = _start("MinIO S3", image, recipe)
        server = cls(container.get_container_host_ip(), container.get_exposed_port(9000), image, container)
        log.info("MinIO ready in container %s on %s:%d", image, server.host, server.port)
        return server

    def stop(self, timeout: float = 10.0) -> None:
        """Remove the container and everything stored in it. Safe to call twice."""
        _remove(self.container)


def remove_containers(runs: Iterable[str]) -> list[str]:
    """Remove every container labelled with one of ``runs``; returns their names (none when no engine answers)."""
    wanted = set(runs)
    if not wanted or not docker_available():
        return []
    import docker
    from docker.errors import APIError

    removed = []
    with contextlib.closing(docker.from_env(timeout=30)) as client:
        for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
            if container.labels.get(RUN_LABEL) in wanted:
                with contextlib.suppress(APIError):
                    container.remove(force=True, v=True)
                    removed.append(str(container.name))
    return removed
