"""Which PostgreSQL the migration gates run on: the production major and the extensions the migrations create.

A migration that creates ``uuid-ossp`` fails on a server without it, and that says nothing about the migration:
the gates' server lacks what production has. So, like a staging copy (:mod:`harness.services.pgversions`), the
gates' throwaway runs the installation that matches what the target declares: ``[migrations] postgres_major``
(or ``services.postgres_major``) and ``[migrations] extensions``, chosen among the installations found here
(``services.postgres_bin_dir``, Debian's ``postgresql-NN``, which ships contrib, the embedded wheel). An
extension is provided when its ``.control`` file is in the installation's ``share/extension``. Declaring
nothing keeps the session's PostgreSQL; a migration that then creates a missing extension is a setup error
that names it (:class:`~harness.migrations.isolation.MissingExtension`), never a fault of the migration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.errors import ServiceError
from harness.services.base import run_tool
from harness.services.pgversions import install_hint
from harness.services.postgres import PostgresBinaries, installations, reachable

__all__ = ["GatesPostgres", "available_extensions", "choose_gates_postgres"]


@cache
def available_extensions(binaries: PostgresBinaries) -> frozenset[str]:
    """The extensions an installation can create: the ``.control`` files of its ``share/extension``."""
    share = binaries.bin_dir.parent / "share"
    config = binaries.bin_dir / "pg_config"
    if config.exists():
        share = Path(run_tool([config, "--sharedir"], what="pg_config --sharedir", timeout=10).stdout.decode().strip())
    return frozenset(path.name.removesuffix(".control") for path in (share / "extension").glob("*.control"))


@dataclass(frozen=True)
class GatesPostgres:
    """The installation the gates' throwaway runs, and why."""

    binaries: PostgresBinaries
    why: str

    def describe(self) -> str:
        """One line for the record."""
        return f"PostgreSQL {self.binaries.version} from {self.binaries.source} ({self.why})"


def choose_gates_postgres(
    default: PostgresBinaries, *, major: int | None, extensions: Sequence[str], configured_dir: str = ""
) -> GatesPostgres:
    """The installation whose major is ``major`` (any, when ``None``) and that provides every extension.

    Raises:
        ServiceError: no installed PostgreSQL matches; the message names the major or the missing extensions,
            what is installed, and how to provide it.
    """
    if major is None and not extensions:
        return GatesPostgres(default, "the session's PostgreSQL: [migrations] declares no major or extension")
    found = installations(configured_dir)
    candidates = [b for b in found if major is None or int(b.major) == major]
    wanted = f"PostgreSQL {major}" if major is not None else "PostgreSQL"
    if not candidates:
        listed = ", ".join(f"{b.major} ({b.source})" for b in found) or "none"
        raise ServiceError(
            f"[migrations] postgres_major is {major}, but no PostgreSQL {major} is installed (installed: {listed}); "
            f"{install_hint(major or 0)}"
        )
    lacking = {b: sorted(set(extensions) - available_extensions(b)) for b in candidates}
    chosen = next((b for b, missing in lacking.items() if not missing), None)
    if chosen is None:
        listed = "; ".join(f"{b.major} ({b.source}) lacks {', '.join(missing)}" for b, missing in lacking.items())
        raise ServiceError(
            f"[migrations] extensions = {list(extensions)}: no installed {wanted} provides them all ({listed}); "
            f"install the extension (Debian/Ubuntu: apt-get install postgresql-{major or 'NN'}, which ships contrib) "
            "or point services.postgres_bin_dir at an installation that has it"
        )
    declared = [f"major {major}"] if major is not None else []
    declared += [f"extensions {', '.join(extensions)}"] if extensions else []
    return GatesPostgres(reachable(chosen), f"[migrations] declares {' and '.join(declared)}")
