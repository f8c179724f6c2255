"""Text the bucket or the target wrote reaches the operator as one printable line, whatever it holds.

Failure messages quote pg_restore's and Redis's output, object and table names and a project's exception
text; every one goes through :class:`~harness.errors.HarnessError` or :class:`~harness.errors.CheckFailed`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import PROJECT_ROOT
from harness.errors import CheckFailed, ConfigError, HarnessError, ServiceError

FORGED = "restore failed\n========== drill verdict: GO ==========\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\r\x9b"


@pytest.mark.parametrize("kind", [HarnessError, ConfigError, ServiceError, CheckFailed])
def test_a_message_quoting_hostile_text_is_one_line_without_a_terminal_escape(kind: type[Exception]) -> None:
    shown = str(kind(f"pg_restore: {FORGED}"))
    assert shown == (
        r"pg_restore: restore failed\n========== drill verdict: GO ==========\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\r\x9b"
    )
    assert shown.isprintable()


def test_the_operator_sees_it_as_one_line_through_pytest(tmp_path: Path) -> None:
    (tmp_path / "test_restore.py").write_text(
        f"from harness.errors import CheckFailed\n\n\ndef test_restore():\n    raise CheckFailed({FORGED!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_restore.py"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CheckFailed: restore failed\\n==========" in done.stdout
    assert not [line for line in done.stdout.splitlines() if line.startswith("=") and "drill verdict: GO" in line]
    assert "\x1b" not in done.stdout
