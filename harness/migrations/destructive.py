"""The Rollback policy's second half: destructive migrations need a fresh full backup checkpoint.

A revision is destructive when applying it can lose data: it drops a table or a column, narrows a column's
type, truncates, or deletes or updates every row. Each revision's ``upgrade()`` runs once in Alembic's offline
mode (a ``MigrationContext`` with ``as_sql``) under an ``Operations`` whose ``invoke`` records each column type
change; that runs the target's code, so it happens in the isolated migration child
(:meth:`~harness.migrations.isolation.MigrationChild.render`), which returns the SQL and the type changes as
plain data. The SQL is scanned statement by statement (this also sees ``op.execute``), and a type change is
judged from its recorded ``existing_type`` against the new one (:class:`ColumnType`). A revision whose
``upgrade()`` needs a live connection cannot be judged offline and counts as destructive: it too waits for a
fresh checkpoint (or a waiver).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from harness.config import Waiver
from harness.errors import CheckFailed
from harness.migrations.project import MigrationProject
from harness.migrations.waivers import DESTRUCTIVE, NO_WAIVERS, Waivers

__all__ = [
    "Checkpoint",
    "ColumnType",
    "DestructiveOperation",
    "check_checkpoint",
    "destructive_revisions",
    "find_destructive",
    "judgement",
    "narrowing",
]


@dataclass(frozen=True)
class DestructiveOperation:
    """One statement of one revision that can lose data."""

    HEADER: ClassVar[list[str]] = ["revision", "statement", "why it can lose data"]

    revision: str
    statement: str
    reason: str
    file: str = ""

    @property
    def named(self) -> str:
        """The revision with its file, as messages name it."""
        return f"{self.revision} ({self.file})" if self.file else self.revision

    def row(self) -> list[str]:
        """A row for the report's table."""
        return [self.revision, self.statement, self.reason]


@dataclass(frozen=True)
class Checkpoint:
    """The newest full backup the destructive migration could be undone from."""

    key: str
    taken_at: datetime


_DESTRUCTIVE_SQL: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE | re.DOTALL), reason)
    for pattern, reason in (
        (r"^DROP TABLE\b", "drops a table and every row in it"),
        (r"^ALTER TABLE\b.*\bDROP COLUMN\b", "drops a column and its values"),
        (r"^TRUNCATE\b", "deletes every row"),
        (r"^DELETE FROM\b(?!.*\bWHERE\b)", "deletes every row (DELETE without WHERE)"),
        (r"^UPDATE\b(?!.*\bWHERE\b)", "overwrites every row (UPDATE without WHERE)"),
        (r"^DROP (SCHEMA|DATABASE)\b", "drops a schema or database with its data"),
    )
)
_ALTER_TYPE = re.compile(r"^ALTER TABLE\s+(?:ONLY\s+)?(\S+)\s+ALTER COLUMN\s+(\S+)\s+TYPE\b", re.IGNORECASE)
_UNRENDERABLE = "cannot run in offline mode, so it cannot be shown not to lose data"
_RAW_TYPE_CHANGE = "changes a column's type in raw SQL, so narrowing cannot be ruled out"
_INTEGER_RANK = (("SmallInteger", 1), ("BigInteger", 3), ("Integer", 2))  # subclasses before their base


@dataclass(frozen=True)
class ColumnType:
    """A column type as the migration child describes it (:func:`harness.migrations.child.describe_type`)."""

    sql: str
    kinds: tuple[str, ...]
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @classmethod
    def of(cls, described: dict[str, Any] | None) -> ColumnType | None:
        """The child's plain description, or ``None`` (no ``existing_type`` was given)."""
        if described is None:
            return None
        return cls(str(described["sql"]), tuple(described["kinds"]), described["length"], described["precision"],
                   described["scale"])  # fmt: skip

    def __str__(self) -> str:
        return self.sql

    def integer_rank(self) -> int | None:
        """1, 2, 3 for SMALLINT, INTEGER, BIGINT; ``None`` for a type that is no integer."""
        return next((rank for kind, rank in _INTEGER_RANK if kind in self.kinds), None)


def narrowing(existing: ColumnType | None, new: ColumnType) -> str | None:
    """Why changing ``existing`` to ``new`` can lose or refuse data, or ``None`` when it only widens."""
    if existing is None:
        return "changes a column's type without an existing_type, so narrowing cannot be ruled out"
    old_rank, new_rank = existing.integer_rank(), new.integer_rank()
    if old_rank is not None and new_rank is not None:
        return f"narrows {existing} to {new}" if new_rank < old_rank else None
    if "String" in existing.kinds and "String" in new.kinds:
        if new.length is not None and (existing.length is None or new.length < existing.length):
            return f"narrows {existing} to {new}: longer values fail or are cut"
        return None
    if "Numeric" in existing.kinds and "Numeric" in new.kinds:
        shrinks = any(
            after is not None and (before is None or after < before)
            for before, after in ((existing.precision, new.precision), (existing.scale, new.scale))
        )
        return f"narrows {existing} to {new}" if shrinks else None
    if existing.kinds[0] == new.kinds[0]:
        return None
    return f"converts {existing} to {new}: values that do not convert are refused or changed"


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [" ".join(part.split()) for part in "\n".join(lines).split(";") if part.strip()]


