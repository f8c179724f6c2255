"""Staging runs the PostgreSQL production runs: the dump's major, its extensions, and ``backup postgres`` on 13-18.

The production here is a real PostgreSQL 15 (Debian's ``postgresql-15``, which ``scripts/bootstrap`` installs)
whose table takes its key from ``uuid-ossp``, backed up by ``codeblack-drills backup postgres`` with PostgreSQL
15's ``pg_dump``. The drill restores it into a PostgreSQL 15 staging (Debian's here, or the PostgreSQL 15 image
under the docker provider); forced onto PostgreSQL 18, whose wheel (and image) ships no ``uuid-ossp``, it could
not run and says which extension is missing and how to get it. With the PostgreSQL 13 and 17 images built, a
production of that major (a container, dumped by its own ``pg_dump``) restores into a staging of the same major.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from harness.backup.postgres import compress_argument, dump_binaries
from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError, ServiceError
from harness.measure import Stopwatch
from harness.restore.dump_header import DumpHeader, parse_dump_header
from harness.restore.extensions import Extension, create_extensions
from harness.restore.staging import Staging, restore_logical
from harness.services.base import run_tool
from harness.services.docker import ContainerPostgres, image_majors
from harness.services.pgversions import choose_staging
from harness.services.postgres import OWNER_ROLE, LocalPostgres, PostgresServer, find_binaries
from harness.services.provider import Provider
from harness.services.s3 import MotoS3
from harness.storage.catalogue import BackupObject
from harness.storage.manifest import BackupManifest
from tests.harness.test_containers import (
    NOT_READY,
    docker_provider_fixture,  # noqa: F401 - the fixture
    either_provider_fixture,  # noqa: F401 - the fixture
    needs_docker,
)
from tests.harness.test_restore import make_production

PG15 = Path("/usr/lib/postgresql/15/bin")
PROGRAM = Path(sys.executable).parent / "codeblack-drills"
NOW = datetime.now(UTC).replace(microsecond=0)

needs_pg15 = pytest.mark.skipif(
    not (PG15 / "postgres").exists(), reason="needs Debian's postgresql-15 (scripts/bootstrap installs it)"
)


def header(source: str, dumper: str, archive: tuple[int, int, int]) -> DumpHeader:
    return DumpHeader(archive, source, dumper)


@pytest.fixture(scope="module")
def production15() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 standing in for production: ``things`` keyed by ``uuid_generate_v4()`` in schema ``ext``."""
    server = LocalPostgres.create(f"prod15{uuid.uuid4().hex[:4]}", binaries=find_binaries(str(PG15)), throwaway=False)
    server.create_database("shop")
    with server.connect("shop") as conn:
        conn.execute('CREATE SCHEMA ext; CREATE EXTENSION "uuid-ossp" WITH SCHEMA ext')
        conn.execute("CREATE TABLE things (id uuid PRIMARY KEY DEFAULT ext.uuid_generate_v4(), "
                     "created_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        conn.execute("INSERT INTO things (created_at) SELECT %s - make_interval(mins => g) "
                     "FROM generate_series(1, 40) g", (NOW - timedelta(minutes=5),))  # fmt: skip
    yield server
    server.stop()


def _site(tmp_path: Path, s3_server: MotoS3, extra: str = "") -> tuple[Path, dict[str, str], str]:
    bucket = f"pg15-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    config = tmp_path / "drill.toml"
    config.write_text(
        f'[target]\nsandbox = false\n[storage]\nendpoint_url = "{s3_server.endpoint.url}"\n'
        f'backup_bucket = "{bucket}"\naccess_key_env = "T_S3_KEY"\nsecret_key_env = "T_S3_SECRET"\n'
        f'[database]\nname = "shop"\ncritical_tables = ["things"]\naudit_table = "things"\n{extra}'
    )
    env = {"T_S3_KEY": s3_server.endpoint.access_key.get_secret_value(),
           "T_S3_SECRET": s3_server.endpoint.secret_key.get_secret_value()}  # fmt: skip
    return config, env, bucket


