"""Broken backend: sensitive keys are treated as ordinary ones, so the API stores and shows secrets."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.codeblack.app import create_app as create_sandbox_app
from sandbox.codeblack.models import ConfigEntry
from sandbox.codeblack.policy import ConfigPolicy
from sandbox.codeblack.settings import Settings


class SecretsAcceptedPolicy(ConfigPolicy):
    def is_sensitive(self, entry: ConfigEntry) -> bool:
        return False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    return create_sandbox_app(settings, policy=SecretsAcceptedPolicy(settings.approvers))
