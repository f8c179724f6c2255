"""Two drills at once (pytest-xdist, two workers) share no port and no directory, and both pass.

Each xdist worker is a drill session of its own: it restores the newest dump into its own staging server.
A watcher samples the staging PostgreSQL servers of the run while it runs; each worker's must be its own
(distinct port, distinct data directory). Object storage is only read by the drill, so the buckets the two
read are the same by design and nothing is written to them.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness.services.base import LABEL
from sandbox.world import World
from tests.features.drill_run import leftovers, run_drill

pytestmark = pytest.mark.slow


def test_two_drills_at_once_share_nothing_and_both_pass(tmp_path: Path, sandbox_world: World) -> None:
    # (port, data directory) of every staging server seen; a backend just forked from its postmaster briefly
    # shows the postmaster's argv too, so servers are told apart by what they hold, not by pid.
    servers: set[tuple[str, str]] = set()

    def watch(run: str, child: subprocess.Popen[str]) -> None:
        label = f"cluster_name={LABEL}-{run}-staging"
        while child.poll() is None:
            for proc in psutil.process_iter(["cmdline"]):
                argv = proc.info["cmdline"] or []
                if label in argv and "-D" in argv:
                    servers.add((argv[argv.index("-p") + 1], argv[argv.index("-D") + 1]))
            time.sleep(0.05)

    done = run_drill(tmp_path, sandbox_world.deployment, "isolated_staging or row_counts or 24_hours or corruption",
                     args=["-n", "2", "--dist", "load"], during=watch)  # fmt: skip
    assert done.returncode == 0, done.output[-3000:]
    assert "5 passed" in done.output, done.output[-2000:]
    ports = {port for port, _ in servers}
    directories = {directory for _, directory in servers}
    assert len(servers) == 2, servers  # one staging server per worker
    assert len(ports) == len(directories) == 2, servers  # sharing neither a port nor a directory
    assert leftovers(done.run) == []
