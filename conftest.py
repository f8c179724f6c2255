"""Registers the suite's fixtures and steps as plugins (keeps assertion rewriting; no star imports)."""

pytest_plugins = [
    "fixtures.config",
    "fixtures.failures",
    "fixtures.services",
    "fixtures.world",
    "fixtures.app",
    "fixtures.staging",
    "fixtures.drill_record",
    "fixtures.step_parameters",
    "steps.common",
    "steps.backup_policy",
    "steps.restore_drill",
    "steps.migration_gates",
    "steps.config_safety",
]
