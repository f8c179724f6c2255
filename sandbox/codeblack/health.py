"""Deep health: can the app reach, and trust, each store it depends on?

The restore drill only cuts over when ``/api/v1/system/health/deep`` says every component is ok, so each
check asks the question that matters after a restore: is the database at the migration head the code
expects, does Redis persist with ``appendonly yes`` as the plan requires, does the uploads bucket exist.
Every check runs in a worker thread under its own deadline, so one dead store can neither hang the endpoint
nor hide the state of the others. Error texts are one line and scrubbed of every secret the app knows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import boto3
import redis
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import SQLAlchemyError

from sandbox.codeblack.revisions import head_revision
from sandbox.codeblack.settings import Settings

__all__ = ["Component", "HealthChecker", "one_line"]

Component = dict[str, Any]
"""A component's report: ``{"status": "ok", ...}`` or ``{"status": "down", "error": "...", ...}``."""


def one_line(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """Render an exception as one line naming its type, with every known secret replaced by ``***``."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    message = f"{type(cause).__name__}: {lines[0] if lines else 'no details'}"
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


def _down(error: str, **evidence: Any) -> Component:
    return {"status": "down", "error": error, **evidence}


class HealthChecker:
    """Checks the database, Redis and object storage; a collaborator so a broken backend can override one."""

    def __init__(self, settings: Settings, *, timeout: float = 3.0) -> None:
        """Prepare the checks; nothing connects until a check runs.

        Args:
            settings: Where the stores are.
            timeout: Deadline of each check, in seconds (the plan's drill waits on this endpoint).
        """
        self.settings = settings
        self.head = head_revision()
        self.timeout = timeout
        # One attempt with short timeouts: a probe must report a dead endpoint, not retry into a hang.
        self.s3 = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            config=BotoConfig(
                connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"}
            ),
        )
        self._secrets = settings.credentials()
        # A pool-less engine: every check opens a fresh connection, so a restarted or replaced database is
        # seen as it is now rather than through a stale pooled connection.
        self._engine = create_engine(
            settings.database_url,
            poolclass=pool.NullPool,
            connect_args={
                "connect_timeout": max(2, int(timeout)),
                "options": f"-c statement_timeout={int(timeout * 1000)}",
            },
        )

    def close(self) -> None:
        """Release the checker's engine."""
        self._engine.dispose()

    def database(self) -> Component:
        """Connect, run ``SELECT 1`` and compare ``alembic_version`` with the head of the scripts."""
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                if connection.execute(text("SELECT to_regclass('public.alembic_version')")).scalar() is None:
                    return _down(
                        f"table alembic_version is missing: the database is not migrated (head {self.head})",
                        revision=None,
                        head=self.head,
                    )
                rows = connection.execute(text("SELECT version_num FROM alembic_version"))
                revisions = rows.scalars().all()
        except SQLAlchemyError as exc:
            return _down(one_line(exc, self._secrets))
        revision = revisions[0] if len(revisions) == 1 else ",".join(sorted(revisions)) or None
        if revision != self.head:
            return _down(
                f"database revision {revision} does not match migration head {self.head}",
                revision=revision,
                head=self.head,
            )
        return {"status": "ok", "revision": revision, "head": self.head}

    def redis(self) -> Component:
        """PING Redis and require ``appendonly yes``, the durability the plan asks for."""
        client = redis.Redis.from_url(
            self.settings.redis_url,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            decode_responses=True,
        )
        try:
            client.ping()
            appendonly = client.config_get("appendonly").get("appendonly")
        except redis.RedisError as exc:
            return _down(one_line(exc, self._secrets))
        finally:
            client.close()
        if appendonly != "yes":
            return _down(f"appendonly is {appendonly!r}; the plan requires appendonly yes", appendonly=appendonly)
        return {"status": "ok", "appendonly": appendonly}

    def object_storage(self) -> Component:
        """Require the uploads bucket to exist and answer ``HeadBucket``."""
        bucket = self.settings.uploads_bucket
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            return _down(f"HeadBucket on {bucket!r} failed with {code}", bucket=bucket)
        except BotoCoreError as exc:
            return _down(one_line(exc, self._secrets), bucket=bucket)
        return {"status": "ok", "bucket": bucket}

    async def _bounded(self, name: str, check: Callable[[], Component]) -> Component:
        try:
            return await asyncio.wait_for(asyncio.to_thread(check), self.timeout + 0.5)
        except TimeoutError:
            return _down(f"{name} check gave no answer within {self.timeout:g} s")

    async def components(self) -> dict[str, Component]:
        """Run the three checks concurrently, each under its own deadline."""
        database, redis_, storage = await asyncio.gather(
            self._bounded("database", self.database),
            self._bounded("redis", self.redis),
            self._bounded("object storage", self.object_storage),
        )
        return {"database": database, "redis": redis_, "object_storage": storage}
