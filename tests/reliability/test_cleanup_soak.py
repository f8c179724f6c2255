"""Drills in a row that pass, fail or are interrupted leave no process, no temp directory and no busy port.

Each drill is the restore drill run as an operator runs it (a subprocess against the sandbox world); they
cycle through the four ways a drill ends: it passes (staging restored, the app healthy), it fails (a
truncated dump), it gets SIGINT (Ctrl-C) or SIGTERM (a CI runner cancelling the job) while its staging
PostgreSQL runs. After each one: no process and no directory carries its run id, and every port its
servers listened on can be bound again. CI runs one drill of each kind; ``CODEBLACK_SOAK=20`` runs twenty.

A drill SIGKILLed mid-restore (no handler runs) leaves its directories and owner file; the next run or
``codeblack-drills sweep`` removes them, whatever its run id. Covered elsewhere: moto's server
(``tests/harness/test_lifecycle.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from harness.services.base import LABEL, RUN_ENV, wait_until
from harness.services.sweeper import find_leftovers
from sandbox.breakage import truncated_dump
from sandbox.world import World
from tests.features.drill_run import During, leftovers, run_drill

pytestmark = pytest.mark.slow

log = logging.getLogger("tests.reliability")

SOAK = int(os.environ.get("CODEBLACK_SOAK", "4"))
ENDINGS = ("pass", "fail", "SIGINT", "SIGTERM")
EXIT = {"pass": 0, "fail": 1, "SIGINT": 2, "SIGTERM": 2}  # pytest: 1 tests failed, 2 interrupted
_PORT = re.compile(r"(?:ready on 127\.0\.0\.1:|started app \S+ on http://127\.0\.0\.1:)(\d+)")


def _interrupt(signum: int, ports: set[int]) -> During:
    """Send ``signum`` to the drill once its staging PostgreSQL runs (noting the port it was given)."""

    def inject(run: str, child: subprocess.Popen[str]) -> None:
        label = f"cluster_name={LABEL}-{run}-staging"
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            postmasters = [argv for p in psutil.process_iter(["cmdline"]) if label in (argv := p.info["cmdline"] or [])]
            if postmasters:
                ports.update(int(argv[argv.index("-p") + 1]) for argv in postmasters)
                child.send_signal(signum)
                return
            time.sleep(0.05)

    return inject


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_drills_in_a_row_leave_nothing_behind(tmp_path: Path, sandbox_world: World) -> None:
    truncated = sandbox_world.variant("soak", truncated_dump())
    found = []
    for number in range(SOAK):
        ending = ENDINGS[number % len(ENDINGS)]
        ports: set[int] = set()
        during = _interrupt(getattr(signal, ending), ports) if ending.startswith("SIG") else None
        done = run_drill(tmp_path / f"{number}-{ending}", truncated if ending == "fail" else sandbox_world.deployment,
                         "isolated_staging or deep_health", args=["-o", "log_cli=true"], during=during)  # fmt: skip
        assert done.returncode == EXIT[ending], f"drill {number} ({ending}):\n{done.output[-3000:]}"
        ports |= {int(port) for port in _PORT.findall(done.output)}
        assert ports, f"drill {number} ({ending}) started no server:\n{done.output[-2000:]}"
        left = leftovers(done.run) + [f"port {port}" for port in sorted(ports) if not _free(port)]
        found += left
        assert not left, f"drill {number} ({ending}) left {left}"
    log.warning("cleanup soak: %d drills (%s), leftovers found: %d", SOAK, ", ".join(ENDINGS), len(found))


def _postmaster_ready(run: str) -> bool:
    """Whether the run's staging PostgreSQL wrote ``ready`` into its ``postmaster.pid`` (the restore is under way)."""
    for pid_file in Path(tempfile.gettempdir()).glob(f"{LABEL}-{run}-pg-staging-*/data/postmaster.pid"):
        with contextlib.suppress(OSError):
            lines = pid_file.read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return True
    return False


@pytest.mark.parametrize("cleaner", ["next run", "sweep"])
def test_a_drill_killed_mid_restore_is_swept(tmp_path: Path, sandbox_world: World, cleaner: str) -> None:
    run = f"Kill9_run_{uuid.uuid4().hex[:6]}"  # not hex: the old sweeper never matched such a run
    owner_files: list[Path] = []

    def kill_when_staging_is_ready(_: str, child: subprocess.Popen[str]) -> None:
        wait_until(lambda: _postmaster_ready(run) or child.poll() is not None, timeout=120, what="staging ready")
        owner_files.extend(Path(tempfile.gettempdir()).glob(f"{LABEL}-{run}-*.owner"))
        child.kill()

    done = run_drill(tmp_path / "killed", sandbox_world.deployment, "isolated_staging", env={RUN_ENV: run},
                     args=["-o", "log_cli=true"], during=kill_when_staging_is_ready)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.output[-3000:]
    # Nothing ran on the way out: the servers die of their parent-death signal; files and directories stay.
    wait_until(lambda: not find_leftovers(run).processes, timeout=30, what=f"the processes of {run} to end")
    assert owner_files, "the killed drill claimed no ownership"
    assert all(owner.exists() for owner in owner_files), owner_files
    assert find_leftovers(run).directories, "the killed drill left no directory: nothing to sweep"
    if cleaner == "sweep":
        program = Path(sys.executable).parent / "codeblack-drills"
        subprocess.run([program, "sweep"], capture_output=True, text=True, timeout=60, check=True)
    else:
        later = run_drill(tmp_path / "next", sandbox_world.deployment, "nothing_matches_this", args=["--co"])
        assert later.returncode == 5, later.output[-3000:]  # pytest: no tests collected; its start swept
    assert not any(owner.exists() for owner in owner_files), owner_files
    assert leftovers(run) == []
