"""Checks a drill configuration must pass before anything starts: its secrets are set, staging is not production.

A drill that fails half-way through because a variable is unset has already spent minutes restoring; one
whose ``[app]`` settings hard-code production's database or Redis would start the restored app against
production and let the config gates write there. Both are decided from the file and the environment alone,
so they run once at start-up and fail with one line naming the file and the keys, before any server starts.
"""

from __future__ import annotations

import os
import re

import httpx

from harness.config import DrillConfig
from harness.errors import ConfigError

__all__ = ["check_preflight", "check_secrets_set", "check_staging_isolated"]

#: The keys of ``drill.toml`` that name a secret's environment variable (the sandbox generates its own).
SECRET_KEYS = ("storage.access_key_env", "storage.secret_key_env", "app.signing_key_env")


def check_secrets_set(config: DrillConfig) -> None:
    """Every secret a real target's drill will read is set now, not discovered missing mid-drill.

    Raises:
        ConfigError: names the file, the key and the unset variable.
    """
    if config.target.sandbox:
        return
    for key in (*SECRET_KEYS, *(("redis.url_env",) if config.redis.url_env else ())):
        config.secret(key)


def _production_endpoints(config: DrillConfig) -> list[str]:
    """Host names and ``host:port`` pairs of production that no staging setting may contain."""
    endpoints = [config.storage.database_host] if config.storage.database_host else []
    redis_url = os.environ.get(config.redis.url_env, "") if config.redis.url_env else ""
    if redis_url:
        url = httpx.URL(redis_url)
        endpoints.append(f"{url.host}:{url.port or 6379}")
    return endpoints


def _mentions(value: str, endpoint: str) -> bool:
    """Whether ``endpoint`` appears in ``value`` as a whole host (``db.internal`` is not in ``db.internal2``)."""
    return re.search(rf"(?<![\w.-]){re.escape(endpoint)}(?![\w.-])", value) is not None


def check_staging_isolated(config: DrillConfig) -> None:
    """Refuse ``[app]`` settings that point the staging app at production's database or Redis.

    The app started by the drill must reach only the throwaway copies (``{database_url}``, ``{redis_url}``);
    ``storage.database_host`` and the host:port of the URL in ``redis.url_env`` are production's endpoints.

    Raises:
        ConfigError: names the file, every offending key and the production endpoint it contains.
    """
    endpoints = _production_endpoints(config)
    settings = {f"env.{name}": value for name, value in config.app.env.items()}
    settings |= {f"command[{index}]": part for index, part in enumerate(config.app.command)}
    offending = [
        (key, endpoint) for key, value in settings.items() for endpoint in endpoints if _mentions(value, endpoint)
    ]
    if offending:
        found = ", ".join(f"{key} ({endpoint})" for key, endpoint in offending)
        raise ConfigError(
            f"{config.source}: [app] {found}: points the staging app at a production endpoint; use "
            "{database_url} and {redis_url}, which name the throwaway copies"
        )


def check_preflight(config: DrillConfig) -> None:
    """Both checks above, in the order an operator would fix them.

    Raises:
        ConfigError: the first problem found, in one line naming the file and the key.
    """
    check_secrets_set(config)
    check_staging_isolated(config)