@pytest.fixture(scope="module")
def dump15(
    production15: PostgresServer, s3_server: MotoS3, tmp_path_factory: pytest.TempPathFactory, drill_config: DrillConfig
) -> tuple[Deployment, BackupManifest]:
    """``backup postgres`` run as cron runs it, with PostgreSQL 15's pg_dump (``services.postgres_bin_dir``)."""
    services = f'[services]\npostgres_bin_dir = "{PG15}"\n'
    config, env, bucket = _site(tmp_path_factory.mktemp("pg15"), s3_server, services)
    result = subprocess.run([PROGRAM, "--config", config, "backup", "postgres"], capture_output=True, text=True,
                            env={**os.environ, **env, "DATABASE_URL": production15.dsn("shop")}, timeout=120,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = BackupManifest.model_validate(json.loads(result.stdout))
    assert manifest.server_version.startswith("15.")
    settings = drill_config.with_changes(
        storage={"backup_bucket": bucket},
        database={"name": "shop", "critical_tables": ["things"], "audit_table": "things"},
    )
    deployment = Deployment(
        name="pg15", config=settings, storage=s3_server.endpoint, redis_url=None, database_host="127.0.0.1",
        verify_key="", app_secrets={"CODEBLACK_SIGNING_KEY": SecretStr("B" * 43 + "=")},
    )  # fmt: skip
    return deployment, manifest


def _restore(provider: Provider, deployment: Deployment, manifest: BackupManifest, **services: Any) -> Staging:
    config = deployment.config.with_changes(services=services) if services else deployment.config
    dump = BackupObject(manifest.key, manifest.taken_at, manifest.size, "")
    return restore_logical(provider, deployment, config, dump, manifest, watch=Stopwatch(),
                           name=f"stg{uuid.uuid4().hex[:6]}")  # fmt: skip


@needs_pg15
def test_a_pg15_dump_made_by_backup_postgres_restores_into_pg15_with_uuid_ossp(
    either_provider: Provider, dump15: tuple[Deployment, BackupManifest]
) -> None:
    deployment, manifest = dump15
    body = deployment.storage.client().get_object(Bucket=deployment.backup_bucket, Key=manifest.key)["Body"].read()
    head = parse_dump_header(body[:4096])
    assert head is not None
    assert (head.source_major, head.dumper_major, head.archive) == (15, 15, "1.14")
    staging = _restore(either_provider, deployment, manifest)
    try:
        assert staging.postgres.binaries.major == "15"
        assert staging.postgres.provider == either_provider.kind
        assert staging.postgres_choice is not None
        assert staging.postgres_choice.warning == ""
        assert staging.postgres_choice.describe().startswith("PostgreSQL 15.")
        # Under docker, the server and the pg_restore that loaded it are the PostgreSQL 15 image's.
        in_image = " from codeblack-drills/postgres:15 container; " in staging.postgres_choice.describe()
        assert in_image == (either_provider.kind == "docker")
        assert staging.counts.tables["things"].rows == 40
        with staging.postgres.connect(staging.dbname, OWNER_ROLE) as conn:  # the restored default works
            row = conn.execute("INSERT INTO things DEFAULT VALUES RETURNING id").fetchone()
            assert row is not None
            assert row[0].version == 4
    finally:
        staging.stop()


@needs_pg15
def test_the_same_dump_forced_onto_the_embedded_pg18_could_not_run_naming_uuid_ossp(
    either_provider: Provider, dump15: tuple[Deployment, BackupManifest]
) -> None:
    deployment, manifest = dump15
    with pytest.raises(ServiceError) as failure:
        _restore(either_provider, deployment, manifest, postgres_major=18)
    binaries = either_provider.binaries
    source = binaries.source if either_provider.kind == "local" else "codeblack-drills/postgres:18 container"
    assert str(failure.value) == (
        f"the dump needs extension uuid-ossp, which PostgreSQL {binaries.version} ({source}) lacks; install it for "
        "PostgreSQL 18 (Debian/Ubuntu: apt-get install postgresql-contrib-18 for a contrib module, "
        "postgresql-18-<name> for others) or set services.postgres_bin_dir to a PostgreSQL 18 that has it"
    )  # under docker, the docker_provider fixture checks that the failed restore left no container


def _image_built(major: int) -> bool:
    return not NOT_READY and major in image_majors("codeblack-drills/postgres:{major}")


def _with_image(major: int) -> Any:
    """``major`` as a parameter, skipped unless its image is built (scripts/test builds only 15 and 18)."""
    missing = pytest.mark.skipif(not _image_built(major), reason=f"run scripts/images postgres:{major}")
    return pytest.param(major, marks=missing)


@needs_docker
@pytest.mark.parametrize("major", [_with_image(13), _with_image(17)])
def test_with_containers_a_dump_taken_by_an_older_major_restores_into_that_majors_image(
    major: int, docker_provider: Provider, s3_server: MotoS3, drill_config: DrillConfig
) -> None:
    """Production runs PostgreSQL 13 or 17 (in a container), dumped by its own pg_dump: staging runs that major."""
    production = ContainerPostgres.create(f"prod{major}x{uuid.uuid4().hex[:4]}",
                                          image=f"codeblack-drills/postgres:{major}")  # fmt: skip
    try:
        production.create_database("shop")
        with production.connect("shop") as conn:
            conn.execute('CREATE EXTENSION "uuid-ossp"; CREATE TABLE things (id uuid PRIMARY KEY DEFAULT '
                         "uuid_generate_v4(), created_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
            conn.execute("INSERT INTO things (created_at) SELECT now() - make_interval(mins => g) "
                         "FROM generate_series(1, 30) g")  # fmt: skip
        dump = run_tool([production.binaries.tool("pg_dump"), "-Fc", "-d", "shop"], what="pg_dump", timeout=120,
                        env=production.tool_env()).stdout  # fmt: skip
    finally:
        production.stop()
    bucket = f"pg{major}-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    key = f"postgres/logical/shop-{NOW:%Y%m%dT%H%M%SZ}.dump"
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=dump)
    config = drill_config.with_changes(
        storage={"backup_bucket": bucket, "key_name": "shop"},
        database={"name": "shop", "critical_tables": ["things"], "audit_table": "things"},
    )
    deployment = Deployment(
        name=f"pg{major}", config=config, storage=s3_server.endpoint, redis_url=None, database_host="127.0.0.1",
        verify_key="", app_secrets={"CODEBLACK_SIGNING_KEY": SecretStr("B" * 43 + "=")},
    )  # fmt: skip
    staging = restore_logical(docker_provider, deployment, config, BackupObject(key, NOW, len(dump), ""), None,
                              watch=Stopwatch(), name=f"stg{uuid.uuid4().hex[:6]}")  # fmt: skip
    try:
        assert staging.postgres_choice is not None
        assert staging.postgres_choice.describe().startswith(f"PostgreSQL {major}.")
        assert f"from codeblack-drills/postgres:{major} container; the dump's source major: {major}" in (
            staging.postgres_choice.describe()
        )
        assert staging.counts.tables["things"].rows == 30
    finally:
        staging.stop()


def test_an_untrusted_extension_is_made_by_the_harness_in_the_dumps_schema(
    provider: Provider, pg_server: PostgresServer, s3_server: MotoS3, drill_config: DrillConfig
) -> None:
    """pg_buffercache is not trusted: the non-superuser restore alone is refused it ("permission denied")."""
    extra = ("CREATE SCHEMA tools; CREATE EXTENSION pg_buffercache WITH SCHEMA tools; "
             "CREATE VIEW tools.buffers AS SELECT count(*) AS n FROM tools.pg_buffercache")  # fmt: skip
    production = make_production(pg_server, s3_server, drill_config, newest=NOW - timedelta(minutes=5), extra_sql=extra)
    staging = production.restore(provider, name=f"stg{uuid.uuid4().hex[:6]}")
    try:
        with staging.postgres.connect(staging.dbname) as conn:
            schema = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                  "WHERE extname = 'pg_buffercache'").fetchone()  # fmt: skip
            owner = conn.execute("SELECT viewowner FROM pg_views WHERE viewname = 'buffers'").fetchone()
        assert (schema, owner) == (("tools",), (OWNER_ROLE,))
        assert "(its schemas)" not in staging.restore_log  # the log is pg_restore's own
        assert staging.counts.tables["orders"].rows == production.manifest.tables["orders"].rows
    finally:
        staging.stop()


