"""Who may change which config key, and how: the rules of the plan's Change Safety Gates.

The rules live in one small class so that the self-tests can build a broken backend by overriding exactly
one decision (say, "critical keys need no approval") and prove the config gate notices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sandbox.codeblack.models import ConfigChange, ConfigEntry

__all__ = ["ConfigPolicy", "Decision"]


@dataclass(frozen=True)
class Decision:
    """The answer to "may this actor do this?", with the reason a refusal is reported and audited with."""

    allowed: bool
    reason: str = ""


class ConfigPolicy:
    """Decides which keys are sensitive, which need approval, and who may approve or reject a change."""

    def __init__(self, approvers: Iterable[str]) -> None:
        """Remember the actors allowed to decide on critical changes (``CODEBLACK_APPROVERS``)."""
        self.approvers = frozenset(approvers)

    def is_sensitive(self, entry: ConfigEntry) -> bool:
        """Sensitive keys live in the secret manager: the API never shows nor changes their value."""
        return entry.sensitive

    def requires_approval(self, entry: ConfigEntry) -> bool:
        """Critical keys take effect only after a second, different person approves the change."""
        return entry.critical

    def may_approve(self, actor: str, change: ConfigChange) -> Decision:
        """Allow an approval only by a listed approver who did not propose the change (four-eyes rule)."""
        if actor not in self.approvers:
            return Decision(False, f"{actor!r} is not an approver of critical config changes")
        if actor == change.proposed_by:
            return Decision(
                False, f"{actor!r} proposed change {change.id}; a second, different approver must approve it"
            )
        return Decision(True)

    def may_reject(self, actor: str, change: ConfigChange) -> Decision:
        """Allow any listed approver to reject, the proposer included: withdrawing a change is always safe."""
        if actor not in self.approvers:
            return Decision(False, f"{actor!r} is not an approver of critical config changes")
        return Decision(True)
