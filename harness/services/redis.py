"""Throwaway Redis servers from ``redis-server`` on PATH, with the persistence settings the caller asks for."""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

from harness.errors import ServiceError
from harness.services.base import ManagedProcess, free_port, label_dir, remove_dir, wait_until

__all__ = ["RedisServer", "find_redis_server"]

log = logging.getLogger("harness.services.redis")

#: The plan's production persistence: RDB snapshots and an append-only file.
PRODUCTION_PERSISTENCE: Mapping[str, str] = {"appendonly": "yes", "save": "3600 1 300 100 60 10000"}


def find_redis_server(configured: str = "") -> Path:
    """The ``redis-server`` program.

    Raises:
        ServiceError: not configured and not on PATH; the message says how to install it.
    """
    found = configured or shutil.which("redis-server")
    if not found or not Path(found).exists():
        raise ServiceError(
            f"redis-server not found ({'services.redis_server=' + configured if configured else 'not on PATH'}); "
            "install it with `apt-get install -y redis-server` or set services.redis_server in drill.toml"
        )
    return Path(found)


@dataclass
class RedisServer:
    """A running throwaway Redis."""

    name: str
    port: int
    workdir: Path
    process: ManagedProcess
    provider: str = "local"
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """The ``redis://`` URL of database 0."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        """Where the server writes its RDB and AOF files."""
        return self.workdir / "data"

    @classmethod
    def create(
        cls,
        name: str,
        *,
        settings: Mapping[str, str] | None = None,
        rdb_file: Path | None = None,
        executable: str = "",
        timeout: float = 15.0,
    ) -> RedisServer:
        """Start a server; ``rdb_file`` is loaded at start (a restore), ``settings`` are redis.conf lines.

        Raises:
            ServiceError: it did not answer PING in ``timeout`` seconds; the message quotes its log.
        """
        program = find_redis_server(executable)
        workdir = label_dir(f"redis-{name}")
        data = workdir / "data"
        data.mkdir()
        if rdb_file is not None:
            shutil.copyfile(rdb_file, data / "dump.rdb")
        port = free_port()
        conf = {"bind": "127.0.0.1", "port": str(port), "dir": str(data), "dbfilename": "dump.rdb",
                "appendonly": "no", "save": "", "protected-mode": "yes", "daemonize": "no",
                **dict(settings or {})}  # fmt: skip
        lines = [f'{key} "{value}"' if key == "save" else f"{key} {value}" for key, value in conf.items()]
        (workdir / "redis.conf").write_text("\n".join(lines) + "\n")
        process = ManagedProcess(
            name=f"redis {name}",
            argv=[str(program), str(workdir / "redis.conf")],
            log_path=workdir / "redis.log",
            stop_signal=signal.SIGTERM,
            death_signal=signal.SIGKILL,
        )
        server = cls(name, port, workdir, process)
        try:
            process.start()
            wait_until(server._ready, timeout=timeout, what=f"Redis {name} on port {port}")
        except BaseException:
            server.stop()
            raise
        log.info("Redis %s ready on 127.0.0.1:%d", name, port)
        return server

    @classmethod
    @contextlib.contextmanager
    def start(cls, name: str, **kwargs: object) -> Iterator[RedisServer]:
        """Context manager form of :meth:`create`."""
        server = cls.create(name, **kwargs)  # type: ignore[arg-type]
        try:
            yield server
        finally:
            server.stop()

    def client(self) -> redis.Redis:
        """A client with short timeouts."""
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=2)

    def _ready(self) -> bool:
        self.process.ensure_alive()
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.exceptions.BusyLoadingError:
            return False
        except redis.exceptions.ConnectionError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop without saving and remove the directory. Safe to call twice."""
        self.process.stop(timeout)
        remove_dir(self.workdir)
