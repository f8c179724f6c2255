"""What the policy checks read from the deployment: its backup catalogues and the objectives a scenario states.

A scenario's sentence carries the plan's number ("at most 6 hours old") so the auditor reads what was
checked; the number actually used comes from ``drill.toml``. :func:`stated_objective` makes the two agree:
if the configuration differs from the sentence the scenario stops with a one-line configuration error
naming both, rather than checking one number while the report shows another.
"""

from __future__ import annotations

from typing import Literal

from harness.backup.base import BASE_ARCHIVE
from harness.deployment import Deployment
from harness.errors import ConfigError
from harness.storage.catalogue import Catalogue, list_configured

__all__ = ["BackupKind", "catalogue_of", "stated_objective"]

BackupKind = Literal["logical", "daily", "weekly", "redis"]


def catalogue_of(deployment: Deployment, kind: BackupKind, database: str = "") -> Catalogue:
    """The deployment's backups of one kind, listed from its backup bucket (read-only).

    ``database`` names a ``[[databases]]`` entry: its logical dumps are those under its own prefix.

    Raises:
        HarnessError: nothing under the prefix, unparseable keys, or storage refused the listing.
        CheckFailed: a key is dated in the future (beyond ``storage.max_clock_skew_s``) or cannot name a file.
    """
    storage = deployment.config.for_database(database).storage
    prefix, suffix = {
        "logical": (storage.logical_prefix, ""),
        "daily": (storage.base_daily_prefix, BASE_ARCHIVE),
        "weekly": (storage.base_weekly_prefix, BASE_ARCHIVE),
        "redis": (storage.redis_prefix, ""),
    }[kind]
    return list_configured(deployment.storage.client(), deployment.backup_bucket, prefix, storage, suffix=suffix)


def stated_objective(deployment: Deployment, name: str, stated: float) -> float:
    """The objective ``name`` from ``drill.toml``, which must equal the number the scenario states.

    Raises:
        ConfigError: the configuration's value differs from the scenario's sentence.
    """
    configured = float(getattr(deployment.config.objectives, name))
    if configured != stated:
        raise ConfigError(
            f"{deployment.config.source}: objectives.{name} is {configured:g} but the scenario states {stated:g}; "
            "make the feature's sentence and drill.toml agree so the report shows the number that was checked"
        )
    return configured
