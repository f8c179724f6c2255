"""One registry of secret values, so every report writer can scrub them the same way.

Secrets are registered the moment they are read (from the environment or generated for the sandbox);
attachments, logs and drill records pass their text through :func:`redact` before it leaves the process.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["REDACTED", "RedactingFilter", "redact", "register_secret"]

REDACTED = "***"
_SECRETS: set[str] = set()
_LOCK = threading.Lock()


def register_secret(value: str) -> str:
    """Remember a secret value (at least 4 characters, so short words are not scrubbed everywhere)."""
    if len(value) >= 4:
        with _LOCK:
            _SECRETS.add(value)
    return value


def redact(text: str) -> str:
    """The text with every registered secret replaced by ``***`` (longest first, so nested ones go too)."""
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs registered secrets from every record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, redacted, and keep the record."""
        record.msg = redact(record.getMessage())
        record.args = None
        return True
