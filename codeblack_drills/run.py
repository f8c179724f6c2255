"""The pytest command line of ``codeblack-drills gates`` and ``codeblack-drills drill``.

Installed, the features run with :mod:`codeblack_drills.plugin` and the settings of
:mod:`codeblack_drills.settings`, isolated from whatever pytest configuration the calling directory holds (its
``pyproject.toml``, ``pytest.ini`` or ``conftest.py`` belong to the user's own tests). pytest's rootdir is the
package, so that the features' paths read as in a clone; a relative ``[reports] dir`` is taken from the calling
directory all the same (``fixtures.config.project_root``), never from site-packages. From a clone, the same
command is the README's ``pytest features/``: the clone's conftest.py and pyproject.toml apply. This module
imports no pytest: the CLI replaces itself with the pytest process it describes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from codeblack_drills.settings import INI, OPTIONS

__all__ = ["SUITES", "pytest_argv"]

Suite = Literal["gates", "drill"]

#: What each command selects: the pre-deploy gates, or every scenario (the monthly drill).
SUITES: dict[Suite, tuple[str, ...]] = {"gates": ("-m", "predeploy"), "drill": ()}

PACKAGE = Path(__file__).resolve().parent


def pytest_argv(suite: Suite, drill_config: Path, extra: Sequence[str]) -> list[str]:
    """The argv of the pytest process running ``suite`` on the target of ``drill_config``.

    Args:
        suite: ``gates`` or ``drill``.
        drill_config: the target's drill.toml (the CLI has loaded it, so a bad one never reaches pytest).
        extra: further pytest arguments, given last (``-k``, ``--junitxml``, another ``-m``...).
    """
    installed = PACKAGE / "features"
    if installed.is_dir():
        ini = [f"-o{name}={value}" for name, value in INI.items()]
        head = [str(installed), "-p", f"{__package__}.plugin", "-c", os.devnull, "--rootdir", str(PACKAGE),
                "--confcutdir", str(PACKAGE), *OPTIONS, *ini]  # fmt: skip
    else:
        head = [str(PACKAGE.parent / "features")]
    # The target project's files must not run in the drill, with its keys. -P: ``-m`` would put the calling
    # directory (the project's checkout) first on sys.path, and a pytest.py or a module named like one the drill
    # imports there would run. One token for --drill-config: before the option is known (a clone's conftest.py
    # adds it), pytest takes a separate value for a path and loads the conftest.py beside the project's drill.toml.
    return [sys.executable, "-P", "-m", "pytest", *head, *SUITES[suite], f"--drill-config={drill_config}", *extra]
