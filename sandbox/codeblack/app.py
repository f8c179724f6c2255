"""Application factory of the CodeBlack backend.

There is no module-level app: the settings come from the environment the harness prepares, so the app is
built when uvicorn calls the factory::

    python -m uvicorn sandbox.codeblack.app:create_app --factory --host 127.0.0.1 --port 8000

Each rule of the config API is a collaborator (``policy``, ``signer``, ``auditor``, ``health``) that a caller
may replace; the broken backends under ``tests/broken_backends`` override exactly one each to prove the gates
catch the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis
from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from sandbox.codeblack import business_api, config_api, system_api
from sandbox.codeblack.audit import Auditor
from sandbox.codeblack.health import HealthChecker
from sandbox.codeblack.heartbeat import HeartbeatWriter
from sandbox.codeblack.policy import ConfigPolicy
from sandbox.codeblack.runtime import Services
from sandbox.codeblack.settings import Settings
from sandbox.codeblack.signing import Signer, SigningMiddleware

__all__ = ["create_app"]

_TIMEOUT_SECONDS = 3


def _services(
    settings: Settings,
    policy: ConfigPolicy | None,
    signer: Signer | None,
    auditor: Auditor | None,
    health: HealthChecker | None,
) -> Services:
    engine = create_engine(
        settings.database_url, pool_pre_ping=True, connect_args={"connect_timeout": _TIMEOUT_SECONDS}
    )
    if signer is None and settings.signing_key is not None:
        signer = Signer(settings.signing_key)
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        redis=redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=_TIMEOUT_SECONDS,
            socket_timeout=_TIMEOUT_SECONDS,
            decode_responses=True,
        ),
        policy=policy or ConfigPolicy(settings.approvers),
        signer=signer,
        auditor=auditor or Auditor(),
        health=health or HealthChecker(settings, timeout=_TIMEOUT_SECONDS),
    )


def create_app(
    settings: Settings | None = None,
    *,
    policy: ConfigPolicy | None = None,
    signer: Signer | None = None,
    auditor: Auditor | None = None,
    health: HealthChecker | None = None,
) -> FastAPI:
    """Build the backend; nothing connects until the first request or the heartbeat.

    Args:
        settings: The configuration; read from the environment when omitted (the uvicorn ``--factory`` path).
        policy: Decides sensitive / critical / who may approve; defaults to ``ConfigPolicy(approvers)``.
        signer: Signs response bodies; defaults to one built from ``CODEBLACK_SIGNING_KEY``. Without either,
            responses are unsigned and the config API answers 503.
        auditor: Writes ``config_change_history`` rows; defaults to :class:`Auditor`.
        health: Runs the deep health checks; defaults to :class:`HealthChecker`.

    Returns:
        The FastAPI application.
    """
    settings = settings or Settings.from_env()
    services = _services(settings, policy, signer, auditor, health)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        beating: asyncio.Task[None] | None = None
        if settings.heartbeat_seconds > 0:
            writer = HeartbeatWriter(services.sessions, services.redis, settings.heartbeat_seconds)
            beating = asyncio.create_task(writer.run(), name="codeblack-heartbeat")
        try:
            yield
        finally:
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            services.health.close()
            services.redis.close()
            services.engine.dispose()

    app = FastAPI(title="CodeBlack", version="1.0", lifespan=lifespan)
    app.state.services = services
    app.include_router(system_api.router)
    app.include_router(config_api.router)
    app.include_router(business_api.router)
    if services.signer is not None:
        app.add_middleware(SigningMiddleware, signer=services.signer)
    return app
