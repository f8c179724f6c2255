"""Broken backend: critical keys are applied at once, without a second approver."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.codeblack.app import create_app as create_sandbox_app
from sandbox.codeblack.models import ConfigEntry
from sandbox.codeblack.policy import ConfigPolicy
from sandbox.codeblack.settings import Settings


class NoApprovalPolicy(ConfigPolicy):
    def requires_approval(self, entry: ConfigEntry) -> bool:
        return False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    return create_sandbox_app(settings, policy=NoApprovalPolicy(settings.approvers))
