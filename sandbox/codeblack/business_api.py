"""Business endpoints: the writes whose data a restore must bring back, and their counts.

They are deliberately plain; they exist so that the restored database is exercised by real traffic and so
that maintenance mode has ordinary writes to refuse.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from sandbox.codeblack.models import (
    Application,
    BlacklistEntry,
    ConfigChangeHistory,
    ConfigEntry,
    Heartbeat,
    Order,
)
from sandbox.codeblack.runtime import Actor, DbSession, require_writable

__all__ = ["ApplicationIn", "BlacklistIn", "OrderIn", "router"]

router = APIRouter(prefix="/api/v1", tags=["business"])
_WRITE = [Depends(require_writable)]
Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]


class ApplicationIn(BaseModel):
    """Body of ``POST /api/v1/applications``."""

    applicant_name: str = Field(min_length=1)
    email: str = Field(min_length=3)
    amount: Money


class OrderIn(BaseModel):
    """Body of ``POST /api/v1/orders``."""

    application_id: int
    amount: Money
    currency: str = Field(default="EUR", min_length=3, max_length=3)


class BlacklistIn(BaseModel):
    """Body of ``POST /api/v1/blacklist``."""

    kind: Literal["email", "phone", "device"]
    value: str = Field(min_length=1)
    reason: str | None = None


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@router.post("/applications", status_code=201, dependencies=_WRITE)
def create_application(body: ApplicationIn, actor: Actor, session: DbSession) -> dict[str, Any]:
    """Record a credit application."""
    application = Application(applicant_name=body.applicant_name, email=body.email, amount=body.amount)
    session.add(application)
    session.commit()
    return {
        "id": application.id,
        "applicant_name": application.applicant_name,
        "email": application.email,
        "status": application.status,
        "amount": str(application.amount),
        "created_at": _iso(application.created_at),
    }


@router.post("/orders", status_code=201, dependencies=_WRITE)
def create_order(body: OrderIn, actor: Actor, session: DbSession) -> dict[str, Any]:
    """Create a payout order, within the ``orders.max_amount`` limit the config API governs."""
    if session.get(Application, body.application_id) is None:
        raise HTTPException(status_code=404, detail=f"unknown application {body.application_id}")
    limit = session.scalar(select(ConfigEntry.value).where(ConfigEntry.key == "orders.max_amount"))
    if limit is not None and body.amount > Decimal(limit):
        raise HTTPException(status_code=422, detail=f"amount {body.amount} exceeds orders.max_amount {limit}")
    order = Order(application_id=body.application_id, amount=body.amount, currency=body.currency.upper())
    session.add(order)
    session.commit()
    return {
        "id": order.id,
        "application_id": order.application_id,
        "amount": str(order.amount),
        "currency": order.currency,
        "status": order.status,
        "created_at": _iso(order.created_at),
    }


@router.post("/blacklist", status_code=201, dependencies=_WRITE)
def create_blacklist_entry(body: BlacklistIn, actor: Actor, session: DbSession) -> dict[str, Any]:
    """Blacklist an identifier; 409 if it is already listed."""
    entry = BlacklistEntry(kind=body.kind, value=body.value, reason=body.reason)
    session.add(entry)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise HTTPException(status_code=409, detail=f"{body.kind} {body.value!r} is already blacklisted") from exc
    return {
        "id": entry.id,
        "kind": entry.kind,
        "value": entry.value,
        "reason": entry.reason,
        "created_at": _iso(entry.created_at),
    }


@router.get("/stats/counts")
def counts(session: DbSession) -> dict[str, int]:
    """Count the rows of the tables a restore is checked on."""
    tables = {
        "applications": Application,
        "orders": Order,
        "blacklist_entries": BlacklistEntry,
        "config_change_history": ConfigChangeHistory,
        "heartbeats": Heartbeat,
    }
    return {name: session.scalar(select(func.count()).select_from(model)) or 0 for name, model in tables.items()}
