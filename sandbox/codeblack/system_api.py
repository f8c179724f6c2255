"""System endpoints: liveness, deep health, and the maintenance switch the deploy procedure uses.

The plan's deployment order puts the app in maintenance mode for writes before a destructive migration and
re-enables writes after ``health/deep`` passes; the switch is stored as the config entry
``system.maintenance_mode`` and audited like any other config change.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from sandbox.codeblack.config_api import apply_value
from sandbox.codeblack.models import ConfigEntry
from sandbox.codeblack.runtime import Actor, DbSession, Services, Svc, maintenance_enabled
from sandbox.codeblack.seed import MAINTENANCE_KEY

__all__ = ["MaintenanceSwitch", "router"]

router = APIRouter(prefix="/api/v1/system", tags=["system"])


class MaintenanceSwitch(BaseModel):
    """Body of ``PUT /api/v1/system/maintenance``."""

    enabled: bool
    reason: str | None = None


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness only: the process answers. Readiness is ``health/deep``."""
    return {"status": "ok"}


def _read_maintenance(services: Services) -> bool:
    with services.sessions() as session:
        return maintenance_enabled(session)


@router.get("/health/deep")
async def deep_health(services: Svc) -> JSONResponse:
    """Check every store; 200 only when all are ok, else 503 naming each component that is down."""
    components = await services.health.components()
    maintenance: bool | None = None
    if components["database"]["status"] == "ok":
        try:
            maintenance = await asyncio.wait_for(
                asyncio.to_thread(_read_maintenance, services), services.health.timeout
            )
        except (SQLAlchemyError, TimeoutError):
            maintenance = None  # the flag is evidence only; the database check has already judged health
    healthy = all(component["status"] == "ok" for component in components.values())
    body: dict[str, Any] = {
        "status": "ok" if healthy else "unhealthy",
        "components": components,
        "maintenance": maintenance,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/maintenance")
def get_maintenance(session: DbSession) -> dict[str, bool]:
    """Tell whether writes are currently refused."""
    return {"maintenance": maintenance_enabled(session)}


@router.put("/maintenance")
def put_maintenance(switch: MaintenanceSwitch, actor: Actor, services: Svc, session: DbSession) -> JSONResponse:
    """Turn maintenance mode on or off; the only write that works while it is on."""
    entry = session.scalar(select(ConfigEntry).where(ConfigEntry.key == MAINTENANCE_KEY).with_for_update())
    if entry is None:
        return JSONResponse(
            {"detail": f"config entry {MAINTENANCE_KEY!r} is missing: run the migrations to head"},
            status_code=409,
        )
    value = "true" if switch.enabled else "false"
    apply_value(services, session, entry, value, actor=actor, reason=switch.reason)
    session.commit()
    return JSONResponse({"status": "applied", "maintenance": switch.enabled, "updated_by": actor})
