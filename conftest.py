"""Registers the suite's fixtures and steps as plugins (keeps assertion rewriting; no star imports).

The list is :data:`codeblack_drills.PLUGINS`, which an installed drill registers under its own package too.
"""

from codeblack_drills import PLUGINS

pytest_plugins = list(PLUGINS)
