"""The extensions a dump needs, checked against the staging server before the restore, and made when they must be.

``pg_restore --list`` names every ``EXTENSION`` entry of a dump. Each must be available on the staging server
(``pg_available_extensions``: the host's installed files); a missing one is a setup error naming the extension,
the server that lacks it and how to provide it, before anything is restored.

The restore runs as :data:`~harness.services.postgres.OWNER_ROLE`, which has no superuser power, so it can
create only *trusted* extensions (``uuid-ossp``, ``pgcrypto``, ``hstore``, ``citext``... since PostgreSQL 13).
When the dump needs an untrusted one, the restore goes in two passes: ``pg_restore`` restores the dump's
schemas, the harness (superuser) creates every extension of the dump in the schema the dump names, and
``pg_restore`` restores the rest without those extensions and their comments. What the harness runs is its own
``CREATE EXTENSION``, never the dump's SQL, and an extension's code comes from the host's files, not from the
dump; the dump only chooses which installed extension, by name, and into which schema, which must still be
empty (:func:`create_extensions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from harness.errors import CheckFailed, ServiceError
from harness.services.base import run_tool
from harness.services.pgversions import StagingPostgres
from harness.services.postgres import PostgresServer

__all__ = ["Extension", "TocListing", "create_extensions", "needed_extensions", "prepare_extensions", "read_toc"]

_EXTENSION = re.compile(r"^\d+; \d+ \d+ EXTENSION - (\S+)")
_SCHEMA = re.compile(r"^\d+; \d+ \d+ SCHEMA ")
_EXTENSION_COMMENT = re.compile(r"^\d+; \d+ \d+ COMMENT - EXTENSION ")
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE = re.compile(rf"^CREATE EXTENSION IF NOT EXISTS ({_IDENT}) WITH SCHEMA ({_IDENT});$", re.MULTILINE)


def _unquote(identifier: str) -> str:
    return identifier[1:-1].replace('""', '"') if identifier.startswith('"') else identifier


@dataclass(frozen=True)
class Extension:
    """An extension the dump creates, and the schema it goes into."""

    name: str
    schema: str = ""


@dataclass(frozen=True)
class TocListing:
    """The dump's table of contents as ``pg_restore --list`` prints it (its entries, comments left out)."""

    lines: tuple[str, ...]

    @property
    def entry_ids(self) -> set[str]:
        """The dump ids of the entries (``pg_restore --verbose`` names them when it processes each)."""
        return {line.split(";", 1)[0] for line in self.lines}

    def extensions(self) -> list[str]:
        """The extensions the dump creates, in the dump's order."""
        return [match[1] for line in self.lines if (match := _EXTENSION.match(line))]

    def schemas_only(self) -> TocListing:
        """The first pass of a two-pass restore: the dump's schemas."""
        return TocListing(tuple(line for line in self.lines if _SCHEMA.match(line)))

    def without_schemas(self) -> TocListing:
        """Everything but the schemas (the restore of owners and grants restores them first)."""
        return TocListing(tuple(line for line in self.lines if not _SCHEMA.match(line)))

    def without_schemas_and_extensions(self) -> TocListing:
        """The second pass: everything but the schemas, the extensions and the extensions' comments."""
        skip = (_SCHEMA, _EXTENSION, _EXTENSION_COMMENT)
        return TocListing(tuple(line for line in self.lines if not any(p.match(line) for p in skip)))

    def write(self, path: Path) -> Path:
        """Save as a ``pg_restore --use-list`` file."""
        path.write_text("".join(f"{line}\n" for line in self.lines))
        return path


def read_toc(pg_restore: Path, dump: Path, what: str) -> TocListing | None:
    """The dump's TOC, or ``None`` when ``pg_restore`` cannot read it (the restore itself then says why)."""
    try:
        listing = run_tool([pg_restore, "--list", dump], what=what, timeout=600)
    except ServiceError:
        return None
    lines = listing.stdout.decode(errors="replace").splitlines()
    return TocListing(tuple(line for line in lines if line and not line.startswith(";")))