@needs_pg15
def test_staging_takes_the_dumps_major_or_the_nearest_newer_with_a_warning() -> None:
    default = find_binaries()
    exact = choose_staging(header("15.18", "15.18", (1, 14, 0)), default)
    assert (exact.binaries.major, exact.warning) == ("15", "")
    missing = choose_staging(header("16.4", "16.4", (1, 15, 0)), default)
    assert missing.binaries.major == "18"
    assert missing.warning == (
        "staging runs PostgreSQL 18 instead: no PostgreSQL 16 is installed; to restore into 16, install "
        "PostgreSQL 16 (Debian/Ubuntu: apt-get install postgresql-16) or set services.postgres_bin_dir to its "
        "bin directory"
    )
    # pg_dump 18 of a PostgreSQL 15 server writes archive 1.16, which PostgreSQL 15's pg_restore cannot read.
    newer_tools = choose_staging(header("15.18", "18.1", (1, 16, 0)), default)
    assert newer_tools.binaries.major == "18"
    assert newer_tools.warning.startswith("staging runs PostgreSQL 18 instead: PostgreSQL 15's pg_restore cannot "
                                          "read this dump (archive 1.16, written by pg_dump 18); ")  # fmt: skip
    assert choose_staging(None, default).binaries == default


def test_a_dump_newer_than_every_installed_postgresql_could_not_run() -> None:
    with pytest.raises(ServiceError) as failure:
        choose_staging(header("99.0", "99.0", (1, 17, 0)), find_binaries())
    message = str(failure.value)
    assert message.startswith("the dump's source major is 99 (the dump comes from PostgreSQL 99.0, archive 1.17, "
                              "written by pg_dump 99), but no PostgreSQL 99 is installed, and no newer installed "
                              "PostgreSQL can stand in (installed: ")  # fmt: skip
    assert message.endswith("; install PostgreSQL 99 (Debian/Ubuntu: apt-get install postgresql-99) or set "
                            "services.postgres_bin_dir to its bin directory")  # fmt: skip
    with pytest.raises(
        ServiceError,
        match=r"^services\.postgres_major is 12 \(the dump comes from PostgreSQL 18\.1, "
        r"archive 1\.16, written by pg_dump 18\), but no PostgreSQL 12 is installed \(installed: ",
    ):
        choose_staging(header("18.1", "18.1", (1, 16, 0)), find_binaries(), forced=12)


