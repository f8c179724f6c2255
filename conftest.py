"""Registers the suite's fixtures and steps as plugins (keeps assertion rewriting; no star imports)."""

pytest_plugins = [
    "fixtures.config",
    "fixtures.services",
]
