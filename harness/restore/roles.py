"""Restore what a real recovery restores: the backup's roles, the owners of the dump's objects and their grants.

``backup postgres`` stores the cluster's roles beside each dump (``<key>.globals.sql``, ``pg_dumpall
--globals-only --no-role-passwords``, its sha256 and size in the dump's manifest). The drill downloads it,
verified, and treats it as untrusted text: it reads only role names, LOGIN and memberships from lines of the
shapes ``pg_dumpall`` writes (``CREATE ROLE x;``, ``ALTER ROLE x WITH ...;``, ``GRANT a TO b ...;``) and runs none
of it. It creates each role itself, without any power (NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
NOBYPASSRLS, NOLOGIN unless it is ``[app] database_role``), never grants a built-in ``pg_*`` role, and skips the
names staging already holds (its superuser ``postgres``, the restore role :data:`OWNER_ROLE`).

``pg_restore`` still runs as :data:`OWNER_ROLE`: each restored role is granted to it (``WITH INHERIT TRUE, SET
TRUE`` on PostgreSQL 16 and later), so it can give objects their owners and roles their grants, and nothing else.
Two things a superuser's restore does that this one cannot are made explicit:

* ``ALTER ... OWNER TO x`` needs ``x`` to hold CREATE on the object's schema (and on the database, for a schema),
  which production's owners usually hold through the database's ownership, not through a grant in the dump. The
  restored roles get CREATE on the database and on every schema for the restore only; the dump's own grants on
  schemas are restored afterwards, once those are revoked (:func:`pass_lists`).
* Objects owned by staging's superuser name (``postgres``, production's bootstrap superuser) cannot be given to
  it without superuser power: they stay owned by :data:`OWNER_ROLE`, the one refusal that is tolerated
  (:meth:`Roles.tolerated`), and the drill says how many.

A dump object whose owner the globals lack fails before the restore, naming the role; a grant to a missing role
fails the restore naming it (:func:`missing_role`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.restore.extensions import TocListing
from harness.services.postgres import OWNER_ROLE, PostgresServer
from harness.storage.download import download_object, verify_against
from harness.storage.manifest import GLOBALS_SUFFIX, BackupManifest

__all__ = [
    "GLOBALS_MAX_BYTES",
    "GlobalRoles",
    "Roles",
    "check_owners",
    "fetch_globals",
    "missing_role",
    "parse_globals",
    "pass_lists",
    "restore_roles",
]

log = logging.getLogger("harness.restore.roles")

GLOBALS_MAX_BYTES = 16 * 1024 * 1024
"""A globals file larger than this (as its manifest declares) is refused before it is downloaded."""

_IDENT = r'(?:"(?:[^"\n]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE_ROLE = re.compile(rf"^CREATE ROLE ({_IDENT});$")
_ALTER_ROLE = re.compile(
    rf"^ALTER ROLE ({_IDENT}) WITH ([A-Z ]+?)(?: CONNECTION LIMIT -?\d+)?(?: VALID UNTIL '[^']*')?;$"
)
_GRANT = re.compile(rf"^GRANT ({_IDENT}(?:, {_IDENT})*) TO ({_IDENT})(?: WITH [A-Z ,]+?)?(?: GRANTED BY {_IDENT})?;$")
_SCHEMA_ACL = re.compile(r"^\d+; \d+ \d+ ACL - SCHEMA ")
_DEFAULT_ACL = re.compile(r"^\d+; \d+ \d+ DEFAULT ACL ")
_REFUSED_OWNER = re.compile(r'must be (?:able to SET ROLE|member of role) "?([^"]+)"?\s*$')
_OWNER_TO = re.compile(rf"^Command was: ALTER .+ OWNER TO ({_IDENT});$")
_NO_ROLE = re.compile(r'role "((?:[^"]|"")+)" does not exist')


def _unquote(identifier: str) -> str:
    return identifier[1:-1].replace('""', '"') if identifier.startswith('"') else identifier


@dataclass(frozen=True)
class GlobalRoles:
    """What the drill reads from a globals file: role names (in order), who logs in, memberships (role, member)."""

    names: tuple[str, ...]
    login: frozenset[str]
    memberships: tuple[tuple[str, str], ...]
    ignored: int = 0


def parse_globals(text: str) -> GlobalRoles:
    """Read role names, LOGIN and memberships from ``pg_dumpall --globals-only`` output; ignore everything else.

    Only whole lines of the three shapes ``pg_dumpall`` writes count; attributes other than LOGIN, settings,
    tablespaces, psql meta-commands and any other SQL are skipped (counted in ``ignored``).
    """
    names: list[str] = []
    login: set[str] = set()
    memberships: list[tuple[str, str]] = []
    ignored = 0
    for line in text.splitlines():
        if not line.strip() or line.startswith("--"):
            continue
        if created := _CREATE_ROLE.match(line):
            name = _unquote(created[1])
            if name not in names:
                names.append(name)
        elif altered := _ALTER_ROLE.match(line):
            if "LOGIN" in altered[2].split():
                login.add(_unquote(altered[1]))
        elif granted := _GRANT.match(line):
            member = _unquote(granted[2])
            memberships += [(_unquote(role), member) for role in re.findall(_IDENT, granted[1])]
        else:
            ignored += 1
    return GlobalRoles(tuple(names), frozenset(login), tuple(memberships), ignored)


@dataclass
class Roles:
    """The roles restored into staging from a dump's globals, and what was left out.

    Attributes:
        source: the globals file's key.
        created: the roles created (each granted to :data:`OWNER_ROLE`).
        memberships: the memberships between them that were granted.
        skipped: one line per name or membership left out, and why.
        superusers: staging's superuser names; objects the dump gives them stay owned by :data:`OWNER_ROLE`.
        app_role: ``[app] database_role`` (empty: the app connects as :data:`OWNER_ROLE`).
        kept_by_restore_role: how many ownership changes to a superuser name were refused (and tolerated).
        all_kept_by_restore_role: every object of the dump is owned by a superuser name, so none changed owner.
    """

    source: str
    created: list[str] = field(default_factory=list)
    memberships: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    superusers: frozenset[str] = frozenset()
    app_role: str = ""
    kept_by_restore_role: int = 0
    all_kept_by_restore_role: bool = False
    _temporary: list[sql.Composed] = field(default_factory=list, repr=False)

    def tolerated(self, error: str, command: str) -> bool:
        """Whether a pg_restore error is an ownership change to a superuser name, refused to the restore role."""
        refused, owner_to = _REFUSED_OWNER.search(error), _OWNER_TO.match(command)
        ok = (refused is not None and owner_to is not None and refused[1] in self.superusers
              and _unquote(owner_to[1]) == refused[1])  # fmt: skip
        self.kept_by_restore_role += ok
        return ok

    def owned_by_superusers_only(self, toc: TocListing) -> bool:
        """Whether every entry of ``toc`` that has an owner names a superuser of staging (or the owner role).

        Such a dump keeps nothing to restore of its owners: each change to a superuser name is refused. The
        answer is kept for :meth:`describe`.
        """
        kept = {*self.superusers, OWNER_ROLE}
        owners = {_owner(line, [*kept, *self.created]) for line in toc.lines} - {""}
        self.all_kept_by_restore_role = bool(owners) and owners <= kept
        return self.all_kept_by_restore_role

    def describe(self) -> str:
        """One line for the drill record."""
        parts = [f"{len(self.created)} role(s) from {self.source} ({', '.join(self.created) or 'none'})",
                 f"{len(self.memberships)} membership(s)"]  # fmt: skip
        if self.app_role:
            parts.append(f"the app connects as {self.app_role}")
        if self.all_kept_by_restore_role:
            parts.append(f"every object is owned by {', '.join(sorted(self.superusers))} (staging's superuser names): "
                         f"restored without owners, all owned by {OWNER_ROLE}")  # fmt: skip
        elif self.kept_by_restore_role:
            parts.append(f"{self.kept_by_restore_role} object(s) of {', '.join(sorted(self.superusers))} owned by "
                         f"{OWNER_ROLE} (staging's superuser names)")  # fmt: skip
        if self.skipped:
            parts.append(f"left out: {'; '.join(self.skipped)}")
        return "; ".join(parts)

    def grant_create(self, server: PostgresServer, dbname: str, *, schemas: bool) -> None:
        """Let the restored roles own objects for the restore: CREATE on the database, or on its every schema."""
        with server.connect(dbname) as conn:
            if schemas:
                rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                                    "AND nspname <> 'information_schema'").fetchall()  # fmt: skip
                targets = [(sql.SQL("SCHEMA"), name, "has_schema_privilege") for (name,) in rows]
            else:
                targets = [(sql.SQL("DATABASE"), dbname, "has_database_privilege")]
            for kind, name, check in targets:
                for role in self.created:
                    held = conn.execute(sql.SQL("SELECT {}(%s, %s, 'CREATE')").format(sql.Identifier(check)),
                                        (role, name)).fetchone()  # fmt: skip
                    if held is not None and not held[0]:
                        grant = sql.SQL("CREATE ON {} {} TO {}").format(
                            kind, sql.Identifier(name), sql.Identifier(role)
                        )
                        conn.execute(sql.SQL("GRANT ") + grant)
                        self._temporary.append(_revoke(kind, name, role))

    def revoke_create(self, server: PostgresServer, dbname: str) -> None:
        """Take back what :meth:`grant_create` gave (before the dump's own grants on schemas are restored)."""
        with server.connect(dbname) as conn:
            for statement in self._temporary:
                conn.execute(statement)
        self._temporary.clear()


def _revoke(kind: sql.Composable, name: str, role: str) -> sql.Composed:
    return sql.SQL("REVOKE CREATE ON {} {} FROM {}").format(kind, sql.Identifier(name), sql.Identifier(role))


def fetch_globals(deployment: Deployment, dump: BackupManifest, directory: Path) -> tuple[GlobalRoles | None, str]:
    """The roles stored beside ``dump``, verified against its manifest; else ``None`` and why there are none.

    Raises:
        CheckFailed: the file differs from the manifest's sha256 or size, or is declared too large.
        HarnessError: the manifest records a globals file that storage does not hold.
    """
    key = dump.key + GLOBALS_SUFFIX
    if dump.globals is None:
        why = "has no manifest" if dump.tool.startswith("none") else "has no globals in its manifest"
        return None, (f"{dump.key} {why} (a dump taken by other tools, or before backup postgres stored roles): "
                      f"restored with --no-owner --no-privileges as {OWNER_ROLE}; owners and grants were not "
                      "verified")  # fmt: skip
    if dump.globals.size > GLOBALS_MAX_BYTES:
        raise CheckFailed(f"{key}: its manifest declares {dump.globals.size} bytes, more than roles take "
                          f"({GLOBALS_MAX_BYTES} at most); refused before download")  # fmt: skip
    described = dump.model_copy(update={"key": key, "sha256": dump.globals.sha256, "size": dump.globals.size})
    try:
        got = download_object(deployment.storage.client(), deployment.backup_bucket, key, directory)
    except HarnessError as exc:
        raise HarnessError(f"{dump.key}: its manifest records roles at {key}, which cannot be read: {exc}") from None
    verify_against(got, described)
    return parse_globals(got.path.read_text(encoding="utf-8", errors="replace")), ""


def restore_roles(server: PostgresServer, found: GlobalRoles, *, source: str, app_role: str = "") -> Roles:
    """Create the globals' roles on staging, powerless, and grant each to :data:`OWNER_ROLE`.

    Raises:
        CheckFailed: ``[app] database_role`` is not among the roles created (one line naming it).
    """
    restored = Roles(source, app_role=app_role)
    with server.connect() as conn:
        existing = dict(conn.execute("SELECT rolname, rolsuper FROM pg_roles").fetchall())
        restored.superusers = frozenset(name for name, superuser in existing.items() if superuser)
        for name in found.names:
            if name.startswith("pg_"):
                restored.skipped.append(f"{name} (a built-in role name)")
            elif name == OWNER_ROLE:
                restored.skipped.append(f"{name} (the drill's restore role has this name; its objects stay with it)")
            elif name in existing:
                restored.skipped.append(f"{name} (staging's own {'superuser' if existing[name] else 'role'})")
            else:
                login = sql.SQL("LOGIN" if name == app_role else "NOLOGIN")
                conn.execute(sql.SQL("CREATE ROLE {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                                     "INHERIT {}").format(sql.Identifier(name), login))  # fmt: skip
                restored.created.append(name)
        for role, member in found.memberships:
            _grant_membership(conn, restored, role, member)
        option = sql.SQL(" WITH INHERIT TRUE, SET TRUE" if conn.info.server_version >= 160000 else "")
        for name in restored.created:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(name), sql.Identifier(OWNER_ROLE)) + option)
    if app_role and app_role not in restored.created:
        raise CheckFailed(
            f"[app] database_role {app_role!r} is not a role of the backup's globals ({source}): the app could not "
            "connect after a real recovery; fix [app] database_role or back up the globals of production's cluster"
        )
    if restored.skipped:
        log.warning("roles left out of %s: %s", source, "; ".join(restored.skipped))
    return restored


def _grant_membership(conn: psycopg.Connection[Any], restored: Roles, role: str, member: str) -> None:
    if role not in restored.created or member not in restored.created:
        restored.skipped.append(f"GRANT {role} TO {member} (only memberships between restored roles)")
        return
    try:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(member)))
    except psycopg.Error as exc:  # e.g. a circular grant
        restored.skipped.append(f"GRANT {role} TO {member} ({str(exc).strip().splitlines()[0]})")
        return
    restored.memberships.append((role, member))


