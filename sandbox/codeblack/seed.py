"""The default config entries, inserted by the data step of migration ``9c4e1f2a3b54``.

Seeding from a migration (rather than from the world builder) means every database migrated to head, whether
a fresh test database or a staging restore, has the keys the config gates probe. The insert targets a frozen
description of ``config_entries`` as that revision created it, so later model changes cannot break the old
migration; ``op.bulk_insert`` works online and in ``--sql`` mode alike. Sensitive keys are seeded with a NULL
value on purpose: their values live only in ``CODEBLACK_SECRET_*`` variables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import sqlalchemy as sa
from alembic.operations import Operations

__all__ = [
    "CRITICAL_KEYS",
    "DEFAULT_CONFIG",
    "MAINTENANCE_KEY",
    "NORMAL_KEYS",
    "SENSITIVE_KEYS",
    "SeedEntry",
    "seed_config",
]

MAINTENANCE_KEY = "system.maintenance_mode"


@dataclass(frozen=True)
class SeedEntry:
    """One default config entry as the migration inserts it."""

    key: str
    value: str | None
    critical: bool
    sensitive: bool
    description: str


DEFAULT_CONFIG: tuple[SeedEntry, ...] = (
    SeedEntry("payments.auto_approve_limit", "500.00", True, False, "Orders up to this pay out unreviewed."),
    SeedEntry("risk.score_threshold", "0.72", True, False, "Applications scoring above this are declined."),
    SeedEntry("orders.max_amount", "5000.00", True, False, "Largest amount a single order may carry."),
    SeedEntry("ui.banner_text", "Welcome to CodeBlack", False, False, "Banner shown on the dashboard."),
    SeedEntry("support.email", "support@codeblack.example", False, False, "Where applicants write for help."),
    SeedEntry(MAINTENANCE_KEY, "false", False, False, "When true, every write endpoint answers 503."),
    SeedEntry("payments.api_secret", None, False, True, "Payment provider API secret (env only)."),
    SeedEntry("smtp.password", None, False, True, "SMTP relay password (env only)."),
    SeedEntry("jwt.secret", None, False, True, "JWT signing secret (env only)."),
)

CRITICAL_KEYS = tuple(entry.key for entry in DEFAULT_CONFIG if entry.critical)
SENSITIVE_KEYS = tuple(entry.key for entry in DEFAULT_CONFIG if entry.sensitive)
NORMAL_KEYS = tuple(entry.key for entry in DEFAULT_CONFIG if not (entry.critical or entry.sensitive))

# config_entries as revision 9c4e1f2a3b54 created it; updated_at and updated_by take their defaults.
_CONFIG_ENTRIES_AT_9C4E = sa.table(
    "config_entries",
    sa.column("key", sa.Text),
    sa.column("value", sa.Text),
    sa.column("critical", sa.Boolean),
    sa.column("sensitive", sa.Boolean),
    sa.column("description", sa.Text),
)


def seed_config(op: Operations) -> None:
    """Insert the default config entries through the running migration's operations.

    Args:
        op: The ``alembic.op`` proxy of the migration being run (online or ``--sql``).
    """
    op.bulk_insert(_CONFIG_ENTRIES_AT_9C4E, [asdict(entry) for entry in DEFAULT_CONFIG])
