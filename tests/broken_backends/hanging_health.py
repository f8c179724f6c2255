"""Broken backend: it starts and listens, but health/deep never answers (a check blocked on a dead dependency)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from sandbox.codeblack.app import create_app as create_sandbox_app
from sandbox.codeblack.health import Component, HealthChecker
from sandbox.codeblack.settings import Settings


class HangingChecker(HealthChecker):
    async def components(self) -> dict[str, Component]:
        await asyncio.Event().wait()  # never set: the request hangs until the client gives up
        raise AssertionError("unreachable")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    return create_sandbox_app(settings, health=HangingChecker(settings))
