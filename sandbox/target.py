"""A world (or a broken variant of it) described as a real target: a ``drill.toml`` and the environment it names.

A drill against this file runs exactly as against a real deployment (``target.sandbox = false``): endpoints and
buckets from the file, credentials and the app's signing key from the environment variables it names. The
self-tests run broken worlds this way, and the benchmark runs the pre-deploy gate this way against a world
that is already up, as CI runs it against a production that already exists.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.config import PROFILE_KEYS
from harness.deployment import Deployment
from harness.services.base import RUN_ENV

__all__ = ["ENV", "drill_env", "toml_text", "write_drill_toml"]

ENV = {"access": "DRILL_TEST_S3_ACCESS_KEY", "secret": "DRILL_TEST_S3_SECRET_KEY"}
"""The environment variables the written ``drill.toml`` names for the storage credentials."""


def write_drill_toml(directory: Path, target: Deployment, **sections: Any) -> Path:
    """A ``drill.toml`` in ``directory`` for ``target``, with some keys of some sections replaced or added.

    The file carries the target's profile over (its tables, its app's command, endpoints and variables, its
    migrations), so that a drill of it reads the deployment as the world built it. Reports go to
    ``directory/reports``; the target is named after the deployment (a variant's name included).
    """
    config = target.config
    storage, migrations = config.storage, config.migrations
    settings = {"storage": {"endpoint_url": target.storage.url or "", "backup_bucket": storage.backup_bucket,
                            "uploads_bucket": storage.uploads_bucket, "access_key_env": ENV["access"],
                            "secret_key_env": ENV["secret"], "database_host": target.database_host,
                            "manifest_verify_key": storage.manifest_verify_key},
                "database": config.database.model_dump(include=set(PROFILE_KEYS["database"])),
                "app": config.app.model_dump(include=set(PROFILE_KEYS["app"])),
                "migrations": {"script_location": str(config.resolve_path(migrations.script_location)),
                               **config.migrations.model_dump(include=set(PROFILE_KEYS["migrations"]))},
                "reports": {"dir": str(directory / "reports")}}  # fmt: skip
    if "databases" in sections:  # a target of several databases lists them instead of [database]
        settings.pop("database")
    for name, values in sections.items():
        settings[name] = {**settings.get(name, {}), **values} if isinstance(values, Mapping) else values
    slug = re.sub(r"[^a-z0-9]+", "-", target.name.lower()).strip("-")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "drill.toml").write_text(toml_text({"target": {"name": slug, "sandbox": False}, **settings}))
    return directory / "drill.toml"


def toml_text(sections: Mapping[str, Any]) -> str:
    """A ``drill.toml``'s text: one table per section (a list: an array of tables), nested tables written inline."""
    return "\n".join(
        "\n".join(_table(f"[[{name}]]", entry) for entry in values)
        if isinstance(values, list)
        else _table(f"[{name}]", values)
        for name, values in sections.items()
    )


def _table(header: str, values: Mapping[str, Any]) -> str:
    return header + "\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in values.items())


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers and arrays are TOML too; tables are written inline."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {_toml(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def drill_env(target: Deployment, run: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The drill process's environment: its run id, the storage credentials and the app's secrets."""
    secrets = {name: secret.get_secret_value() for name, secret in target.app_secrets.items()}
    return {**os.environ, RUN_ENV: run, ENV["access"]: target.storage.access_key.get_secret_value(),
            ENV["secret"]: target.storage.secret_key.get_secret_value(), **secrets, **(overrides or {})}  # fmt: skip
