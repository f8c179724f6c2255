"""What a request handler needs at run time, and the request-level rules every write obeys.

``create_app`` builds one :class:`Services` and stores it on ``app.state``; handlers reach it through
FastAPI dependencies, so the collaborators a broken backend overrides are the ones every route uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from sandbox.codeblack.audit import Auditor
from sandbox.codeblack.health import HealthChecker
from sandbox.codeblack.models import ConfigEntry
from sandbox.codeblack.policy import ConfigPolicy
from sandbox.codeblack.seed import MAINTENANCE_KEY
from sandbox.codeblack.settings import Settings
from sandbox.codeblack.signing import Signer

__all__ = [
    "MAINTENANCE_DETAIL",
    "Actor",
    "DbSession",
    "Services",
    "Svc",
    "maintenance_enabled",
    "require_signer",
    "require_writable",
]

MAINTENANCE_DETAIL = "maintenance mode: writes are disabled"


@dataclass
class Services:
    """The app's collaborators and connections, built once per app."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    policy: ConfigPolicy
    signer: Signer | None
    auditor: Auditor
    health: HealthChecker


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Svc = Annotated[Services, Depends(_services)]


def _session(services: Svc) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(_session)]


def _actor(x_actor: Annotated[str | None, Header()] = None) -> str:
    if x_actor is None or not x_actor.strip():
        raise HTTPException(status_code=401, detail="X-Actor header is required for writes")
    return x_actor.strip()


Actor = Annotated[str, Depends(_actor)]
"""The acting user of a write, from the ``X-Actor`` header; missing means 401."""


def maintenance_enabled(session: Session) -> bool:
    """Read the maintenance flag, stored as a config entry so it survives restarts and restores."""
    value = session.scalar(select(ConfigEntry.value).where(ConfigEntry.key == MAINTENANCE_KEY))
    return value == "true"


def require_writable(session: DbSession) -> None:
    """Refuse writes with 503 while maintenance mode is on (the plan's deploy step for risky migrations)."""
    if maintenance_enabled(session):
        raise HTTPException(status_code=503, detail=MAINTENANCE_DETAIL)


def require_signer(services: Svc) -> None:
    """Refuse the config API when no signing key is set: its answers must be signed or not given at all."""
    if services.signer is None:
        raise HTTPException(
            status_code=503, detail="config API disabled: CODEBLACK_SIGNING_KEY is not set on the server"
        )
