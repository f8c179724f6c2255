"""Drills in a row that pass, fail or are interrupted leave no process, no temp directory and no busy port.

Each drill is the restore drill run as an operator runs it (a subprocess against the sandbox world); they
cycle through the four ways a drill ends: it passes (staging restored, the app healthy), it fails (a
truncated dump), it gets SIGINT (Ctrl-C) or SIGTERM (a CI runner cancelling the job) while its staging
PostgreSQL runs. After each one: no process and no directory carries its run id, and every port its
servers listened on can be bound again. CI runs one drill of each kind; ``CODEBLACK_SOAK=20`` runs twenty.

Covered elsewhere: moto's server and a SIGKILLed run swept by the next one (``tests/harness/test_lifecycle.py``).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness.services.base import LABEL
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
