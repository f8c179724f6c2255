"""Where throwaway servers come from: ``auto`` picks local here, ``docker`` without an engine fails at once.

The containers themselves are tested in ``test_containers.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.config import DrillConfig, ServiceSettings
from harness.errors import ServiceError
from harness.services.docker import remove_containers
from harness.services.provider import Provider
from tests.ports import closed_port


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the Docker client at a loopback port nothing listens on, so no engine can answer."""
    with closed_port() as port:
        address = f"tcp://127.0.0.1:{port}"
        monkeypatch.setenv("DOCKER_HOST", address)
        yield address


def test_auto_picks_local_processes_here_and_the_report_says_so(drill_config: DrillConfig) -> None:
    provider = Provider.from_settings(drill_config.services.model_copy(update={"provider": "auto"}))
    assert provider.kind == "local"
    assert provider.describe().startswith(
        f"local (auto: local processes start fastest; PostgreSQL {provider.binaries.version} from "
    )


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


def test_the_postgres_image_is_the_projects_own_of_the_local_major_unless_configured(
    drill_config: DrillConfig,
) -> None:
    provider = Provider.from_settings(drill_config.services)
    assert provider.postgres_image == f"codeblack-drills/postgres:{provider.binaries.major}"
    pinned = Provider(ServiceSettings(postgres_image="registry.example/pg:{major}-site"), provider.kind,
                      provider.binaries)  # fmt: skip
    assert pinned.postgres_image == f"registry.example/pg:{provider.binaries.major}-site"


def test_the_sweeper_skips_containers_when_no_engine_answers(no_engine: str) -> None:
    assert remove_containers({"0123456789"}) == []
