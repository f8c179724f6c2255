"""The audit gate: every config change the drill made has its row in the audit table, and no secret leaks.

The plan says config changes are audited in a table (``[database] audit_table``). The API's own history
endpoint could lie, so the rows are read straight from the database of the staging copy the app runs on. The
drill notes the highest row id before it changes anything (:meth:`AuditTrail.watermark`), records the events it
caused (:class:`AuditEvent`) and then demands one row per event, with actor, key, time and status. Values of
sensitive keys are planted in the app's environment (:func:`plant_secrets`, in the variables named by
``[app] secret_env_prefix``) so that their absence from every row and every response can be proven by
searching for them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from harness.app.client import Exchange
from harness.config import DrillConfig
from harness.errors import CheckFailed, HarnessError
from harness.redact import register_secret

__all__ = [
    "AuditEvent",
    "AuditTrail",
    "check_audit_trail",
    "check_no_secret_leaks",
    "plant_secrets",
    "secret_env",
    "secret_env_name",
]

_AUDIT_RULE = "rule: every config change is audited in {table} with actor, key, time and status"
_SECRET_RULE = "rule: values of sensitive keys stay in the secret manager and never appear in responses or audit rows"
_NOUNS = {
    "proposed": "proposal",
    "approved": "approval",
    "rejected": "rejection",
    "applied": "applied change",
    "refused": "refusal",
}


@dataclass(frozen=True)
class AuditEvent:
    """A config event the drill caused and expects to find audited."""

    action: str
    key: str
    actor: str
    change_id: int | None = None

    def describe(self) -> str:
        """E.g. "the approval of change 12 to 'risk.score_threshold' by 'ops-bob'"."""
        change = f" of change {self.change_id}" if self.change_id is not None else ""
        return f"the {_NOUNS.get(self.action, self.action)}{change} to {self.key!r} by {self.actor!r}"

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Whether an audit row records this event."""
        same = (row.get("action"), row.get("config_key"), row.get("actor")) == (self.action, self.key, self.actor)
        return same and (self.change_id is None or row.get("change_id") == self.change_id)


def secret_env_name(prefix: str, key: str) -> str:
    """The variable holding a sensitive key's value: ``prefix`` and the key, e.g. ``APP_SECRET_JWT_SECRET``."""
    return prefix + key.upper().replace(".", "_").replace("-", "_")


def plant_secrets(keys: Iterable[str]) -> dict[str, str]:
    """Fresh, unmistakable values for sensitive keys, registered for redaction (see :func:`secret_env`).

    Returns:
        Key → value; a run's values never repeat, so a hit can only come from this run's app.
    """
    return {key: register_secret(f"drill-secret-{secrets.token_hex(12)}") for key in keys}


def secret_env(planted: Mapping[str, str], config: DrillConfig) -> dict[str, str]:
    """The app's environment variables that carry the planted values (named by ``[app] secret_env_prefix``).

    Raises:
        ConfigError: values are to be planted but ``[app] secret_env_prefix`` is not set.
    """
    if not planted:
        return {}
    prefix = str(config.required("app.secret_env_prefix", "the prefix of the variables holding sensitive keys"))
    return {secret_env_name(prefix, key): value for key, value in planted.items()}


class AuditTrail:
    """Reads the audit table of the staging copy (read only: the drill only ever SELECTs here)."""

    def __init__(self, dsn: str, table: str) -> None:
        """Remember where the staging copy's audit table is; connections are short-lived, one per read."""
        self.dsn = dsn
        self.table = table

    def _select(self, query: sql.Composed, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        try:
            with psycopg.connect(self.dsn, connect_timeout=5, row_factory=dict_row) as conn:
                return list(conn.execute(query, params))
        except psycopg.Error as exc:
            raise HarnessError(f"cannot read {self.table} of the staging copy: {str(exc).strip()}") from None

    def watermark(self) -> int:
        """The highest row id now: rows above it were written after this moment."""
        rows = self._select(sql.SQL("SELECT coalesce(max(id), 0) AS top FROM {}").format(sql.Identifier(self.table)))
        return int(rows[0]["top"])

    def rows_since(self, watermark: int) -> list[dict[str, Any]]:
        """Every row written after ``watermark``, oldest first."""
        query = sql.SQL("SELECT * FROM {} WHERE id > %s ORDER BY id").format(sql.Identifier(self.table))
        return self._select(query, (watermark,))


def check_audit_trail(trail: AuditTrail, watermark: int, events: Iterable[AuditEvent]) -> list[dict[str, Any]]:
    """Demand one complete audit row per event, among the rows written since ``watermark``.

    Returns:
        The rows found (the evidence), oldest first.

    Raises:
        CheckFailed: an event has no row, or its row lacks a time or a status; the message names the key.
    """
    rows = trail.rows_since(watermark)
    for event in events:
        row = next((row for row in rows if event.matches(row)), None)
        if row is None:
            raise CheckFailed(
                f"{trail.table} has no row for {event.describe()} ({len(rows)} rows written during the drill); "
                + _AUDIT_RULE.format(table=trail.table)
            )
        missing = [name for name in ("created_at", "status") if not row.get(name)]
        if missing or not isinstance(row["created_at"], datetime):
            raise CheckFailed(
                f"{trail.table} row {row.get('id')} for {event.describe()} has no {' or '.join(missing or ['time'])}; "
                + _AUDIT_RULE.format(table=trail.table)
            )
    return rows


def check_no_secret_leaks(
    sensitive_values: Iterable[tuple[str, str]],
    exchanges: Iterable[Exchange],
    rows: Iterable[Mapping[str, Any]],
    table: str,
) -> int:
    """Search every response and every audit row for the values of sensitive keys.

    Args:
        sensitive_values: (sensitive key, a value it holds or was offered: planted or attempted) pairs.
        exchanges: the responses the drill received.
        rows: the audit rows the drill read.
        table: the audit table they come from (messages name it).

    Returns:
        How many places were searched.

    Raises:
        CheckFailed: a value was found; the message names the key and where, never the value.
    """
    places = [(exchange.request, exchange.text() + str(dict(exchange.headers))) for exchange in exchanges]
    places += [(f"{table} row {row.get('id')}", " ".join(map(str, row.values()))) for row in rows]
    for key, value in sensitive_values:
        for where, text in places:
            if value and value in text:
                raise CheckFailed(f"the value of sensitive key {key!r} appears in {where}; {_SECRET_RULE}")
    return len(places)
