"""A drill into an existing staging server killed or interrupted mid-restore: its database and role do not stay.

The drill runs as an operator runs it (a subprocess against the sandbox world, ``[staging] provider = "server"``),
restoring into a second local PostgreSQL that stands in for the staging server. Once its ``pg_restore`` runs,
the restore is held (SIGSTOP: it cannot finish meanwhile) and the drill is killed with SIGKILL, so no finaliser
runs: its stamped database and role stay on the server. The next drill's sweep drops both; it restores, starts
the app against its own database (deep health green) and drops that at the end; the record states the
server's version and settings. A drill that gets SIGTERM mid-restore drops its own on the way out.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from harness.services.base import RUN_ENV, wait_until
from harness.services.external import Stamp, database_name, role_name
from harness.services.sweeper import find_leftovers
from sandbox.breakage import bulky_newest
from sandbox.staging_server import admin_dsn, existing_server
from sandbox.world import World
from tests.features.drill_run import During, run_drill
from tests.harness.test_staging_server import ADMIN_ENV, catalog

pytestmark = pytest.mark.slow

STAGING = {"provider": "server", "admin_dsn_env": ADMIN_ENV}


def _restoring(run: str) -> list[psutil.Process]:
    """The run's pg_restore processes (the restore into the staging server is under way)."""
    return [
        proc for proc in psutil.process_iter(["name", "cmdline", "environ"])
        if proc.info["name"] == "pg_restore" and "--dbname" in (proc.info["cmdline"] or [])
        and (proc.info["environ"] or {}).get(RUN_ENV) == run
    ]  # fmt: skip


def _once_restoring(act: Callable[[list[psutil.Process], subprocess.Popen[str]], None]) -> During:
    """A fault injector: ``act`` on the run's pg_restore processes and the drill once they run."""

    def inject(run: str, child: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            restoring = _restoring(run)
            if restoring:
                act(restoring, child)
                return
            time.sleep(0.02)

    return inject


def test_a_drill_killed_mid_restore_leaves_its_database_and_role_to_the_next_run(
    tmp_path: Path, sandbox_world: World
) -> None:
    server = existing_server("existing-kill")
    try:
        env = {ADMIN_ENV: admin_dsn(server)}
        bulky = sandbox_world.variant("bulky", bulky_newest(400_000))
        held: list[int] = []

        def hold_and_kill(restoring: list[psutil.Process], drill: subprocess.Popen[str]) -> None:
            for proc in restoring:  # held: pg_restore cannot finish while the drill is killed
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGSTOP)
                    held.append(proc.pid)
            drill.kill()

        killed = run_drill(tmp_path / "killed", bulky, "isolated_staging", env=env, staging=STAGING,
                           during=_once_restoring(hold_and_kill))  # fmt: skip
        assert held, f"pg_restore finished before the drill could be killed:\n{killed.output[-3000:]}"
        assert killed.returncode == -signal.SIGKILL, killed.output[-3000:]
        # pg_restore's own workers (forked, so without the parent-death signal) may stay, stopped: leftovers of a
        # killed run, which the next run's sweep must remove (checked below), not something to wait for here.
        database, role = database_name(killed.run, "staging"), role_name(killed.run, "staging")
        databases, roles = catalog(server)
        assert database in databases, "the killed drill left no database: nothing to sweep"
        assert role in roles
        with server.connect() as conn:
            row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                               (database,)).fetchone()  # fmt: skip
        stamp = Stamp.parse(row[0] if row else None)
        assert stamp is not None
        assert stamp.run == killed.run

        later = run_drill(tmp_path / "next", sandbox_world.deployment, "isolated_staging or deep_health", env=env,
                          staging=STAGING, args=["-o", "log_cli=true"])  # fmt: skip
        assert later.returncode == 0, later.output[-3000:]
        assert "2 passed" in later.output  # the restore, and the app healthy against the run's database
        assert f"database {database}, role {role}" in later.output
        databases, roles = catalog(server)
        assert database not in databases
        assert role not in roles
        assert database_name(later.run, "staging") not in databases  # its own, dropped at its end
        wait_until(lambda: not find_leftovers(killed.run).processes, timeout=30, what="the killed run's processes")
        assert role_name(later.run, "staging") not in roles
        record = later.records()[-1]
        assert [s["what"] for s in record["staging"] if s["port"] == server.port] == [
            "staging PostgreSQL (an existing server)"
        ]
        described = record["environment"]["staging.server"]
        assert described.startswith(f"PostgreSQL {server.binaries.version} at 127.0.0.1:{server.port} ")
        assert "max_wal_size=" in described
        assert server.passwords["postgres"] not in later.output
    finally:
        server.stop()


def test_a_drill_interrupted_mid_restore_drops_its_database_and_role(tmp_path: Path, sandbox_world: World) -> None:
    server = existing_server("existing-term")
    try:
        bulky = sandbox_world.variant("bulky-term", bulky_newest(400_000))
        sent: list[int] = []

        def terminate(restoring: list[psutil.Process], drill: subprocess.Popen[str]) -> None:
            drill.send_signal(signal.SIGTERM)  # a CI runner cancelling the job
            sent.append(len(restoring))

        done = run_drill(tmp_path / "term", bulky, "isolated_staging", env={ADMIN_ENV: admin_dsn(server)},
                         staging=STAGING, during=_once_restoring(terminate))  # fmt: skip
        assert sent, f"pg_restore finished before the drill could be interrupted:\n{done.output[-3000:]}"
        assert done.returncode == 2, done.output[-3000:]  # pytest: interrupted
        databases, roles = catalog(server)
        assert database_name(done.run, "staging") not in databases
        assert role_name(done.run, "staging") not in roles
    finally:
        server.stop()
