"""The pytest settings of an installed run, which a clone reads from its ``pyproject.toml``.

An installed drill runs from the user's directory, whose pytest configuration (if any) is the user's: it is
ignored, and these take its place. ``tests/test_package.py`` holds them equal to the clone's
``[tool.pytest.ini_options]``, so the two layouts tag, log and fail alike.
"""

from __future__ import annotations

__all__ = ["CLONE_OPTIONS", "INI", "MARKERS", "OPTIONS"]

#: The Gherkin tags of the features (``--strict-markers`` refuses any other).
MARKERS = {
    "monthly": "part of the monthly restore drill",
    "predeploy": "a pre-deploy gate CI runs before each deploy",
    "backup_policy": "the plan's Backup Strategy",
    "restore_drill": "the plan's Restore Procedure and Recovery Drills",
    "migration_gates": "the plan's Migration Workflow",
    "config_safety": "the plan's Change Safety Gates",
    "staging": "runs on the staging copy restored from the newest backup (restored ahead of the first scenario)",
    "app": "runs the target app against staging (it is launched ahead, as soon as staging is restored)",
    "each_database": "runs once per database of [[databases]] (one scenario each), on that database's own staging copy",
    "redis": "needs the target's Redis ([redis] enabled)",
    "base_backups": "needs the target's base backups ([storage] base_backups)",
    "uploads": "needs the target's uploads bucket ([storage] uploads_bucket)",
    "config_api": "needs the target app's config API ([app] config_api)",
    "migrations": "needs the target's Alembic migrations ([migrations] enabled)",
    "audit": "needs the target's audit table ([database] audit_table)",
    "off_server": "evidences off-server backup storage (not applicable to the sandbox, which runs on one machine)",
    "without_app": "only for a target without an app ([app] enabled = false): what an @app scenario does, less the app",
}

#: pyproject's ``addopts``.
OPTIONS = ("--strict-markers", "--strict-config", "-p", "no:cacheprovider")

#: What pyproject's ``addopts`` adds in a clone: ``fixtures.config`` declares ``--drill-config`` before pytest
#: parses the command line; until then a separate value (``--drill-config path/drill.toml``) reads as a path, and
#: pytest would load the ``conftest.py`` beside the target project's drill.toml into the drill. (Installed,
#: ``-p codeblack_drills.plugin`` declares it as early.)
CLONE_OPTIONS = ("-p", "fixtures.config")

#: The ini values the drill's output depends on (live progress log, strict xfail).
INI = {
    "xfail_strict": "true",
    "log_cli": "true",
    "log_cli_level": "INFO",
    "log_cli_format": "%(asctime)s %(levelname)-5s %(message)s",
    "log_cli_date_format": "%H:%M:%S",
}
