"""Where throwaway servers come from: ``auto`` picks local here, ``docker`` without an engine fails at once,
and, on a machine where Docker answers, containers restore a dump and an RDB through the same interface."""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.config import DrillConfig, ServiceSettings
from harness.errors import ServiceError
from harness.services.base import free_port, run_id
from harness.services.docker import RUN_LABEL, ContainerRedis, docker_available, remove_containers
from harness.services.provider import Provider
from tests.harness.test_restore import make_production


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the Docker client at a loopback port nothing listens on, so no engine can answer."""
    address = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DOCKER_HOST", address)
    return address


def test_auto_picks_local_processes_here_and_the_report_says_so(drill_config: DrillConfig) -> None:
    provider = Provider.from_settings(drill_config.services.model_copy(update={"provider": "auto"}))
    assert provider.kind == "local"
    assert provider.describe().startswith(f"local (PostgreSQL {provider.binaries.version} from ")


def test_docker_without_an_engine_fails_at_once_in_one_line(no_engine: str) -> None:
    started = time.monotonic()
    with pytest.raises(ServiceError) as failure:
        Provider.from_settings(ServiceSettings(provider="docker"))
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert "\n" not in message
    assert f"no Docker engine answers at {no_engine}" in message
    assert "set services.provider = 'local'" in message


def test_auto_without_redis_server_or_engine_says_how_to_install_it(no_engine: str) -> None:
    with pytest.raises(ServiceError, match=r"redis-server not found .*apt-get install -y redis-server"):
        Provider.from_settings(ServiceSettings(provider="auto", redis_server="/nonexistent/redis-server"))


def test_the_postgres_image_follows_the_local_client_tools_unless_configured(drill_config: DrillConfig) -> None:
    provider = Provider.from_settings(drill_config.services)
    assert provider.postgres_image == f"postgres:{provider.binaries.major}"
    pinned = Provider(ServiceSettings(postgres_image="postgres:18.1"), provider.kind, provider.binaries)
    assert pinned.postgres_image == "postgres:18.1"


def test_the_sweeper_skips_containers_when_no_engine_answers(no_engine: str) -> None:
    assert remove_containers({"0123456789"}) == []


@pytest.mark.skipif(not docker_available(), reason="no Docker engine answers")
def test_containers_restore_a_dump_and_an_rdb_through_the_provider(drill_config: DrillConfig, tmp_path: Path) -> None:
    import docker

    provider = Provider.from_settings(drill_config.services.model_copy(update={"provider": "docker"}))
    assert provider.describe().startswith(f"docker (postgres:{provider.binaries.major}, ")
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with contextlib.ExitStack() as stack:
        source = provider.postgres(f"ct-source-{uuid.uuid4().hex[:6]}")
        stack.callback(source.stop)
        s3 = provider.s3()
        stack.callback(s3.stop)
        assert (source.provider, s3.endpoint.provider.split(" ")[0]) == ("docker", "minio")
        production = make_production(source, s3, drill_config, newest=newest)
        staging = production.restore(provider, name=f"ct-staging-{uuid.uuid4().hex[:6]}")
        stack.callback(staging.postgres.stop)
        with staging.postgres.connect(staging.dbname) as conn:
            orders = conn.execute("SELECT count(*) FROM orders").fetchone()
            assert orders == (production.manifest.tables["orders"].rows,)
            assert conn.execute("SHOW fsync").fetchone() == ("off",)

        saved = provider.redis("ct-saved", settings={"appendonly": "yes", "save": "3600 1"})
        stack.callback(saved.stop)
        with saved.client() as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("save") == {"save": "3600 1"}
            client.mset({f"k{i}": i for i in range(25)})
            client.save()
        assert isinstance(saved, ContainerRedis)
        saved.container.copy_from_container("/data/dump.rdb", tmp_path / "dump.rdb")
        restored = provider.redis("ct-restored", rdb_file=tmp_path / "dump.rdb")
        stack.callback(restored.stop)
        with restored.client() as client:
            assert client.dbsize() == 25
    with contextlib.closing(docker.from_env()) as engine:
        assert engine.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id()}"}) == []
