from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from sandbox.codeblack.app import create_app
from sandbox.codeblack.revisions import alembic_config
from sandbox.codeblack.settings import Settings
from tests.ports import closed_port

DEEP = "/api/v1/system/health/deep"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and then never says a word: a hung server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def _deep(serve: Any, settings: Settings) -> httpx.Response:
    with serve(create_app(settings)) as client:
        return client.get(DEEP)


def test_liveness_answers_ok(api: httpx.Client) -> None:
    response = api.get("/api/v1/system/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_deep_health_is_ok_when_every_store_is_up(api: httpx.Client, settings: Settings) -> None:
    response = api.get(DEEP)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "components": {
            "database": {"status": "ok", "revision": "b6e8dcb19a40", "head": "b6e8dcb19a40"},
            "redis": {"status": "ok", "appendonly": "yes"},
            "object_storage": {"status": "ok", "bucket": settings.uploads_bucket},
        },
        "maintenance": False,
    }


def test_unreachable_database_is_down_and_its_password_is_not_shown(serve: Any, settings: Settings) -> None:
    with closed_port() as port:
        url = make_url(settings.database_url).set(password="hunter2-secret", port=port)
        response = _deep(serve, replace(settings, database_url=url.render_as_string(hide_password=False)))
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["components"]["database"]["status"] == "down"
    assert "\n" not in body["components"]["database"]["error"]
    assert "hunter2-secret" not in response.text
    assert body["components"]["redis"]["status"] == "ok"
    assert body["components"]["object_storage"]["status"] == "ok"
    assert body["maintenance"] is None


def test_database_behind_head_is_down_naming_both_revisions(
    api: httpx.Client, settings: Settings, database_url: str
) -> None:
    command.downgrade(alembic_config(database_url), "-1")
    response = api.get(DEEP)
    database = response.json()["components"]["database"]
    assert response.status_code == 503
    assert database["status"] == "down"
    assert "d2a7c3e9f165" in database["error"]
    assert "b6e8dcb19a40" in database["error"]


def test_unmigrated_database_is_down(serve: Any, settings: Settings, pg_server: Any) -> None:
    name = f"unmigrated_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name)
    try:
        response = _deep(serve, replace(settings, database_url=pg_server.sqlalchemy_url(name)))
    finally:
        pg_server.drop_database(name)
    assert response.status_code == 503
    assert "alembic_version is missing" in response.json()["components"]["database"]["error"]


def test_unreachable_redis_is_down(serve: Any, settings: Settings) -> None:
    with closed_port() as port:
        response = _deep(serve, replace(settings, redis_url=f"redis://127.0.0.1:{port}/0"))
    body = response.json()
    assert response.status_code == 503
    assert body["components"]["redis"]["status"] == "down"
    assert body["components"]["database"]["status"] == "ok"


def test_redis_without_appendonly_is_down(serve: Any, settings: Settings, redis_factory: Any) -> None:
    volatile = redis_factory(appendonly="no")
    response = _deep(serve, replace(settings, redis_url=volatile.url))
    redis_report = response.json()["components"]["redis"]
    assert response.status_code == 503
    assert redis_report["status"] == "down"
    assert redis_report["appendonly"] == "no"
    assert "appendonly yes" in redis_report["error"]


def test_missing_bucket_is_down_naming_the_bucket(serve: Any, settings: Settings) -> None:
    response = _deep(serve, replace(settings, uploads_bucket="codeblack-no-such-bucket"))
    storage = response.json()["components"]["object_storage"]
    assert response.status_code == 503
    assert storage["status"] == "down"
    assert "codeblack-no-such-bucket" in storage["error"]


def test_hung_stores_are_reported_within_the_deadline(serve: Any, settings: Settings, silent_port: int) -> None:
    hung = replace(
        settings,
        database_url=make_url(settings.database_url).set(port=silent_port).render_as_string(hide_password=False),
        redis_url=f"redis://127.0.0.1:{silent_port}/0",
        s3_endpoint_url=f"http://127.0.0.1:{silent_port}",
    )
    with serve(create_app(hung)) as client:
        started = time.monotonic()
        response = client.get(DEEP)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert {name: part["status"] for name, part in response.json()["components"].items()} == {
        "database": "down",
        "redis": "down",
        "object_storage": "down",
    }
    assert elapsed < 5, f"health/deep took {elapsed:.1f} s with every store hung; each check must stop at 3 s"
