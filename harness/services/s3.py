"""An S3 endpoint: moto's server on loopback (the default), moto in a container, or a real endpoint.

:class:`S3Server` is what the drill needs from a throwaway S3 wherever it runs: its endpoint (URL and
credentials), a client and a stop; :class:`MotoS3` is the local one, the container lives in
:mod:`harness.services.docker_s3`. moto speaks the real S3 protocol over HTTP, so the harness's boto3 code
paths (pagination, ranged GETs, versioning, lifecycle, Object Lock) run exactly as they would against AWS.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import boto3
import httpx
from botocore.config import Config
from pydantic import SecretStr

from harness.services.base import (
    ManagedProcess,
    label_dir,
    log_says,
    remove_dir,
    start_on_a_free_port,
)

__all__ = ["ACCESS_KEY", "SECRET_KEY", "LocalS3", "MotoS3", "S3Endpoint", "S3Server"]

_CLIENTS = threading.Lock()

log = logging.getLogger("harness.services.s3")

#: Credentials of every throwaway S3 (moto accepts any).
ACCESS_KEY = "drill-access-key"
SECRET_KEY = "drill-secret-key"


@dataclass(frozen=True)
class S3Endpoint:
    """Where and how to reach object storage. Credentials stay ``SecretStr`` so they never print."""

    url: str | None
    region: str
    access_key: SecretStr
    secret_key: SecretStr
    provider: str = "configured"

    @property
    def host(self) -> str:
        """The endpoint's host name (``s3.amazonaws.com`` when no URL is given)."""
        return httpx.URL(self.url).host if self.url else f"s3.{self.region}.amazonaws.com"

    def client(self, *, max_attempts: int = 5, timeout: float = 10.0) -> Any:
        """A boto3 S3 client with bounded retries (adaptive backoff) and timeouts.

        Clients are thread-safe once made, but making them from boto3's default session is not (a staging
        restore on its own thread lists storage while a scenario does), so they are made one at a time.
        """
        with _CLIENTS:
            return boto3.client(
                "s3",
                endpoint_url=self.url,
                region_name=self.region,
                aws_access_key_id=self.access_key.get_secret_value(),
                aws_secret_access_key=self.secret_key.get_secret_value(),
                config=Config(
                    retries={"max_attempts": max_attempts, "mode": "adaptive"},
                    connect_timeout=timeout,
                    read_timeout=timeout * 3,
                    max_pool_connections=16,
                ),
            )

    def env(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK (e.g. the target app) at this endpoint."""
        values = {
            "AWS_ACCESS_KEY_ID": self.access_key.get_secret_value(),
            "AWS_SECRET_ACCESS_KEY": self.secret_key.get_secret_value(),
            "AWS_DEFAULT_REGION": self.region,
        }
        return values


class S3Server(abc.ABC):
    """A running throwaway S3, local or in a container: everything the drill asks of one."""

    @property
    @abc.abstractmethod
    def endpoint(self) -> S3Endpoint:
        """Where it listens and its throwaway credentials."""

    @staticmethod
    def _throwaway_endpoint(url: str, provider: str) -> S3Endpoint:
        return S3Endpoint(url, "us-east-1", SecretStr(ACCESS_KEY), SecretStr(SECRET_KEY), provider)

    def client(self) -> Any:
        """A boto3 client for this server."""
        return self.endpoint.client()

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and remove everything it stored. Safe to call twice."""


@dataclass
class LocalS3(S3Server):
    """An S3 server process of this machine on a loopback port, with a directory of its own."""

    port: int
    workdir: Path
    process: ManagedProcess

    #: The path whose answer (anything but a server error) says the server is up.
    ready_path: ClassVar[str] = "/"
    #: The line its log prints once it listens (empty: none to wait for).
    listening: ClassVar[str] = ""

    def _ready(self, since: int = 0) -> bool:
        """Ready once its log (after byte ``since``) says it listens, and it answers: not another process's port."""
        self.process.ensure_alive()
        if self.listening and not log_says(self.process.log_path, since, self.listening):
            return False
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and remove its directory."""
        self.process.stop(timeout)
        remove_dir(self.workdir)


@dataclass
class MotoS3(LocalS3):
    """A moto S3 server on a free loopback port."""

    ready_path: ClassVar[str] = "/moto-api/"
    listening: ClassVar[str] = "Running on"

    @property
    def endpoint(self) -> S3Endpoint:
        """The endpoint with the throwaway credentials."""
        return self._throwaway_endpoint(f"http://127.0.0.1:{self.port}", "moto (local)")

    @classmethod
    def create(cls, *, timeout: float = 30.0) -> MotoS3:
        """Start moto's server.

        Raises:
            ServiceError: it did not answer within ``timeout`` seconds.
        """
        workdir = label_dir("s3")
        server = cls(0, workdir, ManagedProcess(name="moto S3", argv=[], log_path=workdir / "moto.log"))
        try:

            def launch(port: int) -> ManagedProcess:
                server.port = port
                server.process = ManagedProcess(
                    name="moto S3",
                    argv=[sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    log_path=workdir / "moto.log",
                    env={"MOTO_ALLOW_NONEXISTENT_REGION": "true"},
                    stop_signal=signal.SIGTERM,
                )
                return server.process

            start_on_a_free_port("moto S3", launch, server._ready, timeout=timeout, interval=0.1)
        except BaseException:
            server.stop()
            raise
        log.info("moto S3 ready on 127.0.0.1:%d", server.port)
        return server

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[MotoS3]:
        """Context manager form of :meth:`create`."""
        server = cls.create()
        try:
            yield server
        finally:
            server.stop()
