"""Selecting scenarios by name selects what the name says: ``-k restore`` is the restore drill and nothing else."""

from __future__ import annotations

import subprocess
import sys

from harness.config import PROJECT_ROOT


def test_k_restore_selects_only_the_restore_drill() -> None:
    argv = [sys.executable, "-m", "pytest", "features/", "--collect-only", "-q", "-k", "restore", "-o", "log_cli=false"]
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    selected = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(selected) == 12
    assert {line.split("::")[0] for line in selected} == {"features/test_restore_drill.py"}


def test_the_drill_refuses_xdist_in_one_line_and_the_self_tests_accept_it() -> None:
    """Under -n each worker would judge cut-over on its own share of the measures: NO-GO and no record."""
    argv = [sys.executable, "-m", "pytest", "-n", "2", "--collect-only", "-q", "-o", "log_cli=false"]
    refused = subprocess.run([*argv, "features/test_restore_drill.py"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=120, check=False)  # fmt: skip
    assert (refused.returncode, refused.stderr.strip()) == (4, (
        "ERROR: -n (pytest-xdist) cannot run the drill's scenarios (features/test_restore_drill.py): its record, "
        "RPO, RTO and cut-over verdict are decided in one process; [restore] parallel_databases restores "
        "databases in parallel within the run. Run the features without -n"
    ))  # fmt: skip
    accepted = subprocess.run([*argv, "tests/harness/test_counting.py"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