def test_garbage_and_plain_sql_have_no_header() -> None:
    assert parse_dump_header(b"") is None
    assert parse_dump_header(b"--\n-- PostgreSQL database dump\n") is None
    assert parse_dump_header(b"PGDMP\x01\x0e\x00\x04\x08\x01") is None  # truncated


@needs_pg15
def test_pg_dump_before_16_takes_a_gzip_level() -> None:
    pg_dump15, pg_dump18 = PG15 / "pg_dump", find_binaries().tool("pg_dump")
    assert compress_argument(pg_dump18, "gzip:6") == "--compress=gzip:6"
    assert [compress_argument(pg_dump15, c) for c in ("gzip:6", "gzip:level=9", "gzip", "none", "3")] == [
        "--compress=6", "--compress=9", "--compress=6", "--compress=0", "--compress=3",
    ]  # fmt: skip
    with pytest.raises(HarnessError, match=r"^pg_dump 15 \(.*\) cannot compress with 'zstd:3': before PostgreSQL 16"):
        compress_argument(pg_dump15, "zstd:3")


@needs_pg15
def test_backup_postgres_takes_the_pg_dump_of_the_servers_major(
    production15: PostgresServer, pg_server: PostgresServer
) -> None:
    assert dump_binaries(production15.dsn("shop")).bin_dir == PG15
    assert dump_binaries(pg_server.dsn()).major == pg_server.binaries.major
    assert (
        dump_binaries(production15.dsn("shop"), configured=str(pg_server.binaries.bin_dir)).major
        == pg_server.binaries.major
    )


def test_no_extension_is_made_as_superuser_in_a_schema_the_dump_already_filled(pg_server: PostgresServer) -> None:
    """A crafted schema entry that also plants a function: the extension's script would find it on its path."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name, owner=OWNER_ROLE)
    try:
        with pg_server.connect(name, OWNER_ROLE) as conn:
            conn.execute("CREATE SCHEMA tools; CREATE FUNCTION tools.trojan() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        with pytest.raises(CheckFailed) as failure:
            create_extensions(pg_server, name, [Extension("pg_buffercache", "tools")])
        assert str(failure.value) == (
            "the dump's schemas pass left function tools.trojan before its extensions were created: a schema entry "
            "did more than create a schema, so the harness does not create extensions there as superuser"
        )
        with pg_server.connect(name) as conn:
            assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_buffercache'").fetchone() is None
    finally:
        pg_server.drop_database(name)
