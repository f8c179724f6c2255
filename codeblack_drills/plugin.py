"""The pytest plugin of an installed drill (``-p codeblack_drills.plugin``): what a clone's conftest.py does.

It registers the suite's fixtures and steps as submodules of this package, and the features' tags as markers.
It is not an auto-loaded ``pytest11`` entry point on purpose: the drill's session start (loading ``drill.toml``,
sweeping leftovers, trapping SIGTERM) belongs to drill runs, not to every pytest run of the environment it is
installed in.
"""

from __future__ import annotations

import pytest

from codeblack_drills import PLUGINS
from codeblack_drills.settings import MARKERS

pytest_plugins = [f"{__package__}.{name}" for name in PLUGINS]


def pytest_configure(config: pytest.Config) -> None:
    """Register the features' tags, which a clone lists in pyproject.toml."""
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
