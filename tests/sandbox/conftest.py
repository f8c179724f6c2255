"""Fixtures of the sandbox backend's tests: a migrated database, a bucket, settings and a live server.

Servers come from the harness's throwaway-server fixtures (``pg_database``, ``redis_server``, ``s3_server``);
the app runs under a real uvicorn in a thread and is reached over HTTP with httpx.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from alembic import command
from fastapi import FastAPI

from sandbox.codeblack.app import create_app
from sandbox.codeblack.revisions import alembic_config
from sandbox.codeblack.settings import Settings, secret_env_name

Serve = Callable[[FastAPI], contextlib.AbstractContextManager[httpx.Client]]


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    """A distinctive value of the sensitive key ``jwt.secret``, so a test can prove it never leaks."""
    return "jwt-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def signing_seed() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


@pytest.fixture
def database_url(pg_database: Any) -> str:
    """A fresh database migrated to head (which also seeds the default config entries)."""
    url: str = pg_database.sqlalchemy_url
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture
def uploads_bucket(s3_server: Any) -> Iterator[str]:
    name = f"codeblack-uploads-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    yield name
    client.delete_bucket(Bucket=name)


@pytest.fixture
def settings(
    database_url: str,
    redis_server: Any,
    s3_server: Any,
    uploads_bucket: str,
    signing_seed: str,
    jwt_secret: str,
) -> Settings:
    """Settings of a healthy world; bob and carol are the approvers."""
    endpoint = s3_server.endpoint
    return Settings(
        database_url=database_url,
        redis_url=redis_server.url,
        s3_endpoint_url=endpoint.url,
        s3_region=endpoint.region,
        uploads_bucket=uploads_bucket,
        aws_access_key_id=endpoint.access_key.get_secret_value(),
        aws_secret_access_key=endpoint.secret_key.get_secret_value(),
        signing_key=signing_seed,
        approvers=frozenset({"bob", "carol"}),
        secrets={secret_env_name("jwt.secret"): jwt_secret},
    )


@contextlib.contextmanager
def _serving(app: FastAPI) -> Iterator[httpx.Client]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start serving the sandbox app on port {port} within 15 s")
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def serve() -> Serve:
    """Run an app under uvicorn for the duration of a ``with`` block and yield an httpx client to it."""
    return _serving


@pytest.fixture
def api(settings: Settings, serve: Serve) -> Iterator[httpx.Client]:
    """A client of the sandbox app running against the test's database, Redis and bucket."""
    with serve(create_app(settings)) as client:
        yield client
