"""``codeblack-drills gates`` runs from the target project's checkout: its files must not run in the drill.

A CI job runs the gates in the project's directory. ``python -m pytest`` would put that directory first on
``sys.path``, so a ``pytest.py`` (or any module named like one the drill imports) there would run inside the
drill's process, with its environment (storage and signing keys). The drill's pytest starts with ``-P``: the
calling directory is not on ``sys.path``; and the project's ``conftest.py`` and ``pytest.ini`` are not the
drill's configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT

FOREIGN = Path(__file__).resolve().parent.parent / "data" / "foreign_project"
PROGRAM = Path(sys.executable).parent / "codeblack-drills"
SECRET = "DRILL_S3_SECRET_ACCESS_KEY"
PLANT = "import os, pathlib\npathlib.Path({canary!r}).write_text(os.environ.get({secret!r}, 'absent'))\n"


def _plant(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A copy of a target project whose directory holds modules that, imported, write the drill's secret."""
    project = tmp_path / "shelf"
    shutil.copytree(FOREIGN, project, ignore=shutil.ignore_patterns("__pycache__", "reports", ".venv"))
    canaries = {name: tmp_path / f"{name}.canary" for name in ("pytest", "conftest", "sitecustomize", "harness")}
    for name, canary in canaries.items():
        (project / f"{name}.py").write_text(PLANT.format(canary=str(canary), secret=SECRET))
    (project / "pytest.ini").write_text("[pytest]\naddopts = -p conftest\n")
    return project, canaries


@pytest.mark.parametrize("how", ["codeblack-drills gates, in the project", "pytest features/, in the clone"])
def test_a_projects_files_do_not_run_in_the_drill(tmp_path: Path, how: str) -> None:
    project, canaries = _plant(tmp_path)
    if how.startswith("codeblack-drills"):
        argv, cwd = [str(PROGRAM), "gates", "--drill-config", "drill.toml"], project
    else:  # the README's CI command, the project's drill.toml named as a separate argument
        argv, cwd = [sys.executable, "-m", "pytest", "features/", "-m", "predeploy", "--drill-config",
                     str(project / "drill.toml")], PROJECT_ROOT  # fmt: skip

    done = subprocess.run([*argv, "--collect-only", "-q"], cwd=cwd, env={**os.environ, SECRET: "planted"},
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip

    planted = {name: canary.read_text() for name, canary in canaries.items() if canary.exists()}
    assert planted == {}, f"the project's files ran in the drill's process: {planted}\n{done.stdout}{done.stderr}"
    assert " tests collected " in done.stdout, done.stdout + done.stderr