def _judge(rendered: dict[str, Any]) -> list[DestructiveOperation]:
    """The destructive statements of one revision as the migration child rendered it."""
    revision, file = rendered["revision"], rendered["file"]
    found: list[DestructiveOperation] = []
    if rendered["unrenderable"] is not None:
        reason = f"{_UNRENDERABLE} ({rendered['unrenderable']})"
        found.append(DestructiveOperation(revision, "upgrade()", reason, file))
    alters = {(alter["table"], alter["column"]): alter for alter in rendered["alters"]}
    for statement in _statements(rendered["sql"]):
        reasons = [reason for pattern, reason in _DESTRUCTIVE_SQL if pattern.search(statement)]
        altered = _ALTER_TYPE.search(statement)
        if altered:
            table, column = (name.strip('"').rpartition(".")[2] for name in altered.groups())
            alter = alters.get((table, column))
            new = ColumnType.of(alter["new"]) if alter else None
            why = narrowing(ColumnType.of(alter["existing"]), new) if alter and new else _RAW_TYPE_CHANGE
            reasons += [why] if why else []
        found += [DestructiveOperation(revision, statement, reason, file) for reason in reasons]
    return found


def find_destructive(project: MigrationProject, revisions: Iterable[str]) -> list[DestructiveOperation]:
    """Every statement of ``revisions`` that can lose data, in revision order (rendered in the migration child)."""
    wanted = list(revisions)
    if not wanted:
        return []
    with project.child() as child:
        rendered = child.render(wanted)
    return [operation for revision in rendered for operation in _judge(revision)]


def judgement(
    found: list[DestructiveOperation], checkpoint: Checkpoint | None, *, now: datetime, backups: bool = True
) -> list[str]:
    """How each destructive revision is judged, for the report: the checkpoint found and its age, or why none."""
    if checkpoint is not None:
        age = f"{(now - checkpoint.taken_at).total_seconds() / 3600:.1f} h old"
        basis = f"checkpoint {checkpoint.key} taken {checkpoint.taken_at.isoformat()}, {age}"
    else:
        basis = "no full backup checkpoint found" if backups else "no backup configured for this target"
    return [f"revision {revision}: destructive; {basis}" for revision in dict.fromkeys(op.revision for op in found)]


def destructive_revisions(project: MigrationProject, revisions: Iterable[str]) -> set[str]:
    """The revisions with at least one destructive operation (the Rollback policy does not ask them to reverse)."""
    return {operation.revision for operation in find_destructive(project, revisions)}


def check_checkpoint(
    found: list[DestructiveOperation],
    checkpoint: Checkpoint | None,
    *,
    max_age_hours: float,
    now: datetime,
    waivers: Waivers = NO_WAIVERS,
    backups: bool = True,
) -> list[Waiver]:
    """A destructive pending revision passes only after a full backup newer than ``max_age_hours``.

    ``backups`` is false for a target that configures no backup storage: a destructive revision then fails
    unless waived, saying so.

    Returns:
        The waivers (rule ``destructive-checkpoint``, subject the revision) that excused a revision.

    Raises:
        CheckFailed: naming the revision, the operation and the checkpoint's age (or that there is none).
    """
    found, used = waivers.split(DESTRUCTIVE, found, lambda operation: operation.revision)
    if not found:
        return used
    first = found[0]
    subject = f"revision {first.named}: {first.statement!r} {first.reason}"
    if checkpoint is None and not backups:
        raise CheckFailed(
            f"{subject}, and this target configures no backup ([storage] is not in its drill.toml), so no full "
            "backup checkpoint can be shown; the plan requires one before a destructive migration: take one, or "
            f'waive it ([[waivers]] rule = "{DESTRUCTIVE}", subject = "{first.revision}", with approver and reason)'
        )
    if checkpoint is None:
        raise CheckFailed(
            f"{subject}, and there is no full backup checkpoint at all; the plan requires one newer than "
            f"{max_age_hours:g} h before a destructive migration ([migrations] checkpoint_max_age_hours)"
        )
    age_hours = (now - checkpoint.taken_at).total_seconds() / 3600
    if age_hours > max_age_hours:
        raise CheckFailed(
            f"{subject}, and the newest full backup checkpoint ({checkpoint.key}) is {age_hours:.1f} h old, "
            f"older than the {max_age_hours:g} h allowed ([migrations] checkpoint_max_age_hours): take a backup first"
        )
    return used
