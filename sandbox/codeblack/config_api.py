"""The config API: read settings, change them under the plan's Change Safety Gates.

Non-critical keys change at once; critical keys become a pending proposal that a second, different approver
must approve; sensitive keys are refused because their values live only in the secret manager. Every outcome,
refusals included, writes ``config_change_history`` rows in the same transaction, and every answer is signed
by the app's signing middleware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from sandbox.codeblack.models import ConfigChange, ConfigChangeHistory, ConfigEntry
from sandbox.codeblack.runtime import Actor, DbSession, Services, Svc, require_signer, require_writable
from sandbox.codeblack.settings import secret_env_name

__all__ = ["ConfigUpdate", "apply_value", "router"]

router = APIRouter(prefix="/api/v1/config", tags=["config"], dependencies=[Depends(require_signer)])
_WRITE = [Depends(require_writable)]


class ConfigUpdate(BaseModel):
    """Body of ``PUT /api/v1/config/{key}``."""

    value: str
    reason: str | None = None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _entry_json(services: Services, entry: ConfigEntry) -> dict[str, Any]:
    sensitive = services.policy.is_sensitive(entry)
    return {
        "key": entry.key,
        "value": None if sensitive else entry.value,
        "critical": entry.critical,
        "sensitive": sensitive,
        "configured": services.settings.secret_for(entry.key) is not None if sensitive else entry.value is not None,
        "description": entry.description,
        "updated_at": _iso(entry.updated_at),
        "updated_by": entry.updated_by,
    }


def _change_json(change: ConfigChange) -> dict[str, Any]:
    return {
        "change_id": change.id,
        "key": change.config_key,
        "new_value": change.new_value,
        "reason": change.reason,
        "proposed_by": change.proposed_by,
        "status": change.status,
        "created_at": _iso(change.created_at),
        "decided_at": _iso(change.decided_at),
        "decided_by": change.decided_by,
    }


def _history_json(row: ConfigChangeHistory) -> dict[str, Any]:
    return {
        "id": row.id,
        "change_id": row.change_id,
        "key": row.config_key,
        "action": row.action,
        "actor": row.actor,
        "old_value": row.old_value,
        "new_value": row.new_value,
        "status": row.status,
        "reason": row.reason,
        "created_at": _iso(row.created_at),
    }


def _entry_or_404(session: Session, key: str, *, lock: bool = False) -> ConfigEntry:
    query = select(ConfigEntry).where(ConfigEntry.key == key)
    entry = session.scalar(query.with_for_update() if lock else query)
    if entry is None:
        raise HTTPException(status_code=404, detail=f"unknown config key {key!r}")
    return entry


def apply_value(
    services: Services,
    session: Session,
    entry: ConfigEntry,
    value: str | None,
    *,
    actor: str,
    reason: str | None,
    change_id: int | None = None,
) -> str | None:
    """Set an entry's value and audit it as ``applied``; the caller commits.

    Returns:
        The previous value, for the response.
    """
    old_value = entry.value
    entry.value = value
    entry.updated_at = datetime.now(UTC)
    entry.updated_by = actor
    services.auditor.record(
        session,
        action="applied",
        config_key=entry.key,
        actor=actor,
        status="applied",
        sensitive=services.policy.is_sensitive(entry),
        change_id=change_id,
        old_value=old_value,
        new_value=value,
        reason=reason,
    )
    return old_value


@router.get("")
def list_entries(services: Svc, session: DbSession) -> dict[str, Any]:
    """List every entry with its flags; sensitive values are never shown."""
    entries = session.scalars(select(ConfigEntry).order_by(ConfigEntry.key))
    return {"entries": [_entry_json(services, entry) for entry in entries]}


@router.get("/changes")
def list_changes(
    session: DbSession,
    status: Literal["pending", "approved", "rejected", "applied"] | None = None,
) -> dict[str, Any]:
    """List two-step proposals, optionally only those in one status (``?status=pending``)."""
    query = select(ConfigChange).order_by(ConfigChange.id)
    if status is not None:
        query = query.where(ConfigChange.status == status)
    return {"changes": [_change_json(change) for change in session.scalars(query)]}


@router.get("/history")
def list_history(
    session: DbSession,
    key: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Show the audit trail, newest first, optionally for one key."""
    query = select(ConfigChangeHistory).order_by(ConfigChangeHistory.id.desc()).limit(limit)
    if key is not None:
        query = query.where(ConfigChangeHistory.config_key == key)
    return {"history": [_history_json(row) for row in session.scalars(query)]}


@router.get("/{key}")
def get_entry(key: str, services: Svc, session: DbSession) -> dict[str, Any]:
    """Show one entry; 404 for an unknown key."""
    return _entry_json(services, _entry_or_404(session, key))


