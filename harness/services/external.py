"""An existing PostgreSQL as staging: a database and a restore role of the drill's own on a server it did not start.

A production database of hundreds of GB does not fit the drill's machine, so ``[staging] provider = "server"``
restores into a staging instance or a managed database instead, reached with an admin DSN from the
environment variable ``[staging] admin_dsn_env`` names. The DSN is read once, registered for redaction and
never written anywhere: its password goes into a passfile of the run (mode 0600), as for a local server, and
the DSNs the drill hands on name that file. The app and every tool get the run's own role, never the admin.

What the drill does there, in order, and nothing else:

1. Reads the server's version, ``system_identifier`` and settings in a read-only session, and refuses a server
   whose ``system_identifier`` is production's (read-only, from ``[staging] production_dsn_env``) before
   anything is written.
2. Drops what killed runs of this machine left: a database ``drill_<run>_<name>`` and a role
   ``drill_owner_<run>_<name>`` whose comment carries the drill's stamp for that very name, and whose run no
   longer runs here (:func:`harness.services.sweeper.live_runs`). Nothing without the stamp is ever touched.
3. Creates the run's role (LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE, a random password sent as a SCRAM
   verifier, so no statement log holds it) and the run's database owned by it, each stamped with
   ``COMMENT ON ...``; the database is closed to PUBLIC. A name that exists already is a collision: refused.
4. At the end, also on failure and interrupt, drops both.

:func:`~harness.services.postgres.ensure_throwaway` lets the drill write only to that database, and only while
it carries the run's stamp. The admin role needs CREATEDB and CREATEROLE, and superuser power (or a managed
service's admin role) for ``amcheck`` and extensions a dump needs that only a superuser can create.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg import sql

from harness.config import DrillConfig
from harness.errors import ConfigError, HarnessError, UnsafeTargetError
from harness.redact import register_secret
from harness.services.base import label_dir, remove_dir
from harness.services.postgres import (
    OWNER_ROLE,
    PostgresBinaries,
    PostgresServer,
    allow_stamped,
    forbid_stamped,
    scram_verifier,
)
from harness.services.sweeper import check_run_id, claim_run, live_runs

__all__ = ["DATABASE_PREFIX", "ExternalPostgres", "StagingServer", "Stamp", "database_name", "role_name"]

log = logging.getLogger("harness.services.external")

DATABASE_PREFIX = "drill_"
ROLE_PREFIX = f"{OWNER_ROLE}_"
MIN_MAJOR = 13
"""``DROP DATABASE ... WITH (FORCE)``, which ends the sessions of a killed run's app, came with PostgreSQL 13."""

#: Connection parameters of the admin DSN that are kept (none is a secret); the variables client tools read them from.
_KEPT_PARAMS = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
                "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL"}  # fmt: skip

#: The staging server's settings the record states: what decides how fast a restore runs, and how safe it is.
REPORTED_SETTINGS = (
    "max_connections", "shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size",
    "max_wal_size", "fsync", "synchronous_commit", "full_page_writes", "wal_level", "max_worker_processes",
    "max_parallel_workers", "max_parallel_maintenance_workers", "autovacuum", "ssl", "data_checksums",
    "server_encoding", "TimeZone", "checkpoint_timeout", "max_wal_senders", "jit", "archive_mode",
)  # fmt: skip

_SETTINGS = "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings WHERE name = ANY(%s) ORDER BY 1"
_NAME_MAX = 63  # NAMEDATALEN - 1
_STAMP = re.compile(r"^codeblack-drills staging (?P<kind>database|role): run=(?P<run>[A-Za-z0-9_]+) "
                    r"name=(?P<name>[A-Za-z0-9_-]+) host=(?P<host>\S+) created=(?P<created>\S+)$")  # fmt: skip


def _like(prefix: str) -> str:
    """A LIKE pattern for names starting with ``prefix`` (its underscores literal)."""
    return prefix.replace("_", "\\_") + "%"


def database_name(run: str, name: str) -> str:
    """The database a run's staging copy ``name`` gets on an existing server."""
    return f"{DATABASE_PREFIX}{run}_{name}"


def role_name(run: str, name: str) -> str:
    """The role that restores (and owns) a run's staging copy ``name`` on an existing server."""
    return f"{ROLE_PREFIX}{run}_{name}"


