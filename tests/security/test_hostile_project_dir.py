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

FOREIGN = Path(__file__).resolve().parent.parent / "data" / "foreign_project"
PROGRAM = Path(sys.executable).parent / "codeblack-drills"
SECRET = "DRILL_S3_SECRET_ACCESS_KEY"
PLANT = "import os, pathlib\npathlib.Path({canary!r}).write_text(os.environ.get({secret!r}, 'absent'))\n"


def test_a_projects_files_in_the_calling_directory_do_not_run_in_the_drill(tmp_path: Path) -> None:
    project = tmp_path / "shelf"
    shutil.copytree(FOREIGN, project, ignore=shutil.ignore_patterns("__pycache__", "reports", ".venv"))
    canaries = {name: tmp_path / f"{name}.canary" for name in ("pytest", "conftest", "sitecustomize", "harness")}
    for name, canary in canaries.items():
        (project / f"{name}.py").write_text(PLANT.format(canary=str(canary), secret=SECRET))
    (project / "pytest.ini").write_text("[pytest]\naddopts = -p conftest\n")
    env = {**os.environ, SECRET: "planted"}

    done = subprocess.run([PROGRAM, "gates", "--drill-config", "drill.toml", "--collect-only", "-q"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip

    planted = {name: canary.read_text() for name, canary in canaries.items() if canary.exists()}
    assert planted == {}, f"the project's files ran in the drill's process: {planted}\n{done.stdout}{done.stderr}"
    assert "scenarios" in done.stdout or "collected" in done.stdout or "tests" in done.stdout, done.stdout + done.stderr
