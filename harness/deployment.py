"""The deployment under test, resolved at run time: where its storage, Redis and app keys are.

For a real target every value comes from ``drill.toml`` and the environment variables it names. For the
sandbox the world builder makes the same object from the servers it started. Steps only ever see this,
so the same scenarios verify both.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from pydantic import SecretStr

from harness.config import DrillConfig
from harness.redact import register_secret
from harness.services.s3 import S3Endpoint
from harness.storage.signing import ManifestTrust

__all__ = ["Deployment"]


@dataclass(frozen=True)
class Deployment:
    """Where production lives. Nothing here is ever written to by the drill (read-only)."""

    name: str
    config: DrillConfig
    storage: S3Endpoint
    redis_url: str | None
    database_host: str
    verify_key: str
    app_secrets: dict[str, SecretStr] = field(default_factory=dict, repr=False)
    provider: str = "configured"

    @property
    def backup_bucket(self) -> str:
        """The bucket holding dumps, base backups and Redis copies.

        Raises:
            ConfigError: ``[storage] backup_bucket`` is not set.
        """
        return self.config.backup_bucket()

    @property
    def uploads_bucket(self) -> str:
        """The bucket holding uploaded proofs and images."""
        return self.config.storage.uploads_bucket

    def manifest_trust(self) -> ManifestTrust:
        """How manifests are read: size cap and, when ``[storage] manifest_verify_key`` is set, the key.

        Raises:
            ConfigError: the verify key is malformed.
        """
        return ManifestTrust.from_config(self.config)

    @classmethod
    def from_config(cls, config: DrillConfig, keys: Collection[str] | None = None) -> Deployment:
        """A real deployment: endpoints from the file, secrets from the environment it names.

        Args:
            config: the drill configuration.
            keys: the keys naming the secrets this run needs (:func:`harness.applicability.secret_keys`); the
                others are left empty and never read. ``None``: every secret the file names.

        Raises:
            ConfigError: a needed secret is not set.
        """

        def read(key: str) -> SecretStr:
            return _registered(config.secret(key)) if keys is None or key in keys else SecretStr("")

        storage = S3Endpoint(
            url=config.storage.endpoint_url or None,
            region=config.storage.region,
            access_key=read("storage.access_key_env"),
            secret_key=read("storage.secret_key_env"),
        )
        redis_url = read("redis.url_env").get_secret_value() or None if config.redis.url_env else None
        signs = config.app.enabled and config.app.signing_key_env
        app_secrets = {config.app.signing_key_env: read("app.signing_key_env")} if signs else {}
        return cls(
            name=config.target.name,
            config=config,
            storage=storage,
            redis_url=redis_url,
            database_host=config.storage.database_host,
            verify_key=config.app.verify_key,
            app_secrets=app_secrets,
        )


def _registered(secret: SecretStr) -> SecretStr:
    register_secret(secret.get_secret_value())
    return secret
