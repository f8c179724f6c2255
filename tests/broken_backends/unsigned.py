"""Broken backend: responses carry no signature headers at all."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.codeblack.app import create_app as create_sandbox_app
from sandbox.codeblack.settings import Settings
from sandbox.codeblack.signing import Signer


class HeaderlessSigner(Signer):
    def headers(self, body: bytes) -> dict[str, str]:
        return {}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    return create_sandbox_app(settings, signer=HeaderlessSigner(settings.signing_key or ""))