@router.put("/{key}", dependencies=_WRITE)
def put_entry(key: str, update: ConfigUpdate, actor: Actor, services: Svc, session: DbSession) -> JSONResponse:
    """Change a key: applied (200), pending approval (202) or refused because it is sensitive (403)."""
    entry = _entry_or_404(session, key, lock=True)
    policy, auditor = services.policy, services.auditor
    if policy.is_sensitive(entry):
        refusal = (
            f"sensitive key {key!r} must be changed in the secret manager ({secret_env_name(key)}), not through the API"
        )
        auditor.record(
            session,
            action="refused",
            config_key=key,
            actor=actor,
            status="refused",
            sensitive=True,
            reason=refusal,
        )
        session.commit()
        return JSONResponse({"status": "refused", "key": key, "reason": refusal}, status_code=403)
    if policy.requires_approval(entry):
        change = ConfigChange(config_key=key, new_value=update.value, reason=update.reason, proposed_by=actor)
        session.add(change)
        session.flush()
        auditor.record(
            session,
            action="proposed",
            config_key=key,
            actor=actor,
            status="pending",
            sensitive=False,
            change_id=change.id,
            old_value=entry.value,
            new_value=update.value,
            reason=update.reason,
        )
        session.commit()
        body = {"status": "pending", "change_id": change.id, "key": key, "new_value": update.value}
        return JSONResponse({**body, "proposed_by": actor}, status_code=202)
    old_value = apply_value(services, session, entry, update.value, actor=actor, reason=update.reason)
    session.commit()
    return JSONResponse(
        {"status": "applied", "key": key, "value": update.value, "old_value": old_value, "updated_by": actor}
    )


def _pending_change_or_error(session: Session, change_id: int) -> ConfigChange:
    change = session.scalar(select(ConfigChange).where(ConfigChange.id == change_id).with_for_update())
    if change is None:
        raise HTTPException(status_code=404, detail=f"unknown config change {change_id}")
    if change.status != "pending":
        raise HTTPException(status_code=409, detail=f"config change {change_id} is {change.status}, not pending")
    return change


def _refuse_decision(
    services: Services, session: Session, change: ConfigChange, actor: str, reason: str
) -> JSONResponse:
    services.auditor.record(
        session,
        action="refused",
        config_key=change.config_key,
        actor=actor,
        status=change.status,
        sensitive=False,
        change_id=change.id,
        new_value=change.new_value,
        reason=reason,
    )
    session.commit()
    return JSONResponse({"status": "refused", "change_id": change.id, "reason": reason}, status_code=403)


@router.post("/changes/{change_id}/approve", dependencies=_WRITE)
def approve_change(change_id: int, actor: Actor, services: Svc, session: DbSession) -> JSONResponse:
    """Approve and apply a pending change, if the actor is an approver other than the proposer."""
    change = _pending_change_or_error(session, change_id)
    decision = services.policy.may_approve(actor, change)
    if not decision.allowed:
        return _refuse_decision(services, session, change, actor, decision.reason)
    entry = _entry_or_404(session, change.config_key, lock=True)
    change.status, change.decided_by, change.decided_at = "approved", actor, datetime.now(UTC)
    services.auditor.record(
        session,
        action="approved",
        config_key=change.config_key,
        actor=actor,
        status="approved",
        sensitive=services.policy.is_sensitive(entry),
        change_id=change.id,
        old_value=entry.value,
        new_value=change.new_value,
        reason=change.reason,
    )
    old_value = apply_value(
        services, session, entry, change.new_value, actor=actor, reason=change.reason, change_id=change.id
    )
    change.status = "applied"
    session.commit()
    return JSONResponse(
        {
            "status": "applied",
            "change_id": change.id,
            "key": change.config_key,
            "value": change.new_value,
            "old_value": old_value,
            "proposed_by": change.proposed_by,
            "approved_by": actor,
        }
    )


@router.post("/changes/{change_id}/reject", dependencies=_WRITE)
def reject_change(change_id: int, actor: Actor, services: Svc, session: DbSession) -> JSONResponse:
    """Reject a pending change; the value stays as it is."""
    change = _pending_change_or_error(session, change_id)
    decision = services.policy.may_reject(actor, change)
    if not decision.allowed:
        return _refuse_decision(services, session, change, actor, decision.reason)
    change.status, change.decided_by, change.decided_at = "rejected", actor, datetime.now(UTC)
    services.auditor.record(
        session,
        action="rejected",
        config_key=change.config_key,
        actor=actor,
        status="rejected",
        sensitive=False,
        change_id=change.id,
        new_value=change.new_value,
        reason=change.reason,
    )
    session.commit()
    return JSONResponse({"status": "rejected", "change_id": change.id, "key": change.config_key, "rejected_by": actor})
