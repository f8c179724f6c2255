"""The S3 endpoint in a container: moto's server from the project's ``codeblack-drills/s3`` image.

The image (``scripts/images s3``) runs the moto version uv.lock pins for the local provider, so versioning,
lifecycle rules and Object Lock (the records store's compliance mode) answer as the local
:class:`~harness.services.s3.MotoS3` does. The container is started like the other throwaways
(:func:`harness.services.docker.start`): labelled with the run id, no capabilities, an ``--internal`` network of
its own with a local engine (nothing published; the harness and the app reach it by its address), and reaped
by the sweeper with them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from harness.services.docker import address, publish, remove, start
from harness.services.s3 import S3Endpoint, S3Server

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

__all__ = ["ContainerS3"]

log = logging.getLogger("harness.services.s3")

#: The port moto's server listens on in the image (images/s3/Dockerfile).
PORT = 5000


@dataclass
class ContainerS3(S3Server):
    """moto's S3 server in a container of the project's image."""

    host: str
    port: int
    image: str
    container: DockerContainer

    @property
    def endpoint(self) -> S3Endpoint:
        """The endpoint with the throwaway credentials (moto accepts any)."""
        return self._throwaway_endpoint(f"http://{self.host}:{self.port}", f"moto ({self.image} container)")

    @classmethod
    def create(cls, *, image: str, timeout: float = 60.0) -> ContainerS3:
        """Start a container of ``image`` and wait until moto answers.

        Raises:
            ServiceError: the image is not built, the engine refused, or moto did not answer within ``timeout``.
        """
        from testcontainers.core.container import DockerContainer

        def ready(made: DockerContainer) -> bool:
            host, port = address(made, PORT)
            try:
                return httpx.get(f"http://{host}:{port}/moto-api/", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        container = start("S3", image, lambda: publish(DockerContainer(image), PORT), ready, timeout)
        server = cls(*address(container, PORT), image, container)
        log.info("moto S3 ready in container %s on %s:%d", image, server.host, server.port)
        return server

    def stop(self, timeout: float = 10.0) -> None:
        """Remove the container and its network; what it stored goes with it. Safe to call twice."""
        remove(self.container)
