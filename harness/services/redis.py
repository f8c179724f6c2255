"""Throwaway Redis servers: what every one offers the drill, and the ones run by ``redis-server`` on PATH.

:class:`RedisServer` is what the drill needs from a throwaway Redis wherever it runs (here, or a container in
:mod:`harness.services.docker`): its URL, a client and a stop. The local one starts with the persistence
settings the caller asks for, written as ``redis.conf`` lines.
"""

from __future__ import annotations

import abc
import logging
import os
import re
import secrets
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis

from harness.errors import ServiceError
from harness.redact import register_secret
from harness.services.accounts import ServiceAccount, acquire_account
from harness.services.base import (
    ManagedProcess,
    give_to_service_user,
    label_dir,
    log_says,
    remove_dir,
    run_tool,
    start_on_a_free_port,
)

__all__ = [
    "THROWAWAY_PERSISTENCE",
    "LocalRedis",
    "RedisServer",
    "count_rdb_keys",
    "find_redis_check_rdb",
    "find_redis_server",
    "hardened_conf",
    "redis_conf_text",
]

log = logging.getLogger("harness.services.redis")

#: The plan's production persistence: RDB snapshots and an append-only file.
PRODUCTION_PERSISTENCE: Mapping[str, str] = {"appendonly": "yes", "save": "3600 1 300 100 60 10000"}

#: A throwaway Redis writes nothing to disk unless the caller asks for persistence.
THROWAWAY_PERSISTENCE: Mapping[str, str] = {"appendonly": "no", "save": ""}


