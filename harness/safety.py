"""Checks a drill configuration must pass before anything starts: its secrets are set, staging is not production.

A drill that fails half-way through because a variable is unset has already spent minutes restoring; one
whose ``[app]`` settings reach production's database or Redis would start the restored app against
production and let the config gates write there. Both are decided from the file and the environment alone,
so they run once at start-up and fail with one line naming the file and the keys, before any server starts.

The staging guard is an allowlist. The throwaway copies listen on ports chosen at run time, so no literal in
the file can ever name them: a store is named only by the placeholders ``{database_url}`` and ``{redis_url}``
(and ``{s3_endpoint_url}``, ``{uploads_bucket}``) in ``[app] env``, which :func:`harness.app.runner.app_env`
fills in. Refused in ``[app] env`` and ``[app] command``, after percent-decoding:

- a variable named like a connection setting (``*DATABASE_URL*``, ``*_DB_HOST``, ``*REDIS_URL*``,
  ``CELERY_BROKER_URL``, ``PGHOST``, ``PGSERVICE``, ``PGSERVICEFILE``, ``PGPASSFILE``, ``PGSYSCONFDIR``, …)
  whose value is not exactly one placeholder;
- a URL of a store or queue (``postgres``, ``postgresql+psycopg``, ``redis``, ``rediss``, ``valkey``,
  ``unix``, ``mysql``, ``mariadb``, ``mongodb``, ``memcached``, ``amqp``, ``jdbc:postgresql``, any case);
- a libpq connection parameter (``host=``, ``hostaddr=``, ``service=``, ``servicefile=``, ``passfile=``,
  ``dbname=``), also in a URL's query (``{database_url}?host=/var/run/postgresql``);
- a PostgreSQL or Redis Unix socket (``.s.PGSQL.5432``, ``/run/postgresql``, ``redis.sock``);
- any other host that is production's (``storage.database_host``, the host of ``redis.url_env``'s URL),
  compared as :mod:`harness.endpoints` normalises hosts: case, trailing dot, percent-encoding, IP spellings,
  the addresses a name resolves to. A loopback production is matched only with its port (5432, or Redis's
  own, 6379 by default), because loopback is also where the app binds and the copies listen: the default
  ``--host 127.0.0.1`` is never production.

Other literals stay allowed, because real apps need them: their bind address, ``http(s)`` URLs of other
services, and object storage (``{s3_endpoint_url}`` is production's own storage, which the app reads anyway).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.applicability import staging_server_keys
from harness.config import DrillConfig
from harness.endpoints import LOOPBACK, decode, hosts_in, normalise_host, resolve
from harness.errors import ConfigError

__all__ = ["PLACEHOLDERS", "check_preflight", "check_secrets_set", "check_staging_isolated"]

#: The keys of ``drill.toml`` that name a secret's environment variable (the sandbox generates its own).
SECRET_KEYS = ("storage.access_key_env", "storage.secret_key_env", "app.signing_key_env")

PLACEHOLDERS = ("{database_url}", "{redis_url}", "{s3_endpoint_url}", "{uploads_bucket}")
"""What a value of ``[app] env`` may be when it names a store: the drill fills these in per run."""

_STORE_SCHEMES = frozenset(
    {"postgres", "postgresql", "pgsql", "redis", "rediss", "valkey", "valkeys", "unix", "mysql", "mariadb",
     "mongodb", "memcached", "amqp", "amqps"}
)  # fmt: skip
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_CONNECTION_NAME = re.compile(
    r"(?:^|_)(?:DATABASE|DB|POSTGRES(?:QL)?|PG|REDIS|VALKEY|CACHE|BROKER|MYSQL|MONGO(?:DB)?|SQLALCHEMY)_?"
    r"(?:(?:URL|URI|DSN|HOSTS?|HOSTNAME|HOSTADDR|ADDR|ADDRESS|PORT|SOCKET|SERVICE)(?:_|$)|CONN(?:ECTION)?_?STR(?:ING)?$"
    r"|CONNINFO$)"
    r"|^PG(?:SERVICEFILE|PASSFILE|SYSCONFDIR|DATABASE)$",
    re.IGNORECASE,
)
_CONNINFO = re.compile(r"(?<![\w.-])(?:host|hostaddr|service|servicefile|passfile|dbname)\s*=", re.IGNORECASE)
_SOCKET = re.compile(r"\.s\.PGSQL\.\d+|(?<![\w.-])(?:/var)?/run/postgresql\b|redis[\w.-]*\.sock\b", re.IGNORECASE)


def check_secrets_set(config: DrillConfig, keys: Iterable[str] | None = None) -> None:
    """Every secret a real target's drill will read is set now, not discovered missing mid-drill.

    Args:
        config: the drill configuration.
        keys: the keys naming the secrets this run needs (see :func:`harness.applicability.secret_keys`);
            ``None``: every secret the file names.

    Raises:
        ConfigError: names the file, the key and the unset variable.
    """
    if config.target.sandbox or config.gates_only:  # a gates-only target reads no storage and starts no app
        return
    if keys is None:
        keys = (*SECRET_KEYS, "redis.url_env", *(staging_server_keys(config) if config.staging.provider == "server"
                                                  else ()))  # fmt: skip
        keys = [key for key in keys if _names_variable(config, key)]
    for key in keys:
        config.secret(key)


def _names_variable(config: DrillConfig, dotted_key: str) -> bool:
    """Whether the file names a variable at ``dotted_key`` (an empty one: the target has no such secret)."""
    section, _, field = dotted_key.partition(".")
    return bool(getattr(getattr(config, section), field))


@dataclass(frozen=True)
class _Endpoint:
    """A production server: what to call it, every spelling and address of its host, its port."""

    what: str
    hosts: frozenset[str]
    port: int


def _production_endpoints(config: DrillConfig) -> list[_Endpoint]:
    endpoints = []
    if config.storage.database_host:
        host = config.storage.database_host
        endpoints.append(_Endpoint(f"production's database host {host}", resolve(host), 5432))
    redis_url = os.environ.get(config.redis.url_env, "") if config.redis.url_env else ""
    parts = urlsplit(redis_url)
    if parts.hostname:
        try:
            port = parts.port or 6379
        except ValueError:
            port = 6379
        endpoints.append(_Endpoint(f"production's Redis {parts.hostname}:{port}", resolve(parts.hostname), port))
    return endpoints


def _names_production(value: str, endpoints: list[_Endpoint]) -> str | None:
    """Which production endpoint ``value`` names, if any, and as what."""
    for host, port, is_address in hosts_in(value):
        for endpoint in endpoints:
            if LOOPBACK in endpoint.hosts:
                same = port == endpoint.port and normalise_host(host) == LOOPBACK
            else:
                same = bool((resolve(host) if is_address else {normalise_host(host)}) & endpoint.hosts)
            if same:
                return f"names {endpoint.what} (as {host!r})"
    return None


def _names_a_store(value: str) -> str | None:
    """Why ``value`` reads as a connection target of a store, or ``None``."""
    decoded = decode(value)
    for match in _SCHEME.finditer(decoded):
        if _STORE_SCHEMES & set(re.split(r"[+.]", match.group(1).lower())):
            return f"holds a {match.group(1)}:// URL"
    if _CONNINFO.search(decoded):
        return "holds a libpq connection parameter (host=, hostaddr=, service=, dbname=, passfile=)"
    if _SOCKET.search(decoded):
        return "names a PostgreSQL or Redis Unix socket"
    return None


def _env_problem(name: str, value: str, endpoints: list[_Endpoint]) -> str | None:
    if value.strip() in PLACEHOLDERS:
        return None
    if _CONNECTION_NAME.search(name):
        return _names_production(value, endpoints) or "is a connection setting but not exactly one placeholder"
    return _names_production(value, endpoints) or _names_a_store(value)


def check_staging_isolated(config: DrillConfig) -> None:
    """Refuse ``[app]`` settings that could point the staging app at anything but the drill's copies.

    Raises:
        ConfigError: one line naming the file, every offending key and why it is refused.
    """
    endpoints = _production_endpoints(config)
    problems = {f"env.{name}": _env_problem(name, value, endpoints) for name, value in config.app.env.items()}
    problems |= {
        f"command[{index}]": _names_production(part, endpoints) or _names_a_store(part)
        for index, part in enumerate(config.app.command)
    }
    found = "; ".join(f"{key} {why}" for key, why in problems.items() if why)
    if found:
        raise ConfigError(
            f"{config.source}: [app] {found}: the staging app may name a store only as {{database_url}} or "
            "{redis_url} in [app] env, which the drill fills with its throwaway copies"
        )


def check_preflight(config: DrillConfig, keys: Iterable[str] | None = None) -> None:
    """Both checks above, in the order an operator would fix them (isolation only for a target with an app).

    Args:
        config: the drill configuration.
        keys: the secrets this run needs, as for :func:`check_secrets_set`.

    Raises:
        ConfigError: the first problem found, in one line naming the file and the key.
    """
    check_secrets_set(config, keys)
    if config.app.enabled:
        check_staging_isolated(config)
