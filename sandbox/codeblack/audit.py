"""The audit trail of config changes: one ``config_change_history`` row per event.

Every proposal, approval, rejection, application and refusal is written in the same transaction as the change
it describes, so the trail cannot disagree with the data. The auditor blanks the values of sensitive keys
itself, as a second line of defence should a caller ever pass one in.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session

from sandbox.codeblack.models import ConfigChangeHistory

__all__ = ["Action", "Auditor"]

Action = Literal["proposed", "approved", "rejected", "applied", "refused"]


class Auditor:
    """Writes history rows; a collaborator so a broken backend can be built that forgets to."""

    def record(
        self,
        session: Session,
        *,
        action: Action,
        config_key: str,
        actor: str,
        status: str,
        sensitive: bool,
        change_id: int | None = None,
        old_value: str | None = None,
        new_value: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Add one history row to the caller's transaction.

        Args:
            session: The session whose transaction also carries the change.
            action: What happened.
            config_key: The key concerned.
            actor: Who did it (the ``X-Actor`` header).
            status: The state of the change (or of the request) after this event.
            sensitive: Whether the key is sensitive; if so, no value is written.
            change_id: The two-step proposal this event belongs to, if any.
            old_value: The value before the event.
            new_value: The value after (or proposed by) the event.
            reason: The actor's reason, or why the request was refused.
        """
        session.add(
            ConfigChangeHistory(
                change_id=change_id,
                config_key=config_key,
                action=action,
                actor=actor,
                old_value=None if sensitive else old_value,
                new_value=None if sensitive else new_value,
                status=status,
                reason=reason,
            )
        )
