"""The drill as an installed tool: ``codeblack-drills gates`` and ``codeblack-drills drill`` from a wheel.

A clone keeps ``features/``, ``steps/`` and ``fixtures/`` at its root, where ``conftest.py`` registers them.
The wheel ships the same files as ``codeblack_drills.features``, ``codeblack_drills.steps`` and
``codeblack_drills.fixtures`` (pyproject's hatch ``sources``), so an installed drill adds no generic ``steps`` or
``fixtures`` module to site-packages; :mod:`codeblack_drills.plugin` registers them there, and
:mod:`codeblack_drills.run` builds the pytest command line. The suite's plugin modules are listed once, here, for
both layouts.
"""

from __future__ import annotations

__all__ = ["PLUGINS"]

#: The suite's fixture and step modules, relative to the directory holding ``fixtures/`` and ``steps/``.
PLUGINS = (
    "fixtures.config",
    "fixtures.failures",
    "fixtures.services",
    "fixtures.world",
    "fixtures.app",
    "fixtures.distributed",
    "fixtures.staging",
    "fixtures.drill_record",
    "fixtures.step_parameters",
    "steps.common",
    "steps.backup_policy",
    "steps.restore_drill",
    "steps.migration_gates",
    "steps.config_safety",
)
