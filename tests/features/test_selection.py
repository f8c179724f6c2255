"""Selecting scenarios by name selects what the name says: ``-k restore`` is the restore drill and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.config import PROJECT_ROOT


def test_k_restore_selects_only_the_restore_drill() -> None:
    argv = [sys.executable, "-m", "pytest", "features/", "--collect-only", "-q", "-k", "restore", "-o", "log_cli=false"]
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    selected = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(selected) == 12
    assert {line.split("::")[0] for line in selected} == {"features/test_restore_drill.py"}


def test_the_drill_of_one_database_refuses_xdist_in_one_line_and_the_self_tests_accept_it() -> None:
    """-n spreads the databases of [[databases]]; one database's (the sandbox's) verdict is one process's."""
    argv = [sys.executable, "-m", "pytest", "-n", "2", "--collect-only", "-q", "-o", "log_cli=false"]
    refused = subprocess.run([*argv, "features/test_restore_drill.py"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=120, check=False)  # fmt: skip
    assert (refused.returncode, refused.stderr.strip()) == (4, (
        "ERROR: -n (pytest-xdist) cannot run the drill's scenarios (features/test_restore_drill.py): "
        f"{PROJECT_ROOT / 'drill.toml'} has one database: its record, RPO, RTO and cut-over verdict are decided in "
        "one process, and -n spreads only the databases of [[databases]] over workers. Run the features without -n"
    ))  # fmt: skip
    accepted = subprocess.run([*argv, "tests/harness/test_counting.py"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


_TWO_DATABASES = """
[target]
name = "shop"
sandbox = false
[[databases]]
name = "orders"
[[databases]]
name = "catalog"
"""


def test_a_drill_of_several_databases_accepts_n_and_refuses_a_dist_that_would_split_a_database(
    tmp_path: Path,
) -> None:
    config = tmp_path / "drill.toml"
    config.write_text(_TWO_DATABASES)
    argv = [sys.executable, "-m", "pytest", "features/test_restore_drill.py", "-n", "2", f"--drill-config={config}",
            "--collect-only", "-q", "-o", "log_cli=false"]  # fmt: skip
    env = {**os.environ, "DRILL_S3_ACCESS_KEY_ID": "collect-only", "DRILL_S3_SECRET_ACCESS_KEY": "collect-only"}
    accepted = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
                              check=False)  # fmt: skip
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    refused = subprocess.run([*argv, "--dist", "loadfile"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=120, check=False)  # fmt: skip
    assert (refused.returncode, refused.stderr.strip()) == (4, (
        "ERROR: -n (pytest-xdist) cannot run the drill's scenarios (features/test_restore_drill.py): --dist loadfile "
        "would not keep a database's scenarios on one worker: the drill schedules them itself. Use -n alone"
    ))  # fmt: skip
