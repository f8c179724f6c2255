from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from sandbox.codeblack.app import create_app
from sandbox.codeblack.heartbeat import REDIS_KEY, HeartbeatWriter
from sandbox.codeblack.settings import Settings

OPS = {"X-Actor": "ops"}
REPO = Path(__file__).resolve().parents[2]


def _writes(client: httpx.Client) -> dict[str, httpx.Response]:
    application = {"applicant_name": "Ada", "email": "ada@example.com", "amount": "120.00"}
    return {
        "application": client.post("/api/v1/applications", json=application, headers=OPS),
        "blacklist": client.post("/api/v1/blacklist", json={"kind": "phone", "value": "+100"}, headers=OPS),
        "config": client.put("/api/v1/config/ui.banner_text", json={"value": "x"}, headers=OPS),
    }


def test_business_writes_are_counted(api: httpx.Client) -> None:
    applicant = {"applicant_name": "Ada", "email": "ada@example.com", "amount": "120.00"}
    application = api.post("/api/v1/applications", json=applicant, headers=OPS)
    assert application.status_code == 201
    order = {"application_id": application.json()["id"], "amount": "99.50"}
    placed = api.post("/api/v1/orders", json=order, headers=OPS)
    assert (placed.status_code, placed.json()["currency"], placed.json()["amount"]) == (201, "EUR", "99.50")
    too_big = api.post("/api/v1/orders", json={**order, "amount": "9999.00"}, headers=OPS)
    assert too_big.status_code == 422
    listed = {"kind": "email", "value": "x@y.z"}
    assert api.post("/api/v1/blacklist", json=listed, headers=OPS).status_code == 201
    assert api.post("/api/v1/blacklist", json=listed, headers=OPS).status_code == 409
    counts = api.get("/api/v1/stats/counts").json()
    assert (counts["applications"], counts["orders"], counts["blacklist_entries"]) == (1, 1, 1)


def test_maintenance_mode_refuses_writes_until_writes_are_re_enabled(api: httpx.Client) -> None:
    enabled = api.put("/api/v1/system/maintenance", json={"enabled": True, "reason": "migration"}, headers=OPS)
    assert enabled.json() == {"status": "applied", "maintenance": True, "updated_by": "ops"}
    refused = _writes(api)
    assert {name: response.status_code for name, response in refused.items()} == dict.fromkeys(refused, 503)
    assert all(r.json() == {"detail": "maintenance mode: writes are disabled"} for r in refused.values())
    assert api.get("/api/v1/config").status_code == 200
    assert api.get("/api/v1/system/maintenance").json() == {"maintenance": True}
    assert api.get("/api/v1/system/health/deep").json()["maintenance"] is True

    assert api.put("/api/v1/system/maintenance", json={"enabled": False}, headers=OPS).status_code == 200
    allowed = _writes(api)
    assert [response.status_code for response in allowed.values()] == [201, 201, 200]
    toggles = [
        (row["actor"], row["old_value"], row["new_value"])
        for row in api.get("/api/v1/config/history", params={"key": "system.maintenance_mode"}).json()["history"]
    ]
    assert toggles == [("ops", "true", "false"), ("ops", "false", "true")]


def test_maintenance_toggle_needs_an_actor(api: httpx.Client) -> None:
    assert api.put("/api/v1/system/maintenance", json={"enabled": True}).status_code == 401


def test_heartbeat_writes_rows_and_the_redis_key_then_stops(
    serve: Any, settings: Settings, database_url: str, redis_server: Any
) -> None:
    engine = create_engine(database_url)
    beats = text("SELECT count(*) FROM heartbeats")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.delete(REDIS_KEY)
    try:
        with serve(create_app(replace(settings, heartbeat_seconds=0.1))):
            deadline = time.monotonic() + 10
            with engine.connect() as connection:
                while connection.scalar(beats) < 3:
                    assert time.monotonic() < deadline, "fewer than 3 heartbeats in 10 s at a 0.1 s interval"
                    time.sleep(0.05)
        assert client.get(REDIS_KEY) is not None
        with engine.connect() as connection:
            after_shutdown = connection.scalar(beats)
            time.sleep(0.3)
            assert connection.scalar(beats) == after_shutdown
    finally:
        client.close()
        engine.dispose()


_BEAT_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO heartbeats%'"
)


def test_a_beat_in_flight_when_the_heartbeat_stops_ends_before_it_does(database_url: str, redis_server: Any) -> None:
    """The app closes its stores once the heartbeat has stopped: a beat still in flight then wrote after it."""
    engine = create_engine(database_url)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    writer = HeartbeatWriter(sessionmaker(engine), client, interval=0.1)

    async def stop_with_a_beat_in_flight() -> bool:
        with engine.connect() as locker, engine.connect() as observer:
            locker.execute(text("LOCK TABLE heartbeats IN ACCESS EXCLUSIVE MODE"))  # the first beat waits for it
            task = asyncio.create_task(writer.run())
            while not observer.execute(_BEAT_WAITING).scalar_one():  # a known state: the beat waits for the lock
                observer.commit()  # pg_stat_activity is a snapshot per transaction: take a new one next time
                await asyncio.sleep(0.02)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=0.5)  # it cannot end while its beat waits, however long
            locker.commit()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return bool(done)

    try:
        client.delete(REDIS_KEY)
        stopped_with_the_beat_waiting = asyncio.run(asyncio.wait_for(stop_with_a_beat_in_flight(), 60))
        with engine.connect() as connection:
            assert (stopped_with_the_beat_waiting, connection.scalar(text("SELECT count(*) FROM heartbeats"))) == (
                False,
                1,
            ), "the heartbeat stopped while its beat was still in flight"
        assert client.get(REDIS_KEY) is not None
    finally:
        client.close()
        engine.dispose()


def test_uvicorn_factory_serves_the_app_from_the_environment(settings: Settings, signing_seed: str) -> None:
    env = {
        **os.environ,
        "CODEBLACK_DATABASE_URL": settings.database_url,
        "CODEBLACK_REDIS_URL": settings.redis_url,
        "CODEBLACK_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "CODEBLACK_S3_REGION": settings.s3_region,
        "CODEBLACK_UPLOADS_BUCKET": settings.uploads_bucket,
        "AWS_ACCESS_KEY_ID": settings.aws_access_key_id or "",
        "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key or "",
        "CODEBLACK_SIGNING_KEY": signing_seed,
        "CODEBLACK_APPROVERS": "bob,carol",
    }
    command = [sys.executable, "-m", "uvicorn", "sandbox.codeblack.app:create_app", "--factory"]
    # uvicorn serves a socket this test holds, bound and listening before it starts: a port picked, closed and
    # bound again later could be taken meanwhile. The request waits in the socket's queue until uvicorn serves it.
    with socket.create_server(("127.0.0.1", 0)) as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/system/health/deep"
        process = subprocess.Popen([*command, "--fd", str(sock.fileno())], cwd=REPO, env=env,
                                   stderr=subprocess.PIPE, pass_fds=(sock.fileno(),))  # fmt: skip
        try:
            response = httpx.get(url, timeout=60)
        except httpx.TimeoutException:
            process.kill()
            pytest.fail(f"uvicorn did not answer within 60 s: {process.communicate()[1].decode()[-2000:]}")
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["components"]["database"]["revision"] == "b6e8dcb19a40"