@dataclass(frozen=True)
class Stamp:
    """The comment the drill puts on a database or role it creates: whose it is, from where, since when."""

    kind: str
    run: str
    name: str
    host: str
    created: str

    @property
    def object_name(self) -> str:
        """The only database (or role) name this stamp may sit on."""
        return database_name(self.run, self.name) if self.kind == "database" else role_name(self.run, self.name)

    def text(self) -> str:
        """The comment itself."""
        return (f"codeblack-drills staging {self.kind}: run={self.run} name={self.name} host={self.host} "
                f"created={self.created}")  # fmt: skip

    @classmethod
    def parse(cls, comment: str | None) -> Stamp | None:
        """The stamp a comment holds, or ``None`` (no comment, or one the drill did not write)."""
        match = _STAMP.match(comment or "")
        return None if match is None else cls(**match.groupdict())


@dataclass(frozen=True)
class _Admin:
    """The admin DSN, parsed: where the server is and who the admin is; its password is kept out of ``repr``."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None = field(repr=False)
    params: dict[str, str]

    @classmethod
    def parse(cls, dsn: str, where: str) -> _Admin:
        """Read a libpq URL or key=value string; the message never quotes it (it holds the password).

        Raises:
            ConfigError: not a connection string, or one without a host.
        """
        try:
            info = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise ConfigError(f"{where}: its value is not a libpq connection string or URL") from None
        host, port = str(info.get("host") or ""), str(info.get("port") or "5432")
        if not host or "," in host or not port.isdigit():
            raise ConfigError(f"{where}: the DSN names no host (or several, or no port number); give the server's "
                              "one host and port")  # fmt: skip
        password = str(info["password"]) if info.get("password") else None
        if password is not None:
            register_secret(password)
        user = str(info.get("user") or "postgres")
        params = {key: str(info[key]) for key in _KEPT_PARAMS if info.get(key)}
        return cls(host, int(port), user, str(info.get("dbname") or user), password, params)

    def connect(self, *, read_only: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit session as the admin on its own database (read-only: nothing can be written)."""
        options = "-c default_transaction_read_only=on" if read_only else ""
        conninfo = psycopg.conninfo.make_conninfo(host=self.host, port=self.port, user=self.user, dbname=self.dbname,
                                                  options=options, **self.params)  # fmt: skip
        return psycopg.connect(conninfo, password=self.password, autocommit=True, connect_timeout=10)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _production_identifier(config: DrillConfig) -> int:
    """Production's ``system_identifier``, read in a read-only session.

    Raises:
        HarnessError: production cannot be read (one line, never quoting the DSN).
    """
    dsn = register_secret(config.secret("staging.production_dsn_env").get_secret_value())
    where = f"{config.source}: [staging] production_dsn_env ({config.staging.production_dsn_env})"
    _Admin.parse(dsn, where)  # a malformed one fails here, without libpq quoting it
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10,
                             options="-c default_transaction_read_only=on") as conn:  # fmt: skip
            row = conn.execute("SELECT system_identifier FROM pg_catalog.pg_control_system()").fetchone()
    except psycopg.Error as exc:
        raise HarnessError(f"{where}: cannot read production's system identifier: {_first_line(exc)}") from None
    return int(row[0]) if row else 0


