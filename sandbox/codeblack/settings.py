"""Settings of the backend, read from the environment in one place.

The drill harness starts the app against a restored staging copy and hands it every address through
environment variables, so the names below are a contract with the harness: change them only together.
Secrets (sensitive config values, AWS keys, the signing seed) come only from the environment, never from the
database, so that a restored dump never carries them and a dashboard can never change them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["SECRET_PREFIX", "Settings", "SettingsError", "secret_env_name"]

SECRET_PREFIX = "CODEBLACK_SECRET_"


class SettingsError(ValueError):
    """A required variable is missing or malformed; the message names it and says what it is for."""


def secret_env_name(key: str) -> str:
    """Name the variable that holds a sensitive config key's value.

    Args:
        key: A config key such as ``payments.api_secret``.

    Returns:
        The variable name, e.g. ``CODEBLACK_SECRET_PAYMENTS_API_SECRET``: dots and dashes become underscores
        because shells and secret managers do not accept them in names.
    """
    return SECRET_PREFIX + key.upper().replace(".", "_").replace("-", "_")


def _require(environ: Mapping[str, str], name: str, purpose: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set: it is {purpose}. Export it before starting the app.")
    return value


def _heartbeat_seconds(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError as exc:
        raise SettingsError(
            f"CODEBLACK_HEARTBEAT_SECONDS={raw!r} is not a number; use 0 to disable or a positive interval"
        ) from exc
    if seconds < 0:
        raise SettingsError(f"CODEBLACK_HEARTBEAT_SECONDS={raw!r} is negative; use 0 to disable")
    return seconds


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to reach its stores and to decide who may change what.

    Attributes:
        database_url: SQLAlchemy URL of PostgreSQL (``postgresql+psycopg://...``).
        redis_url: Redis URL (``redis://host:port/0``).
        s3_endpoint_url: Object storage endpoint; ``None`` means the AWS default endpoint.
        s3_region: Region of the uploads bucket.
        uploads_bucket: Bucket that holds uploaded proofs and images.
        aws_access_key_id: Optional explicit access key; ``None`` lets boto3 use its default chain.
        aws_secret_access_key: Optional explicit secret key, paired with ``aws_access_key_id``.
        signing_key: Base64 of the 32-byte Ed25519 seed that signs responses; ``None`` disables the config
            API.
        approvers: Actors allowed to approve critical changes.
        heartbeat_seconds: Interval of the heartbeat writer; 0 disables it.
        secrets: Values of sensitive config keys, by variable name (``CODEBLACK_SECRET_*``).
    """

    database_url: str
    redis_url: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    uploads_bucket: str = "codeblack-uploads"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    signing_key: str | None = field(default=None, repr=False)
    approvers: frozenset[str] = frozenset()
    heartbeat_seconds: float = 0.0
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from the environment (the harness's way of configuring the app).

        Args:
            environ: The variables to read; ``os.environ`` when omitted.

        Returns:
            The validated settings.

        Raises:
            SettingsError: A required variable is missing or a value is malformed.
        """
        env = os.environ if environ is None else environ
        approvers = frozenset(name.strip() for name in env.get("CODEBLACK_APPROVERS", "").split(",") if name.strip())
        return cls(
            database_url=_require(env, "CODEBLACK_DATABASE_URL", "the SQLAlchemy URL of PostgreSQL"),
            redis_url=_require(env, "CODEBLACK_REDIS_URL", "the URL of Redis"),
            s3_endpoint_url=env.get("CODEBLACK_S3_ENDPOINT_URL") or None,
            s3_region=env.get("CODEBLACK_S3_REGION") or "us-east-1",
            uploads_bucket=env.get("CODEBLACK_UPLOADS_BUCKET") or "codeblack-uploads",
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            signing_key=env.get("CODEBLACK_SIGNING_KEY") or None,
            approvers=approvers,
            heartbeat_seconds=_heartbeat_seconds(env.get("CODEBLACK_HEARTBEAT_SECONDS") or "0"),
            secrets={name: value for name, value in env.items() if name.startswith(SECRET_PREFIX)},
        )

    def secret_for(self, key: str) -> str | None:
        """Return the value of a sensitive key from the environment, or ``None`` when it is not configured."""
        return self.secrets.get(secret_env_name(key))

    def credentials(self) -> tuple[str, ...]:
        """List every secret string the app knows, so error messages can be scrubbed of them."""
        values = [self.aws_secret_access_key, self.signing_key, *self.secrets.values()]
        values += [_url_password(url) for url in (self.database_url, self.redis_url)]
        return tuple(value for value in values if value)


def _url_password(url: str) -> str | None:
    try:
        password = make_url(url).password
    except ArgumentError:
        return None
    return None if password is None else str(password)
