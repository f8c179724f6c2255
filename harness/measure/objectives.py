"""RPO and RTO as measures against the plan's objectives, the numbers the cut-over verdict is decided on.

RPO is what a real incident would lose: the incident time minus the newest data the *restored* database
holds (its heartbeat when the target writes one, else the newest row of the critical tables); the backup's
age is reported beside it, because a fresh backup of stale data is still stale data. RTO is the incident
to health green. The cut-over verdict (GO only when every step passed and both objectives are met) is
decided from these measures by :func:`harness.records.decide`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from harness.config import DatabaseSettings, Objectives
from harness.measure.stopwatch import Stopwatch

__all__ = ["Measure", "NewestData", "newest_data", "rpo_measure", "rto_measure"]


@dataclass(frozen=True)
class Measure:
    """One measured number beside its objective (``value <= objective`` meets it)."""

    name: str
    value: float
    objective: float
    unit: str
    detail: str = ""

    @property
    def met(self) -> bool:
        """Whether the measure is within its objective."""
        return self.value <= self.objective

    def describe(self) -> str:
        """One line: ``RPO 2.10 h (objective 6 h, met): ...``."""
        state = "met" if self.met else "MISSED"
        text = f"{self.name} {self.value:.2f} {self.unit} (objective {self.objective:g} {self.unit}, {state})"
        return f"{text}: {self.detail}" if self.detail else text

    def as_dict(self) -> dict[str, Any]:
        """For the report."""
        return {**asdict(self), "met": self.met}


@dataclass(frozen=True)
class NewestData:
    """The newest moment the restored database holds, and what it was read from."""

    moment: datetime | None
    basis: str


def newest_data(conn: psycopg.Connection[Any], database: DatabaseSettings) -> NewestData:
    """Read the newest data of a restored database: the heartbeat when configured, else the critical tables."""
    if database.heartbeat_table:
        query = sql.SQL("SELECT max({}) FROM {}").format(
            sql.Identifier(database.heartbeat_column), sql.Identifier(database.heartbeat_table)
        )
        row = conn.execute(query).fetchone()
        basis = f"heartbeat {database.heartbeat_table}.{database.heartbeat_column}"
        return NewestData(row[0] if row else None, basis)
    newest: datetime | None = None
    for table in database.critical_tables:
        query = sql.SQL("SELECT max({}) FROM {}").format(
            sql.Identifier(database.time_column(table)), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
        if row and row[0] is not None and (newest is None or row[0] > newest):
            newest = row[0]
    return NewestData(newest, f"newest row of {', '.join(database.critical_tables)} (no heartbeat configured)")


def rpo_measure(incident: datetime, newest: NewestData, backup_taken_at: datetime, objectives: Objectives) -> Measure:
    """Incident minus the newest restored data, in hours; the backup's age and the basis in the detail.

    A database with no data at all loses everything: its RPO is infinite and the objective is missed.
    """
    age_h = (incident - backup_taken_at).total_seconds() / 3600
    if newest.moment is None:
        return Measure("RPO", float("inf"), objectives.rpo_hours, "h", f"no data found ({newest.basis})")
    hours = (incident - newest.moment).total_seconds() / 3600
    detail = f"newest data {newest.moment.isoformat()} from {newest.basis}; backup age {age_h:.2f} h"
    return Measure("RPO", hours, objectives.rpo_hours, "h", detail)


def rto_measure(stopwatch: Stopwatch, objectives: Objectives) -> Measure:
    """Incident to health green, in minutes, with the phases in the detail."""
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stopwatch.phases.items())
    return Measure("RTO", stopwatch.rto.total_seconds() / 60, objectives.rto_minutes, "min", phases)
