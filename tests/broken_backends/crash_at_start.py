"""Broken backend: the app crashes while starting, after printing its settings (as many real apps do on a crash).

The printed settings hold the secrets the drill handed the app (storage keys, the signing key) and are the last
lines of its log, so the drill's report of the crash quotes them: it must quote them scrubbed.
"""

from __future__ import annotations

import os
import sys

from fastapi import FastAPI

_PRINTED = ("CODEBLACK_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CODEBLACK_SIGNING_KEY")


def create_app() -> FastAPI:
    print("fatal: cannot load the payment provider's certificate /etc/codeblack/psp.pem", file=sys.stderr)
    settings = ", ".join(f"{name}={os.environ.get(name, '')}" for name in _PRINTED)
    print(f"settings at crash: {settings}", file=sys.stderr, flush=True)
    raise SystemExit(3)  # not an Exception: uvicorn lets it end the process with this code
