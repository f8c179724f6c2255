"""Broken backend: config changes happen, but no config_change_history row is ever written."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session

from sandbox.codeblack.app import create_app as create_sandbox_app
from sandbox.codeblack.audit import Auditor
from sandbox.codeblack.settings import Settings


class ForgetfulAuditor(Auditor):
    def record(self, session: Session, **event: Any) -> None:
        return None


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_sandbox_app(settings or Settings.from_env(), auditor=ForgetfulAuditor())
