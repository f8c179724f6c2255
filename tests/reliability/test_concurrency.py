"""Two drills at once (two operators, or two CI jobs on one runner) share no port and no directory, and both pass.

Each drill is a pytest process of its own with its own run id: it restores the newest dump into its own staging
server. A watcher samples the staging PostgreSQL servers of each run while it runs; each run's must be its own
(distinct port, distinct data directory). Object storage is only read by the drill, so the buckets the two
read are the same by design and nothing is written to them.
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from harness.services.base import LABEL
from sandbox.world import World
from tests.features.drill_run import DrillRun, leftovers, run_drill

pytestmark = pytest.mark.slow


def test_two_drills_at_once_share_nothing_and_both_pass(tmp_path: Path, sandbox_world: World) -> None:
    # (run, port, data directory) of every staging server seen; a backend just forked from its postmaster briefly
    # shows the postmaster's argv too, so servers are told apart by what they hold, not by pid.
    servers: set[tuple[str, str, str]] = set()

    def watch(run: str, child: subprocess.Popen[str]) -> None:
        label = f"cluster_name={LABEL}-{run}-staging"
        while child.poll() is None:
            for proc in psutil.process_iter(["cmdline"]):
                argv = proc.info["cmdline"] or []
                if label in argv and "-D" in argv:
                    servers.add((run, argv[argv.index("-p") + 1], argv[argv.index("-D") + 1]))
            time.sleep(0.05)

    def drill(name: str) -> DrillRun:
        return run_drill(tmp_path / name, sandbox_world.deployment,
                         "isolated_staging or row_counts or 24_hours or corruption", during=watch)  # fmt: skip

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(drill, ["first", "second"]))
    for done in runs:
        assert done.returncode == 0, done.output[-3000:]
        assert "5 passed" in done.output, done.output[-2000:]
        assert leftovers(done.run) == []
    assert {run for run, _, _ in servers} == {done.run for done in runs}, servers  # both watched at work
    assert len(servers) == 2, servers  # one staging server per drill
    assert len({port for _, port, _ in servers}) == len({directory for _, _, directory in servers}) == 2, servers
