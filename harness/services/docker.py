"""The testcontainers path: servers as containers, chosen only when a Docker engine answers.

Kept thin on purpose: the local path is the one exercised everywhere; this one maps the same servers onto
testcontainers' modules so a machine without PostgreSQL or Redis binaries but with Docker can still drill.
"""

from __future__ import annotations

import contextlib
from typing import Any

from harness.errors import ServiceError

__all__ = ["docker_available", "start_container"]


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


def start_container(kind: str, image: str, *, labels: dict[str, str]) -> Any:
    """Start a testcontainers container of ``kind`` (postgres, redis, minio) and return it, ready.

    Raises:
        ServiceError: no engine answers, or the container did not become ready.
    """
    if not docker_available():
        raise ServiceError("services.provider = 'docker' but no Docker engine answers; use 'local' or 'auto'")
    try:
        if kind == "postgres":
            from testcontainers.postgres import PostgresContainer

            container: Any = PostgresContainer(image, username="postgres", password="postgres", driver=None)
        elif kind == "redis":
            from testcontainers.redis import RedisContainer

            container = RedisContainer(image)
        elif kind == "minio":
            from testcontainers.minio import MinioContainer

            container = MinioContainer(image)
        else:
            raise ServiceError(f"no container recipe for {kind!r}")
        container.with_kwargs(labels=labels)
        return container.start()
    except ServiceError:
        raise
    except Exception as exc:
        raise ServiceError(f"{kind} container from {image} failed to start: {str(exc).splitlines()[0]}") from None