def needed_extensions(server: PostgresServer, dump: Path, toc: TocListing) -> list[Extension]:
    """The dump's extensions with their schemas, read from the ``CREATE EXTENSION`` lines pg_restore prints.

    ``server``'s own ``pg_restore`` reads them (the list file beside the dump, shared with it like the dump).
    """
    listing = TocListing(tuple(line for line in toc.lines if _EXTENSION.match(line)))
    only = server.share(listing.write(dump.parent / "extensions.list"))
    out = run_tool([server.binaries.tool("pg_restore"), "--use-list", only, "--file", "-", dump],
                   what="listing the dump's extensions", timeout=600)  # fmt: skip
    schemas = {_unquote(m[1]): _unquote(m[2]) for m in _CREATE.finditer(out.stdout.decode(errors="replace"))}
    return [Extension(name, schemas.get(name, "")) for name in toc.extensions()]


def _provide(name: str, chosen: StagingPostgres) -> str:
    major = chosen.binaries.major
    return (
        f"the dump needs extension {name}, which PostgreSQL {chosen.binaries.version} ({chosen.binaries.source}) "
        f"lacks; install it for PostgreSQL {major} (Debian/Ubuntu: apt-get install postgresql-contrib-{major} for "
        f"a contrib module, postgresql-{major}-<name> for others) or set services.postgres_bin_dir to a "
        f"PostgreSQL {major} that has it"
    )


def prepare_extensions(server: PostgresServer, dbname: str, names: list[str], chosen: StagingPostgres) -> list[str]:
    """Check the dump's extensions against the staging server; return those only a superuser can create.

    Raises:
        ServiceError: an extension is not available on the server (one line per the first missing one,
            naming it and how to provide it): the drill could not run, nothing is wrong with the target.
    """
    if not names:
        return []
    with server.admin_connect(dbname) as conn:
        rows = conn.execute(
            "SELECT e.name, v.superuser AND NOT v.trusted FROM pg_available_extensions e "
            "JOIN pg_available_extension_versions v ON v.name = e.name AND v.version = e.default_version "
            "WHERE e.name = ANY(%s)",
            (names,),
        ).fetchall()
    available = dict(rows)
    missing = [name for name in names if name not in available]
    if missing:
        more = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise ServiceError(_provide(missing[0], chosen) + more)
    return [name for name in names if available[name]]


_PLANTED = """
SELECT o.kind || ' ' || n.nspname || '.' || o.name FROM (
    SELECT 'relation' AS kind, relnamespace AS ns, relname::text AS name FROM pg_class
    UNION ALL SELECT 'function', pronamespace, proname::text FROM pg_proc
    UNION ALL SELECT 'type', typnamespace, typname::text FROM pg_type
    UNION ALL SELECT 'operator', oprnamespace, oprname::text FROM pg_operator
    UNION ALL SELECT 'collation', collnamespace, collname::text FROM pg_collation
    UNION ALL SELECT 'conversion', connamespace, conname::text FROM pg_conversion
) o JOIN pg_namespace n ON n.oid = o.ns
WHERE n.nspname = ANY(%s) AND n.nspname <> 'pg_catalog'
ORDER BY 1 LIMIT 1
"""


def create_extensions(server: PostgresServer, dbname: str, extensions: list[Extension]) -> None:
    """Create the dump's extensions as superuser, in the dump's order and schemas (the first pass made them).

    An extension's script runs with its schema first on the search path, so a function or operator planted
    there could run as superuser. The first pass restored only the dump's schemas, so those are empty unless a
    crafted entry did more than create a schema: then nothing is created.

    Raises:
        CheckFailed: a schema the extensions go into already holds an object (named).
    """
    with server.admin_connect(dbname) as conn:  # the first pass ran as the owner, who may set database settings
        installed = {row[0] for row in conn.execute("SELECT extname FROM pg_catalog.pg_extension")}
        wanted = [extension for extension in extensions if extension.name not in installed]
        planted = conn.execute(_PLANTED, ([extension.schema for extension in wanted],)).fetchone()
        if planted is not None:
            raise CheckFailed(
                f"the dump's schemas pass left {planted[0]} before its extensions were created: a schema entry "
                "did more than create a schema, so the harness does not create extensions there as superuser"
            )
        for extension in wanted:
            statement = sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension.name))
            # The session's search path is the catalog's: an extension must be told its schema.
            statement += sql.SQL(" WITH SCHEMA {}").format(sql.Identifier(extension.schema or "public"))
            conn.execute(statement)
