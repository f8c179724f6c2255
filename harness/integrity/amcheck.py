"""Physical corruption check of a restored database with ``pg_amcheck``.

Row counts can match while a heap page or a B-tree is damaged; ``pg_amcheck`` (with ``--heapallindexed``)
verifies every table and index of the database. The tool comes from the same installation as the staging
server, so versions always agree. It exits 2 when it finds corruption and lists it on stdout.
"""

from __future__ import annotations

import os
import subprocess

from harness.errors import CheckFailed, HarnessError
from harness.services.postgres import PostgresServer, ensure_throwaway

__all__ = ["AMCHECK_TIMEOUT_S", "check_amcheck"]

AMCHECK_TIMEOUT_S = 3600.0


def check_amcheck(server: PostgresServer, dbname: str) -> str:
    """Run ``pg_amcheck --heapallindexed`` on a staging database; returns its output (evidence).

    Raises:
        CheckFailed: corruption found; the message carries the first findings.
        HarnessError: the tool could not run (missing, timed out, cannot connect).
    """
    ensure_throwaway(server.dsn(dbname))
    with server.connect(dbname) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    argv = [str(server.binaries.tool("pg_amcheck")), "--heapallindexed", "--no-password", dbname]
    try:
        result = subprocess.run(
            argv, capture_output=True, timeout=AMCHECK_TIMEOUT_S, env={**os.environ, **server.tool_env()}, check=False
        )
    except subprocess.TimeoutExpired:
        raise HarnessError(f"pg_amcheck of {dbname} did not finish within {AMCHECK_TIMEOUT_S:g} s") from None
    out, err = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    if result.returncode == 2 or (result.returncode == 0 and out.strip()):
        findings = " | ".join(line for line in out.strip().splitlines()[:5])
        raise CheckFailed(f"pg_amcheck found corruption in {dbname}: {findings}")
    if result.returncode != 0:
        last = err.strip().splitlines()[-1] if err.strip() else f"exit code {result.returncode}"
        raise HarnessError(f"pg_amcheck of {dbname} could not run: {last}")
    return out + err
