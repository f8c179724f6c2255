"""Broken backend: the signature headers are present but sign a different body than the one sent."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.codeblack.app import create_app as create_sandbox_app
from sandbox.codeblack.settings import Settings
from sandbox.codeblack.signing import Signer


class WrongBodySigner(Signer):
    def headers(self, body: bytes) -> dict[str, str]:
        return super().headers(body + b"\n")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    return create_sandbox_app(settings, signer=WrongBodySigner(settings.signing_key or ""))
