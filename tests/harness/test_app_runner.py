"""AppProcess against real stores: healthy start, a backend whose health stays down, a crash at start."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from alembic import command
from pydantic import SecretStr

from harness.app.runner import AppProcess, app_env
from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import CheckFailed, ServiceError
from harness.migrations.deploy import wait_listening
from sandbox.codeblack.revisions import alembic_config


@pytest.fixture
def app_environment(
    pg_database: Any, redis_server: Any, s3_server: Any, drill_config: DrillConfig
) -> Iterator[dict[str, str]]:
    command.upgrade(alembic_config(pg_database.sqlalchemy_url), "head")
    bucket = f"codeblack-uploads-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    config = drill_config.with_changes(storage={"uploads_bucket": bucket})
    deployment = Deployment(
        name="test", config=config, storage=s3_server.endpoint, redis_url=None, database_host="127.0.0.1",
        verify_key="", app_secrets={"CODEBLACK_SIGNING_KEY": SecretStr("A" * 43 + "=")},
    )  # fmt: skip
    yield app_env(config, deployment, database_url=pg_database.sqlalchemy_url, redis_url=redis_server.url)
    s3_server.client().delete_bucket(Bucket=bucket)


def _command(factory: str) -> list[str]:
    return ["{python}", "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", "{port}"]


def _assert_gone(app: AppProcess) -> None:
    assert app.process is not None
    assert not psutil.pid_exists(app.process.pid) or psutil.Process(app.process.pid).status() == "zombie"
    assert app.workdir is not None
    assert not app.workdir.exists()


def test_the_sandbox_app_becomes_healthy(app_environment: dict[str, str], drill_config: DrillConfig) -> None:
    app = AppProcess.from_config(drill_config, app_environment).start()
    try:
        answer = app.wait_healthy(timeout=30)
    finally:
        app.stop()
    assert answer.healthy
    assert answer.body["components"]["database"]["status"] == "ok"
    _assert_gone(app)


def test_a_backend_whose_database_is_down_fails_naming_the_component(
    app_environment: dict[str, str], drill_config: DrillConfig
) -> None:
    app = AppProcess.from_config(
        drill_config, app_environment, command=_command("tests.broken_backends.unhealthy:create_app")
    ).start()
    try:
        # The deadline is tested from a known state, the app answering: its start alone takes seconds on a busy
        # machine, and a deadline that passed before the first answer says "never answered" instead.
        wait_listening(app, timeout=120)
        with pytest.raises(CheckFailed, match=r"not healthy within 1 s \(down: database: OperationalError"):
            app.wait_healthy(timeout=1)
    finally:
        app.stop()
    _assert_gone(app)


def test_an_app_crashing_at_start_fails_at_once_quoting_its_log(drill_config: DrillConfig) -> None:
    crash = ["{python}", "-c", "import sys; print('settings missing: CODEBLACK_DATABASE_URL'); sys.exit(3)"]
    app = AppProcess.from_config(drill_config, {}, command=crash).start()
    try:
        with pytest.raises(ServiceError, match=r"exited with code 3 during start: settings missing"):
            app.wait_healthy(timeout=30)
    finally:
        app.stop()
    _assert_gone(app)
