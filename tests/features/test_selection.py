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