@dataclass
class StagingServer:
    """An existing PostgreSQL checked not to be production; nothing is written to it before :meth:`provision`.

    Attributes:
        admin: where it is and who the admin is.
        version: its ``server_version``.
        major: its major version (the client tools must match it).
        system_identifier: its cluster's identifier.
        production_identifier: production's, when ``[staging] production_dsn_env`` is set (else ``None``).
        settings: :data:`REPORTED_SETTINGS` as the server shows them.
        cluster_name: its ``cluster_name`` (may be empty).
    """

    admin: _Admin
    version: str
    major: int
    system_identifier: int
    production_identifier: int | None
    settings: dict[str, str]
    cluster_name: str

    @classmethod
    def from_config(cls, config: DrillConfig) -> StagingServer:
        """Reach the server ``[staging] admin_dsn_env`` names, read-only, and refuse it if it is production.

        Raises:
            ConfigError: the variable is unset or not a DSN.
            UnsafeTargetError: its ``system_identifier`` is production's.
            HarnessError: it cannot be reached, or runs a PostgreSQL older than :data:`MIN_MAJOR`.
        """
        variable = config.staging.admin_dsn_env
        where = f"{config.source}: [staging] admin_dsn_env ({variable})"
        admin = _Admin.parse(register_secret(config.secret("staging.admin_dsn_env").get_secret_value()), where)
        try:
            with admin.connect(read_only=True) as conn:
                row = conn.execute("SELECT system_identifier FROM pg_catalog.pg_control_system()").fetchone()
                rows = conn.execute(_SETTINGS, (list(REPORTED_SETTINGS),)).fetchall()
                version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
                named = str(conn.execute("SHOW cluster_name").fetchone()[0])  # type: ignore[index]
                major = conn.info.server_version // 10000
        except psycopg.Error as exc:
            raise HarnessError(f"{where}: cannot reach the staging server {admin.host}:{admin.port} as "
                               f"{admin.user}: {_first_line(exc)}") from None  # fmt: skip
        server = cls(admin, version.split()[0], major, int(row[0]) if row else 0, None, dict(rows), named)
        if config.staging.production_dsn_env:
            server.production_identifier = _production_identifier(config)
            if server.production_identifier == server.system_identifier:
                raise UnsafeTargetError(
                    f"{where}: the staging server {admin.host}:{admin.port} is production (system identifier "
                    f"{server.system_identifier}, the same as [staging] production_dsn_env's); refusing to restore "
                    "into it: point admin_dsn_env at a staging server"
                )
        if major < MIN_MAJOR:
            raise HarnessError(f"{where}: the staging server runs PostgreSQL {server.version}; the drill needs "
                               f"{MIN_MAJOR} or later (DROP DATABASE ... WITH (FORCE))")  # fmt: skip
        return server

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.admin.host}:{self.admin.port}"

    def describe(self, database: str = "") -> str:
        """One line for the record: version, where, identity against production's, the settings (no secret)."""
        if self.production_identifier is None:
            identity = "not compared with production's ([staging] production_dsn_env is empty)"
        else:
            identity = f"production's is {self.production_identifier}"
        into = f", database {database}" if database else ""
        settings = ", ".join(f"{name}={value}" for name, value in self.settings.items())
        return (f"PostgreSQL {self.version} at {self.address} (an existing server{into}); system identifier "
                f"{self.system_identifier}, {identity}; settings: {settings}")  # fmt: skip

    def leftovers(self, *, ended: str = "") -> list[tuple[str, str]]:
        """The databases and roles killed runs of this machine left here, as (kind, name), databases first.

        Only a database or role whose comment is the drill's stamp for exactly its name, from this host, of a run
        that no longer runs: an unstamped one, another machine's and a live run's are never listed. One database
        may lack its stamp: a run killed between ``CREATE DATABASE`` and its ``COMMENT`` (two statements: the
        first cannot run in a transaction) left it, and it is listed when it has exactly the run's name and is
        owned by the run's role, which was stamped in the transaction that created it. ``ended``: a run still
        claimed whose every process that could hold a copy here is known to be down (the controller of a
        distributed drill, once its workers are): its leftovers are listed too.
        """
        alive, host = live_runs() - {ended}, socket.gethostname()
        with self.admin.connect(read_only=True) as conn:
            roles = {
                name: stamp
                for name, comment in conn.execute(
                    "SELECT r.rolname, pg_catalog.shobj_description(r.oid, 'pg_authid') FROM pg_catalog.pg_roles r "
                    "WHERE r.rolname LIKE %s",
                    (_like(ROLE_PREFIX),),
                ).fetchall()
                if (stamp := Stamp.parse(comment)) is not None and stamp.kind == "role" and stamp.object_name == name
            }
            databases = conn.execute(
                "SELECT d.datname, pg_catalog.shobj_description(d.oid, 'pg_database'), "
                "pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d WHERE d.datname LIKE %s",
                (_like(DATABASE_PREFIX),)).fetchall()  # fmt: skip
        stamped: list[tuple[str, Stamp]] = []
        for name, comment, owner in databases:
            stamp = Stamp.parse(comment)
            if stamp is None and owner in roles:
                stamp = replace(roles[owner], kind="database")
            if stamp is not None and stamp.kind == "database" and stamp.object_name == name:
                stamped.append((name, stamp))
        stamped += roles.items()
        return [(stamp.kind, name) for name, stamp in stamped if stamp.host == host and stamp.run not in alive]

    def sweep(self, *, ended: str = "") -> list[str]:
        """Drop the :meth:`leftovers`; return them as ``"database <name>"`` and ``"role <name>"``."""
        found = self.leftovers(ended=ended)
        if not found:
            return []
        with self.admin.connect() as conn:
            dropped = [f"{kind} {name}" for kind, name in found if _drop(conn, kind, name)]
        if dropped:
            log.warning("dropped what killed drill runs left on the staging server %s: %s", self.address,
                        ", ".join(dropped))  # fmt: skip
        return dropped

    def provision(self, name: str, binaries: PostgresBinaries) -> ExternalPostgres:
        """Create the run's stamped role and database (after sweeping killed runs' leftovers).

        Raises:
            ConfigError: the run id makes a name longer than PostgreSQL allows.
            UnsafeTargetError: a database or role of that name exists already (a collision): refused.
        """
        run = check_run_id()
        database, role = database_name(run, name), role_name(run, name)
        if len(role) > _NAME_MAX:
            raise ConfigError(f"staging name {role!r} is longer than PostgreSQL's {_NAME_MAX} characters: "
                              "choose a shorter CODEBLACK_DRILLS_RUN")  # fmt: skip
        claim_run()  # this process owns the run now: another drill's sweep leaves its database alone
        try:
            self.sweep()
        except psycopg.Error as exc:
            raise HarnessError(f"the staging server {self.address}: cannot look for what killed runs left "
                               f"({_first_line(exc)})") from None  # fmt: skip
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        host = socket.gethostname()
        db_stamp, role_stamp = (Stamp(kind, run, name, host, created).text() for kind in ("database", "role"))
        password = register_secret(secrets.token_urlsafe(24))
        admin = self.admin
        server = ExternalPostgres(name, admin.host, admin.port, binaries, self, database, db_stamp,
                                  admin_user=admin.user, maintenance_db=admin.dbname, owner_role=role)  # fmt: skip
        try:
            with self.admin.connect() as conn:
                _create_role(conn, role, password, role_stamp, self.address)
                try:
                    _create_database(conn, database, role, db_stamp, self.address)
                except BaseException:
                    _drop(conn, "role", role)
                    raise
        except psycopg.Error as exc:
            raise HarnessError(f"the staging server {self.address}: {admin.user} cannot create the run's role and "
                               f"database ({_first_line(exc)}); the admin role needs CREATEDB and "
                               "CREATEROLE") from None  # fmt: skip
        try:
            server.open(password)
        except BaseException:
            server.stop()
            raise
        log.info("staging database %s (role %s) created on %s", database, role, self.address)
        return server


