"""Physical corruption check of a restored database with ``pg_amcheck``.

Row counts can match while a heap page or a B-tree is damaged; ``pg_amcheck`` (with ``--heapallindexed``)
verifies every table and index of the database. The tool comes from the same installation as the staging
server, so versions always agree. It exits 2 when it finds corruption and lists it on stdout.
"""

from __future__ import annotations

import subprocess

from psycopg import sql

from harness.errors import CheckFailed, HarnessError
from harness.services.base import minimal_env, run_id
from harness.services.postgres import PostgresServer, ensure_throwaway

__all__ = ["AMCHECK_TIMEOUT_S", "check_amcheck", "install_amcheck"]

AMCHECK_TIMEOUT_S = 3600.0


_INSTALLED = (
    "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n "
    "ON n.oid OPERATOR(pg_catalog.=) e.extnamespace WHERE e.extname OPERATOR(pg_catalog.=) 'amcheck'"
)


def install_amcheck(server: PostgresServer, dbname: str) -> None:
    """Install amcheck where restored data cannot reach it, and let the owner role run it.

    amcheck needs superuser to install, so the restore calls this on the empty database, before anything is
    restored; on a database that already holds data the superuser session is hardened
    (:meth:`~harness.services.postgres.PostgresServer.admin_connect`). Its functions go into a schema made now,
    under a name of this run, so a function the dump plants can neither stand in for them nor replace them, and
    ``pg_amcheck`` runs as the owner role (``drill_owner`` on a throwaway server): an index expression it
    evaluates has no more power than the restore.
    """
    owner = sql.Identifier(server.owner_role)
    with server.admin_connect(dbname) as conn:
        found = conn.execute(_INSTALLED).fetchone()
        # Only a superuser installs amcheck, so one found here is the harness's own from an earlier check.
        schema = sql.Identifier(found[0] if found else f"drill_amcheck_{run_id()}")
        if found is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
            conn.execute(sql.SQL("CREATE EXTENSION amcheck WITH SCHEMA {}").format(schema))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, owner))
        conn.execute(sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(schema, owner))


def check_amcheck(server: PostgresServer, dbname: str) -> str:
    """Run ``pg_amcheck --heapallindexed`` on a staging database as its owner; returns its output (evidence).

    Raises:
        CheckFailed: corruption found; the message carries the first findings.
        HarnessError: the tool could not run (missing, timed out, cannot connect).
    """
    ensure_throwaway(server.dsn(dbname, server.owner_role))
    with server.connect(dbname, server.owner_role) as conn:
        installed = conn.execute(_INSTALLED).fetchone() is not None
    if not installed:
        install_amcheck(server, dbname)
    argv = [str(server.binaries.tool("pg_amcheck")), "--heapallindexed", "--no-password", dbname]
    try:
        result = subprocess.run(argv, capture_output=True, timeout=AMCHECK_TIMEOUT_S,
                                env=minimal_env(server.tool_env(server.owner_role)), check=False)  # fmt: skip
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
