"""Broken backend: health/deep always answers 503 with the database reported down."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.codeblack.app import create_app as create_sandbox_app
from sandbox.codeblack.health import Component, HealthChecker
from sandbox.codeblack.settings import Settings


class DatabaseDownChecker(HealthChecker):
    def database(self) -> Component:
        return {"status": "down", "error": "OperationalError: connection refused (broken backend)"}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    return create_sandbox_app(settings, health=DatabaseDownChecker(settings))
