"""The heartbeat writer: a steady trickle of fresh rows and a Redis key, for measuring what a backup lost.

When ``CODEBLACK_HEARTBEAT_SECONDS`` is positive the app writes a ``heartbeats`` row and sets
``codeblack:heartbeat`` to the current UTC time every interval. The newest beat in a restored database (or
Redis) shows how recent its data is, which is the drill's RPO evidence. A failed beat is logged and retried
at the next tick: a store outage must not kill the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime

import redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from sandbox.codeblack.models import Heartbeat

__all__ = ["REDIS_KEY", "HeartbeatWriter"]

REDIS_KEY = "codeblack:heartbeat"
log = logging.getLogger(__name__)


class HeartbeatWriter:
    """Writes one beat per interval until cancelled."""

    def __init__(
        self, sessions: sessionmaker[Session], client: redis.Redis, interval: float, source: str | None = None
    ) -> None:
        """Prepare the writer.

        Args:
            sessions: Where to write ``heartbeats`` rows.
            client: Where to set ``codeblack:heartbeat``.
            interval: Seconds between beats; must be positive.
            source: Name written in each row; defaults to ``<hostname>:<pid>`` so concurrent apps differ.
        """
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be positive, not {interval}")
        self.sessions = sessions
        self.client = client
        self.interval = interval
        self.source = source or f"{socket.gethostname()}:{os.getpid()}"

    def beat(self) -> datetime:
        """Write one beat to PostgreSQL and Redis, and return its time."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            session.add(Heartbeat(source=self.source, beat_at=now))
        self.client.set(REDIS_KEY, now.isoformat())
        return now

    async def run(self) -> None:
        """Beat every interval until the task is cancelled (at app shutdown).

        A beat in flight when the task is cancelled is waited for: its thread cannot be stopped, and it would
        otherwise write after the app has stopped, through the engine and Redis client the app is closing.
        """
        while True:
            beat = asyncio.ensure_future(asyncio.to_thread(self.beat))
            try:
                await asyncio.shield(beat)
            except asyncio.CancelledError:
                with contextlib.suppress(SQLAlchemyError, redis.RedisError):
                    await beat
                raise
            except (SQLAlchemyError, redis.RedisError) as exc:
                log.warning("heartbeat failed, retrying in %g s: %s", self.interval, exc)
            await asyncio.sleep(self.interval)
