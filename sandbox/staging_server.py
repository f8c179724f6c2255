"""A stand-in for an existing staging server (``[staging] provider = "server"``), for the tests and ``bench/``.

A PostgreSQL the drill did not start, of its own ``initdb``, and its admin DSN as an operator exports it.
"""

from __future__ import annotations

from urllib.parse import quote

from harness.services.base import give_to_service_user, label_dir, remove_dir, run_tool
from harness.services.postgres import LocalPostgres, find_binaries

__all__ = ["admin_dsn", "existing_server"]


def admin_dsn(server: LocalPostgres) -> str:
    """The staging server's admin DSN as an operator exports it: a URL with the password in it."""
    password = quote(server.passwords["postgres"], safe="")
    return f"postgresql://postgres:{password}@{server.host}:{server.port}/postgres"


def existing_server(name: str) -> LocalPostgres:
    """A PostgreSQL the drill did not start for staging, of its own ``initdb``.

    Not a copy of the harness's cached template: every such copy carries the template's system identifier, so
    it would be refused as production (as a physical clone of production is).
    """
    binaries = find_binaries()
    work = label_dir(f"initdb-{name}")
    give_to_service_user(work)
    try:
        run_tool([binaries.tool("initdb"), "-D", work / "data", "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync"], what=f"initdb of {name}", timeout=120, as_service_user=True)  # fmt: skip
        return LocalPostgres.create(name, binaries=binaries, data_dir=work / "data", throwaway=False)
    finally:
        remove_dir(work)