def hardened_conf(password: str, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """A throwaway's configuration, wherever it runs: its password, payload checks, no DEBUG or MODULE.

    The RDB it may load comes from the bucket, so it is untrusted: every payload is checked as it loads.
    ``settings`` (the caller's persistence) come last; where it listens is the caller's to add.
    """
    return {"dbfilename": "dump.rdb", "protected-mode": "yes", "daemonize": "no", "requirepass": password,
            "sanitize-dump-payload": "yes", "enable-debug-command": "no", "enable-module-command": "no",
            **THROWAWAY_PERSISTENCE, **dict(settings or {})}  # fmt: skip


def redis_conf_text(conf: Mapping[str, str]) -> str:
    """``conf`` as ``redis.conf`` lines (``save`` quoted: its empty value turns snapshots off)."""
    return "".join(f'{key} "{value}"\n' if key == "save" else f"{key} {value}\n" for key, value in conf.items())


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


def find_redis_check_rdb(redis_server: str = "") -> Path:
    """``redis-check-rdb`` beside the configured (or PATH's) ``redis-server``, else on PATH.

    Raises:
        ServiceError: not found; the message says how to install it.
    """
    beside = find_redis_server(redis_server).parent / "redis-check-rdb"
    found = str(beside) if beside.exists() else shutil.which("redis-check-rdb")
    if not found:
        raise ServiceError("redis-check-rdb not found beside redis-server or on PATH; `apt-get install redis-tools`")
    return Path(found)


def count_rdb_keys(rdb: Path, redis_check_rdb: Path, timeout: float = 300.0) -> int:
    """The number of keys stored in the RDB file itself, as ``redis-check-rdb`` reads them.

    A key count taken from the live server after the save races with every later write or expiry; the file's
    own count is the one a restore must reproduce.

    Raises:
        ServiceError: the tool fails on the file or does not report a key count.
    """
    done = run_tool([redis_check_rdb, rdb], what="redis-check-rdb", timeout=timeout)
    counted = re.search(r"(\d+) keys read", done.stdout.decode(errors="replace"))
    if counted is None:
        raise ServiceError(f"redis-check-rdb reported no key count for {rdb}")
    return int(counted.group(1))


class RedisServer(abc.ABC):
    """A running throwaway Redis, local or in a container: everything the drill asks of one."""

    name: str
    host: str
    port: int
    provider: str

    password: str = ""

    @property
    def url(self) -> str:
        """The ``redis://`` URL of database 0 (with the server's password when it has one)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def client(self, db: int = 0, *, protocol: int | None = None) -> redis.Redis:
        """A client of database ``db`` with short timeouts (``protocol``: RESP 2 or 3; default redis-py's)."""
        return redis.Redis(host=self.host, port=self.port, db=db, password=self.password or None,
                           protocol=protocol, socket_timeout=5, socket_connect_timeout=2)  # fmt: skip

    def answers(self) -> bool:
        """Whether it answers PING (false while it loads its RDB, before it listens, or too busy to answer in time).

        A PING that times out is "not yet": a server loading a large (or crafted) RDB on a busy machine may not
        even accept within the client's timeout; the caller's deadline decides when waiting ends.
        """
        try:
            with self.client() as client:
                return bool(client.ping())
        except (redis.exceptions.BusyLoadingError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Stop without saving and remove everything it wrote. Safe to call twice."""


@dataclass
class LocalRedis(RedisServer):
    """A throwaway Redis run by the local ``redis-server``."""

    name: str
    port: int
    workdir: Path
    process: ManagedProcess
    provider: str = "local"
    host: str = "127.0.0.1"
    password: str = field(default="", repr=False)
    account: ServiceAccount | None = field(default=None, repr=False)

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
        memory_limit: int | None = None,
    ) -> LocalRedis:
        """Start a server; ``rdb_file`` is loaded at start (a restore), ``settings`` are redis.conf lines.

        The RDB comes from the bucket, so it is untrusted: the server runs as the service user (when the harness
        is root), answers only with its per-server password, and checks every payload it loads
        (``sanitize-dump-payload yes``); DEBUG and MODULE stay disabled. ``memory_limit`` (bytes of address
        space) bounds what loading a crafted RDB can take: LZF runs expand a few MB into hundreds.

        Raises:
            ServiceError: it did not answer PING in ``timeout`` seconds; the message quotes its log.
        """
        program = find_redis_server(executable)
        account = acquire_account()
        user = account.user if account is not None else None
        workdir = label_dir(f"redis-{name}")
        data = workdir / "data"
        data.mkdir()
        if rdb_file is not None:
            try:  # a Ctrl-C while a large RDB is copied must not leave the directory behind
                shutil.copyfile(rdb_file, data / "dump.rdb")
            except BaseException:
                remove_dir(workdir)
                if account is not None:
                    account.release()
                raise
        password = register_secret(secrets.token_urlsafe(24))
        # The workdir and the config (its password) stay the harness's: the server's account may read the
        # config through its group and write only its data directory.
        workdir.chmod(0o711)
        conf_path = workdir / "redis.conf"
        give_to_service_user(data, user)
        process = ManagedProcess(
            name=f"redis {name}",
            argv=[str(program), str(conf_path)],
            log_path=workdir / "redis.log",
            user=user,
            stop_signal=signal.SIGTERM,
            death_signal=signal.SIGKILL,
            memory_limit=memory_limit,
        )
        server = cls(name, 0, workdir, process, password=password, account=account)
        try:

            def launch(port: int) -> ManagedProcess:
                server.port = port
                conf = {"bind": "127.0.0.1", "port": str(port), "dir": str(data), **hardened_conf(password, settings),
                        "loglevel": "notice"}  # fmt: skip  # its readiness line is a notice
                conf_path.write_text(redis_conf_text(conf))
                conf_path.chmod(0o640)
                if user is not None:
                    os.chown(conf_path, 0, user.gid)
                return process

            start_on_a_free_port(f"Redis {name}", launch, server._ready, timeout=timeout)
        except ServiceError:
            oom = "OOM loading DB" in process.log_tail(200)
            server.stop()
            if oom and memory_limit is not None:
                raise ServiceError(f"Redis {name} ran out of memory loading its RDB within its limit of "
                                   f"{memory_limit // 2**20} MB (Short read or OOM loading DB)") from None  # fmt: skip
            raise
        except BaseException:
            server.stop()
            raise
        log.info("Redis %s ready on 127.0.0.1:%d", name, server.port)
        return server

    def _ready(self, since: int) -> bool:
        """Ready once its log (after byte ``since``: this start's) says it listens, and it answers PING.

        The log first: until this server has bound its port, whatever answers there is another process's, and
        the PING would hand it the password (and wait on its silence).
        """
        self.process.ensure_alive()
        return log_says(self.process.log_path, since, "Ready to accept connections") and self.answers()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop without saving and remove the directory. Safe to call twice."""
        self.process.stop(timeout)
        if self.account is not None:
            self.account.release()
        remove_dir(self.workdir)
