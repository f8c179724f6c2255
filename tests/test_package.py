"""The drill installed from its wheel, as a project's CI installs it: no clone, the user's own directory.

The wheel is built here (``uv build``) and installed into a fresh virtual environment outside the repository,
with the locked dependencies from uv's cache (offline); ``codeblack-drills gates`` then gates a copy of the
foreign project of ``tests/data/foreign_project`` from that project's directory. The settings an installed run
uses in place of pyproject's are held equal to pyproject's here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from codeblack_drills.settings import CLONE_OPTIONS, INI, MARKERS, OPTIONS
from harness.config import PROJECT_ROOT
from tests.features.test_gates_only import _add_revision, _project


def _pytest_ini() -> dict[str, object]:
    ini: dict[str, object] = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]
    return ini


def test_an_installed_run_tags_logs_and_fails_as_a_clone_does() -> None:
    ini = _pytest_ini()
    markers = dict(line.split(": ", 1) for line in ini["markers"])  # type: ignore[attr-defined]
    assert {name: text for name, text in markers.items() if name != "slow"} == MARKERS
    assert ini["addopts"] == [*OPTIONS, *CLONE_OPTIONS]
    assert {name: str(ini[name]).lower() if isinstance(ini[name], bool) else ini[name] for name in INI} == INI


def test_from_a_clone_the_gates_command_is_the_readmes_pytest_features(tmp_path: Path) -> None:
    done = subprocess.run(
        [Path(sys.executable).parent / "codeblack-drills", "gates", "--collect-only", "-q", "-o", "log_cli=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert collected, done.stdout
    assert all(line.startswith("features/test_") for line in collected), done.stdout
    assert "test_migration_gates.py::test_the_migration_history_is_one_linear_chain" in done.stdout
    assert " deselected" in done.stdout


@dataclass(frozen=True)
class Installed:
    """A fresh virtual environment holding the wheel and the locked dependencies, and what the wheel held."""

    bin: Path
    site_packages: Path
    top_level: set[str]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv not found: run the tests with `uv run pytest` (scripts/test puts uv on PATH)"

    def run(*args: str | Path) -> None:
        done = subprocess.run([uv, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"uv {args[0]} {args[1]}: {done.stderr[-2000:]}"

    work = tmp_path_factory.mktemp("installed")
    run("build", "--wheel", "--out-dir", work / "dist", PROJECT_ROOT)
    wheel = next((work / "dist").glob("codeblack_drills-*.whl"))
    lock = work / "pylock.toml"  # the locked versions, as wheel URLs uv's cache holds
    run("export", "--frozen", "--no-dev", "--no-emit-project", "--quiet", "--format", "pylock.toml", "-o", lock)
    venv = work / "venv"
    run("venv", "--quiet", "--python", sys.executable, venv)
    install = ("pip", "install", "--quiet", "--offline", "--python", venv / "bin" / "python")
    run(*install, "--preview-features", "pylock", "-r", lock)
    run(*install, "--no-deps", wheel)
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist() if ".dist-info/" not in name}
    return Installed(venv / "bin", next((venv / "lib").glob("python3*/site-packages")), top_level)


def _gates(installed: Installed, project: Path, *pytest_args: str) -> subprocess.CompletedProcess[str]:
    """``codeblack-drills gates --drill-config drill.toml`` in the project's directory, as its CI job runs it."""
    secrets = ("DRILL_", "CODEBLACK_", "AWS_", "VIRTUAL_ENV", "PYTHONPATH")
    env = {name: value for name, value in os.environ.items() if not name.startswith(secrets)}
    env["PATH"] = os.pathsep.join([str(installed.bin), *(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)])
    return subprocess.run(
        ["codeblack-drills", "gates", "--drill-config", "drill.toml", *pytest_args],
        cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_the_wheel_ships_the_suite_under_its_own_package(installed: Installed) -> None:
    assert installed.top_level == {"codeblack_drills", "harness", "sandbox"}
    package = installed.site_packages / "codeblack_drills"
    assert {path.name for path in package.iterdir() if path.is_dir() and path.name != "__pycache__"} >= {
        "features", "steps", "fixtures"
    }  # fmt: skip
    assert (installed.site_packages / "sandbox" / "drill.toml").is_file()


@pytest.mark.slow
def test_installed_gates_pass_a_healthy_project_and_name_a_second_head(installed: Installed) -> None:
    workspace = installed.bin.parent.parent  # holds the drill's venv, as a project holds its .venv
    project = _project(workspace)
    # The user's pytest configuration is for the user's own tests: an installed drill neither reads nor needs it.
    for directory in (workspace, project):
        (directory / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "--no-such-option"\n')
        (directory / "conftest.py").write_text('raise RuntimeError("a conftest.py of the user\'s was loaded")\n')
    healthy = _gates(installed, project)
    output = healthy.stdout + healthy.stderr
    assert healthy.returncode == 0, output[-3000:]
    assert "pre-deploy verdict: PASS (6 passed, 0 failed" in output
    assert list((project / "reports" / "runs").glob("*/allure-results/*-result.json"))
    assert not list(installed.site_packages.rglob("reports")), "an installed run wrote into site-packages"

    tags = "op.create_table('tags', sa.Column('id', sa.Integer, primary_key=True))"
    _add_revision(project, "c0ffee000001_tags", "a1b2c3d4e5f6", tags, "op.drop_table('tags')")
    broken = _gates(installed, project, "-k", "linear_chain")  # the gate that names it; extra arguments reach pytest
    output = broken.stdout + broken.stderr
    assert broken.returncode == 1, output[-3000:]
    assert "pre-deploy verdict: FAIL" in output
    assert (
        "the migration history has 2 heads (b7c8d9e0f1a2 (b7c8d9e0f1a2_books.py), c0ffee000001 "
        "(c0ffee000001_tags.py)); the plan needs one linear chain"
    ) in output
