"""Broken backend: a proposer may approve their own critical change (no four-eyes rule)."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.codeblack.app import create_app as create_sandbox_app
from sandbox.codeblack.models import ConfigChange
from sandbox.codeblack.policy import ConfigPolicy, Decision
from sandbox.codeblack.settings import Settings


class SelfApprovalPolicy(ConfigPolicy):
    def may_approve(self, actor: str, change: ConfigChange) -> Decision:
        if actor not in self.approvers:
            return Decision(False, f"{actor!r} is not an approver of critical config changes")
        return Decision(True)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    return create_sandbox_app(settings, policy=SelfApprovalPolicy(settings.approvers))