def _create_role(conn: psycopg.Connection[Any], role: str, password: str, stamp: str, address: str) -> None:
    """The run's restore role, stamped in the same transaction; its password reaches the server as a verifier."""
    verifier = scram_verifier(conn, role, password)
    ident = sql.Identifier(role)
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                                 "INHERIT PASSWORD {}").format(ident, sql.Literal(verifier)))  # fmt: skip
            conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(ident, sql.Literal(stamp)))
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(ident))  # an admin that is not superuser
    except psycopg.errors.DuplicateObject:
        raise UnsafeTargetError(f"the staging server {address} already has a role {role} that this drill did "
                                "not create; refusing to touch it: drop it, or run under another "
                                "CODEBLACK_DRILLS_RUN") from None  # fmt: skip


def _create_database(conn: psycopg.Connection[Any], database: str, role: str, stamp: str, address: str) -> None:
    """The run's database, owned by its role, stamped, and closed to every other role of the server."""
    ident = sql.Identifier(database)
    try:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(ident, sql.Identifier(role)))
    except psycopg.errors.DuplicateDatabase:
        raise UnsafeTargetError(f"the staging server {address} already has a database {database} that this drill "
                                "did not create; refusing to touch it: drop or rename it, or run under another "
                                "CODEBLACK_DRILLS_RUN") from None  # fmt: skip
    try:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(ident, sql.Literal(stamp)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
    except BaseException:  # it is ours: made a moment ago
        _drop(conn, "database", database)
        raise


def _drop(conn: psycopg.Connection[Any], kind: str, name: str) -> bool:
    """Drop one database (ending its sessions) or role; a failure is a warning (the next sweep tries again)."""
    statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if kind == "database" else "DROP ROLE IF EXISTS {}"
    try:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
    except psycopg.Error as exc:
        log.warning("could not drop %s %s on the staging server: %s", kind, name, _first_line(exc))
        return False
    return True


@dataclass
class ExternalPostgres(PostgresServer):
    """The run's database on an existing server, as a :class:`PostgresServer`: the drill cannot tell it apart.

    The admin stands where ``postgres`` does on a throwaway server and :attr:`owner_role` where ``drill_owner``
    does; :meth:`stop` drops the database and the role instead of stopping a server.
    """

    name: str
    host: str
    port: int
    binaries: PostgresBinaries
    server: StagingServer = field(repr=False)
    database: str
    stamp: str
    admin_user: str = "postgres"
    maintenance_db: str = "postgres"
    owner_role: str = OWNER_ROLE
    provider: str = "server"
    passfile: Path | None = None
    passwords: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def cluster_name(self) -> str:
        """Where the database is, for evidence (the server's own ``cluster_name`` is not the drill's)."""
        return f"{self.server.cluster_name or 'existing server'} at {self.server.address}, database {self.database}"

    def open(self, owner_password: str) -> None:
        """Write the passfile and let the guard accept the run's database (and only it)."""
        self.passwords = {self.owner_role: owner_password}
        if self.server.admin.password is not None:
            self.passwords[self.admin_user] = self.server.admin.password
        self.passfile = label_dir(f"pgpass-{self.name}") / "pgpass"
        self._write_passfile()
        allow_stamped(self.host, self.port, self.database, self.stamp)

    def _query(self) -> str:
        params = ({"passfile": str(self.passfile)} if self.passfile is not None else {}) | self.server.admin.params
        return f"?{urlencode(params)}" if params else ""

    def sqlalchemy_url(self, dbname: str | None = None, user: str | None = None, *, with_password: bool = False) -> str:
        """As for a throwaway server; the app's URL keeps the admin DSN's TLS settings."""
        url = super().sqlalchemy_url(dbname, user, with_password=with_password)
        if "?" in url or not self.server.admin.params:
            return url
        return f"{url}?{urlencode(self.server.admin.params)}"

    def tool_env(self, user: str | None = None) -> dict[str, str]:
        """As for a throwaway server, plus the admin DSN's TLS settings."""
        tls = {_KEPT_PARAMS[key]: value for key, value in self.server.admin.params.items()}
        return super().tool_env(user) | tls

    def create_database(self, dbname: str, owner: str | None = None) -> str:
        """Refused: on a server it shares, the drill holds one database, made by :meth:`StagingServer.provision`."""
        raise UnsafeTargetError(f"refusing to create database {dbname!r} on the staging server {self.server.address}: "
                                f"the drill holds only {self.database} there")  # fmt: skip

    def drop_database(self, dbname: str) -> None:
        """Drop the run's database (:meth:`stop`); any other is refused."""
        if dbname != self.database:
            raise UnsafeTargetError(f"refusing to drop database {dbname!r} on the staging server "
                                    f"{self.server.address}: this run did not create it")  # fmt: skip
        self.stop()

    def set_password(self, role: str) -> str:
        """Refused for every role but the run's: the roles of a shared server are not the drill's."""
        if role != self.owner_role:
            raise UnsafeTargetError(f"refusing to change the password of role {role!r} on the staging server "
                                    f"{self.server.address}: this run did not create it")  # fmt: skip
        return super().set_password(role)

    def reseal(self) -> int:
        """After the restore: a fresh password for the run's role, and every session of that role closed.

        Any role may set its own password, so SQL a dump ran as the restore role could have given the role a
        password its author knows, to log in from anywhere that reaches this shared server (and from there to
        every database open to PUBLIC). The role's password is replaced by a new one of this run and sessions
        opened with the old one are closed; the drill itself holds none at this point. Returns how many
        sessions were closed.
        """
        self.set_password(self.owner_role)
        with self.server.admin.connect() as conn:
            closed = conn.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s AND pid <> pg_backend_pid()) AS terminated",
                (self.owner_role,),
            ).fetchone()
        return int(closed[0]) if closed else 0

    def alive(self) -> bool:
        """Whether the server answers (the drill does not run it)."""
        try:
            with self.server.admin.connect():
                return True
        except psycopg.Error:
            return False

    def log_tail(self, lines: int = 5) -> str:
        """An existing server's log is its operator's: the drill has none to quote."""
        return f"(an existing server at {self.server.address}: see its own log)"

    def stop(self, timeout: float = 15.0) -> None:
        """Drop the run's database and role, and remove the passfile. Safe to call twice."""
        forbid_stamped(self.host, self.port, self.database)
        try:
            with self.server.admin.connect() as conn:
                if _drop(conn, "database", self.database):
                    _drop(conn, "role", self.owner_role)
        except psycopg.Error as exc:
            log.warning(
                "could not drop database %s and role %s on the staging server %s (%s); the next run drops them",
                self.database,
                self.owner_role,
                self.server.address,
                _first_line(exc),
            )
        if self.passfile is not None:
            remove_dir(self.passfile.parent)
            self.passfile = None
