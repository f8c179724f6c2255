"""The staging guard: an allowlist of the harness's placeholders, with production's hosts matched in any spelling.

Each bypass of the old denylist that was reproduced is a case here with the exact refusal; the embedded
default's command must pass whatever production's host is, loopback included.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import PROJECT_ROOT, load_config
from harness.endpoints import normalise_host, resolve
from harness.errors import ConfigError
from harness.safety import check_preflight, check_staging_isolated

DEFAULT_COMMAND = load_config(PROJECT_ROOT / "drill.toml").app.command
TAIL = (
    ": the staging app may name a store only as {database_url} or {redis_url} in [app] env, which the drill "
    "fills with its throwaway copies"
)
URL = "holds a postgresql+psycopg:// URL"
SETTING = "is a connection setting but not exactly one placeholder"
_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def production_resolves_to_10_0_0_5(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``db.internal.example`` resolves to 10.0.0.5, as production's name would on an operator's machine."""

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "db.internal.example" and not kwargs.get("flags", 0) & socket.AI_NUMERICHOST:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 0))]
        return _real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    resolve.cache_clear()
    yield
    resolve.cache_clear()


def _config(tmp_path: Path, database_host: str, *, env: dict[str, str] | None = None,
            command: list[str] | None = None, redis: str = "") -> Path:  # fmt: skip
    text = f"[storage]\ndatabase_host = {json.dumps(database_host)}\n"
    if redis:
        text += '[redis]\nurl_env = "DRILL_TEST_PRODUCTION_REDIS"\n'
    text += "[app]\n" + f"command = {json.dumps(command or DEFAULT_COMMAND)}\n"
    text += "env = {" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in (env or {}).items()) + "}\n"
    path = tmp_path / "drill.toml"
    path.write_text(text)
    return path


BYPASSES = [
    # (production database host, production Redis URL, [app] env, [app] command, refused key and why)
    ("localhost", "", {"CODEBLACK_DATABASE_URL": "postgresql+psycopg://app@127.0.0.1:55432/codeblack"}, None,
     f"env.CODEBLACK_DATABASE_URL {SETTING}"),
    ("db.internal.example", "", {"UPSTREAM": "DB.INTERNAL.EXAMPLE"}, None,
     "env.UPSTREAM names production's database host db.internal.example (as 'DB.INTERNAL.EXAMPLE')"),
    ("db.internal.example", "", None, ["app", "--upstream", "db.internal.example.:6432"],
     "command[2] names production's database host db.internal.example (as 'db.internal.example.')"),
    ("db.internal.example", "", {"API_UPSTREAM": "https://db%2Einternal.example/v1"}, None,
     "env.API_UPSTREAM names production's database host db.internal.example (as 'db.internal.example')"),
    ("db.internal.example", "", {"UPSTREAM": "10.0.0.5:6432"}, None,
     "env.UPSTREAM names production's database host db.internal.example (as '10.0.0.5')"),
    ("db.internal.example", "", {"PGSERVICE": "prod"}, None, f"env.PGSERVICE {SETTING}"),
    ("db.internal.example", "", {"PGSERVICEFILE": "/etc/pg_service.conf", "PGPASSFILE": "/root/.pgpass"}, None,
     f"env.PGSERVICEFILE {SETTING}; env.PGPASSFILE {SETTING}"),
    ("localhost", "", None, ["app", "--dsn", "postgresql+psycopg://app@[::1]:5432/codeblack"],
     "command[2] names production's database host localhost (as '::1')"),
    ("localhost", "", None, ["app", "--db", "127.0.0.1:5432"],
     "command[2] names production's database host localhost (as '127.0.0.1')"),
    ("localhost", "", None, ["app", "--dsn", "postgresql+psycopg://app@127.0.0.1:55432/codeblack"],
     f"command[2] {URL}"),
    ("localhost", "", {"APP_DB": "{database_url}?host=/var/run/postgresql"}, None,
     "env.APP_DB holds a libpq connection parameter (host=, hostaddr=, service=, dbname=, passfile=)"),
    ("localhost", "", {"SOCKET": "/tmp/.s.PGSQL.5432"}, None,
     "env.SOCKET names a PostgreSQL or Redis Unix socket"),
    ("", "redis://:pw@10.0.0.7/0", None, ["app", "--cache", "redis://10.0.0.7/1"],
     "command[2] names production's Redis 10.0.0.7:6379 (as '10.0.0.7')"),
    ("", "redis://10.0.0.7:6380/0", {"OTHER": "REDIS://cache.elsewhere:6381/0"}, None,
     "env.OTHER holds a REDIS:// URL"),
    ("", "", {"LEGACY": "jdbc:postgresql://db.elsewhere/codeblack"}, None, "env.LEGACY holds a postgresql:// URL"),
    ("", "", {"QUEUE": "conninfo: dbname=codeblack"}, None,
     "env.QUEUE holds a libpq connection parameter (host=, hostaddr=, service=, dbname=, passfile=)"),
]  # fmt: skip


@pytest.mark.parametrize(("database_host", "redis", "env", "command", "refused"), BYPASSES)
def test_bypasses_of_the_denylist_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_host: str, redis: str,
    env: dict[str, str] | None, command: list[str] | None, refused: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("DRILL_TEST_PRODUCTION_REDIS", redis)
    path = _config(tmp_path, database_host, env=env, command=command, redis=redis)
    with pytest.raises(ConfigError) as refusal:
        check_staging_isolated(load_config(path))
    assert str(refusal.value) == f"{path}: [app] {refused}{TAIL}"


@pytest.mark.parametrize("database_host", ["127.0.0.1", "localhost", "::1", "db.internal.example"])
def test_the_default_command_and_the_placeholders_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_host: str
) -> None:
    monkeypatch.setenv("DRILL_TEST_PRODUCTION_REDIS", "redis://127.0.0.1:6379/0")
    env = {"CODEBLACK_DATABASE_URL": "{database_url}", "CELERY_BROKER_URL": " {redis_url} ",
           "AWS_ENDPOINT_URL": "{s3_endpoint_url}", "SENTRY_DSN": "https://key@o1.ingest.example/2",
           "STATSD": "127.0.0.1:8125", "BIND": "0.0.0.0:8000", "DB_CONNECT_TIMEOUT": "5",
           "DATABASE_POOL_SIZE": "10"}  # fmt: skip
    check_staging_isolated(load_config(_config(tmp_path, database_host, env=env, redis="yes")))
    check_staging_isolated(load_config(PROJECT_ROOT / "drill.toml"))


@pytest.mark.parametrize(
    ("spelling", "normal"),
    [("DB.Internal.Example.", "db.internal.example"), ("db%252Einternal.example", "db.internal.example"),
     ("127.1", "loopback"), ("[::1]", "loopback"), ("0.0.0.0", "loopback"), ("LOCALHOST.", "loopback"),
     ("::ffff:10.0.0.7", "10.0.0.7"), ("0x0a000007", "10.0.0.7")],
)  # fmt: skip
def test_a_host_has_one_spelling(spelling: str, normal: str) -> None:
    assert normalise_host(spelling) == normal


def test_a_loopback_production_database_accepts_the_app_the_user_never_wrote(tmp_path: Path) -> None:
    """Issue 16 item 6: ``database_host = "127.0.0.1"`` and no ``[app]`` at all: the preflight passes."""
    path = tmp_path / "drill.toml"
    path.write_text('[target]\nsandbox = false\n\n[storage]\ndatabase_host = "127.0.0.1"\n')
    check_preflight(load_config(path), keys=())
