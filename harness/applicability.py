"""What a target has, and which scenarios therefore apply to it and which secrets its drill needs.

A target always has PostgreSQL and its logical dumps. Everything else is optional and declared in
``drill.toml``, each in the section that configures it:

========================  ===============================  ==========================================
part (scenario tag)       declared absent by               what does not apply then
========================  ===============================  ==========================================
``redis``                 ``[redis] enabled = false``      Redis persistence, RDB copies, Redis restore
``app``                   ``[app] enabled = false``        the app on staging, deep health, config gates
``config_api``            ``[app] config_api = false``     the config gates
``migrations``            ``[migrations] enabled = false`` every migration gate
``base_backups``          ``[storage] base_backups = false``  daily/weekly base backups, physical restore
``uploads``               ``[storage] uploads_bucket = ""``   the uploads bucket's versioning and canary
``audit``                 ``[database] audit_table = ""``  the audit rows of the last 24 hours
========================  ===============================  ==========================================

A scenario tagged with a part the target lacks is *not applicable*: it is reported with the reason
:func:`not_applicable` gives, never run, never failed, and the secrets only it would read are not asked for
(:func:`secret_keys`). The reverse, a scenario tagged ``without_app``, applies only to a target without an app: it
stands in for the ``@app`` one (the deploy rehearsal is then the upgrade of the restored copy alone).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from harness.config import DrillConfig

__all__ = ["NOT_APPLICABLE", "PARTS", "WITHOUT_APP", "Part", "not_applicable", "secret_keys", "staging_server_keys"]

NOT_APPLICABLE = "not applicable: "
"""How a not-applicable reason begins (the record and the report tell such a skip from any other by it)."""


@dataclass(frozen=True)
class Part:
    """An optional part of a target: the scenario tag that needs it, what it is, and how the file says it is absent."""

    tag: str
    what: str
    absent_when: str
    present: Callable[[DrillConfig], bool]


PARTS = (
    Part("app", "no application", "[app] enabled = false", lambda c: c.app.enabled),
    Part("config_api", "no config API", "[app] config_api = false", lambda c: c.app.config_api),
    Part("redis", "no Redis", "[redis] enabled = false", lambda c: c.redis.enabled),
    Part("migrations", "no Alembic migrations", "[migrations] enabled = false", lambda c: c.migrations.enabled),
    Part("base_backups", "no base backups", "[storage] base_backups = false", lambda c: c.storage.base_backups),
    Part("uploads", "no uploads bucket", '[storage] uploads_bucket = ""', lambda c: bool(c.storage.uploads_bucket)),
    Part("audit", "no audit table", '[database] audit_table = ""', lambda c: bool(c.database.audit_table)),
    Part(
        "off_server",
        "its storage and database on this one machine, a rehearsal that cannot evidence off-server storage",
        "[target] sandbox = true",
        lambda c: not c.target.sandbox,
    ),
)
"""Checked in this order, so a config gate of a target without an app names the missing app."""


def not_applicable(config: DrillConfig, tags: Collection[str]) -> str | None:
    """Why a scenario with these tags does not apply to the target (``not applicable: …``), or ``None``.

    A gates-only target (:attr:`DrillConfig.gates_only`) has no backups and no app: only the migration gates
    that need no app apply to it.
    """
    if config.gates_only and ("migration_gates" not in tags or "app" in tags or WITHOUT_APP in tags):
        return f"{NOT_APPLICABLE}{config.source} declares only [migrations] (no backups in [storage], no [app])"
    if WITHOUT_APP in tags and config.app.enabled:
        return f"{NOT_APPLICABLE}the target has an app, so the deploy is rehearsed with it (scenario tagged @app)"
    for part in PARTS:
        if part.tag in tags and not part.present(config):
            absent = part.absent_when
            if config.multiple_databases:  # the entry of the database judged (a view: :meth:`for_database`)
                absent = absent.replace("[database]", f"[[databases]] {config.database.name}")
            return f"{NOT_APPLICABLE}the target has {part.what} ({absent} in {config.source.name})"
    return None


WITHOUT_APP = "without_app"
"""The tag of a scenario that stands in for an ``@app`` one when the target has no app (the rehearsal without it)."""


def staging_server_keys(config: DrillConfig) -> list[str]:
    """The keys naming the secrets of an existing staging server: its admin DSN, and production's when configured."""
    return ["staging.admin_dsn_env", *(["staging.production_dsn_env"] if config.staging.production_dsn_env else [])]


_STORAGE_AREAS = frozenset({"backup_policy", "restore_drill", "staging"})
_STORAGE_KEYS = ("storage.access_key_env", "storage.secret_key_env")


def secret_keys(config: DrillConfig, selected: Iterable[Collection[str]]) -> list[str]:
    """The ``drill.toml`` keys naming the secrets that the selected, applicable scenarios need.

    Args:
        config: the drill configuration.
        selected: the tags of each scenario that will run (not deselected, not inapplicable).

    Object storage's keys are needed by anything that reads backups (the backup policy, the restore drill,
    staging); the app's signing key only where the app runs and the file names one; production Redis's URL
    only where the backup policy reads the live Redis.
    """
    keys: list[str] = []
    for tags in selected:
        if _STORAGE_AREAS & set(tags):
            keys += _STORAGE_KEYS
        if "app" in tags and config.app.signing_key_env:
            keys.append("app.signing_key_env")
        if "redis" in tags and "backup_policy" in tags and config.redis.url_env:
            keys.append("redis.url_env")
        if config.staging.provider == "server" and {"staging", "app"} & set(tags):
            keys += staging_server_keys(config)
    return list(dict.fromkeys(keys))