def _owner(line: str, known: Sequence[str]) -> str:
    """The owner a ``pg_restore --list`` line ends with: the longest known role it ends with, else its last word."""
    for name in sorted(known, key=len, reverse=True):
        if line.endswith(" " + name):
            return name
    return "" if line.endswith(" ") else line.rsplit(" ", 1)[-1]


def check_owners(server: PostgresServer, toc: TocListing, *, dump: str, source: str) -> None:
    """Refuse a dump whose objects are owned by a role staging does not hold (the globals lack it).

    Raises:
        CheckFailed: one line naming the role and one of its objects.
    """
    with server.connect() as conn:
        known = [row[0] for row in conn.execute("SELECT rolname FROM pg_roles")]
    for line in toc.lines:
        owner = _owner(line, known)
        if owner and owner not in known:
            what = " ".join(line.split(" ")[3:]).removesuffix(" " + owner)
            raise CheckFailed(
                f"{dump}: the dump's objects are owned by role {owner!r} (e.g. {what}), which the backup's globals "
                f"({source}) do not hold: a recovery would not restore their owner; back up the globals of the "
                "cluster the dump comes from"
            )


def pass_lists(toc: TocListing, roles: Roles) -> tuple[TocListing, TocListing]:
    """The restore's second pass (all but the schemas and their grants) and its third (the schemas' grants).

    Default privileges of a superuser name are left out: only a superuser can set them.
    """
    rest = toc  # the caller has taken the schemas (and extensions) out
    superusers = list(roles.superusers)
    dropped = [line for line in rest.lines if _DEFAULT_ACL.match(line) and _owner(line, superusers) in superusers]
    if dropped:
        roles.skipped.append(f"{len(dropped)} default privilege entr(y/ies) of {', '.join(superusers)}")
    second = tuple(line for line in rest.lines if not _SCHEMA_ACL.match(line) and line not in dropped)
    return TocListing(second), TocListing(tuple(line for line in rest.lines if _SCHEMA_ACL.match(line)))


def missing_role(cause: str, source: str) -> str:
    """A pg_restore error about a role that does not exist, as one line naming it (else ``cause`` unchanged)."""
    match = _NO_ROLE.search(cause)
    if match is None:
        return cause
    return (f"the dump grants to or is owned by role {match[1]!r}, which the backup's globals ({source}) do not hold "
            f"({cause})")  # fmt: skip
