"""RPO and RTO as measures against the plan's objectives, the numbers the cut-over verdict is decided on.

RPO is what a real incident would lose: the incident time minus the newest data the *restored* database
holds: its heartbeat when one is declared, else the newest row of the critical tables' declared time columns,
else (nothing declared to read it from) the backup's own time; the basis is named in the measure, and the
backup's age is reported beside it, because a fresh backup of stale data is still stale data. RTO is the
incident to the last step the target has: its app's health green, else the restored database verified.
The cut-over verdict (GO only when every step passed and both objectives are met) is decided
from these measures by :func:`harness.records.decide`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis

from harness.config import DatabaseSettings, Objectives
from harness.counting import count_specs, heartbeat_spec, newest_time
from harness.measure.stopwatch import Stopwatch
from harness.storage.manifest import TableStats

__all__ = [
    "Measure",
    "NewestData",
    "newest_data",
    "redis_heartbeat",
    "redis_rpo",
    "rpo_measure",
    "rpo_name",
    "rto_measure",
    "store_rpo",
]


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

    def row(self) -> list[Any]:
        """One row of an evidence table: name, value, objective, unit, met, detail."""
        return [self.name, round(self.value, 3), self.objective, self.unit, self.met, self.detail]

    def as_dict(self) -> dict[str, Any]:
        """For the report."""
        return {**asdict(self), "met": self.met}


@dataclass(frozen=True)
class NewestData:
    """The newest moment the restored database holds, and what it was read from.

    ``from_backup``: nothing is declared to read it from, so the backup's time stands for it.
    """

    moment: datetime | None
    basis: str
    from_backup: bool = False


BACKUP_BASIS = "the backup's time (no heartbeat_table and no time column declared in [database])"


def newest_data(
    conn: psycopg.Connection[Any], database: DatabaseSettings, counted: Mapping[str, TableStats] | None = None
) -> NewestData:
    """Read the newest data of a restored database: the heartbeat when configured, else the critical tables' times.

    Only tables with a time column count; naive timestamps and dates are read as :mod:`harness.counting` says.
    ``counted``: the tables :func:`harness.counting.count_tables` just counted, whose newest times were read in
    the same scan and the same way; a table found there is not scanned again.

    Raises:
        HarnessError: a configured table or time column is missing or not a time (names the key).
    """
    zone = database.time_zone
    beat = heartbeat_spec(database)
    if beat is not None:
        return NewestData(
            newest_time(conn, beat, zone), f"heartbeat {database.heartbeat_table}.{database.heartbeat_column}"
        )
    newest: datetime | None = None
    timed = [spec for spec in count_specs(conn, database, critical_only=True) if spec.time_column]
    for spec in timed:
        known = (counted or {}).get(spec.table.key)
        moment = known.newest if known is not None else newest_time(conn, spec, zone)
        if moment is not None and (newest is None or moment > newest):
            newest = moment
    if not timed:
        return NewestData(None, BACKUP_BASIS, from_backup=True)
    return NewestData(newest, f"newest row of {', '.join(s.table.key for s in timed)} (no heartbeat configured)")


def store_rpo(
    name: str, incident: datetime, newest: NewestData, backup_taken_at: datetime, objective_hours: float
) -> Measure:
    """One store's RPO in hours: incident minus the newest data it holds, to the second in the detail.

    Every store's RPO is in the same unit, so PostgreSQL's and Redis's can be read side by side. A store with no
    data at all loses everything: its RPO is infinite and the objective is missed.
    """
    age_h = (incident - backup_taken_at).total_seconds() / 3600
    if newest.from_backup:
        return Measure(name, age_h, objective_hours, "h", f"backup age {age_h:.2f} h from {newest.basis}")
    if newest.moment is None:
        return Measure(name, float("inf"), objective_hours, "h", f"no data found ({newest.basis})")
    seconds = (incident - newest.moment).total_seconds()
    detail = f"newest data {newest.moment.isoformat()} from {newest.basis} ({seconds:.0f} s); backup age {age_h:.2f} h"
    return Measure(name, seconds / 3600, objective_hours, "h", detail)


def rpo_name(database: str = "") -> str:
    """The name of a database's RPO measure: ``RPO``, or ``RPO <name>`` in a drill of several (``[[databases]]``)."""
    return f"RPO {database}" if database else "RPO"


def rpo_measure(incident: datetime, newest: NewestData, backup_taken_at: datetime, objectives: Objectives) -> Measure:
    """The database's RPO (the plan's ``RPO``): incident minus the newest restored data, in hours."""
    return store_rpo("RPO", incident, newest, backup_taken_at, objectives.rpo_hours)


def redis_heartbeat(client: redis.Redis, key: str) -> NewestData:
    """The newest heartbeat a restored Redis holds: the ISO 8601 time stored under ``key`` (``None`` if absent)."""
    raw = client.get(key)
    basis = f"Redis heartbeat key {key}"
    if raw is None:
        return NewestData(None, basis)
    try:
        moment = datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError:
        return NewestData(None, f"{basis} (not an ISO 8601 time: {raw!r})")
    return NewestData(moment if moment.tzinfo else moment.replace(tzinfo=UTC), basis)


def redis_rpo(incident: datetime, newest: NewestData, backup_taken_at: datetime, objectives: Objectives) -> Measure:
    """Redis's RPO in hours from its newest heartbeat, held to the age its daily copies may reach.

    The plan takes Redis copies daily, so its objective is ``objectives.max_rdb_save_age_hours``, not the
    database's RPO; the measure says which in its detail.
    """
    measure = store_rpo("RPO Redis", incident, newest, backup_taken_at, objectives.max_rdb_save_age_hours)
    return replace(measure, detail=f"{measure.detail}; objective [objectives] max_rdb_save_age_hours")


def rto_measure(stopwatch: Stopwatch, objectives: Objectives, stopped_at: str = "") -> Measure:
    """Incident to the last applicable step, in minutes; the step (``stopped_at``) and the phases in the detail."""
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stopwatch.phases.items())
    detail = f"stopped at {stopped_at}; {phases}" if stopped_at else phases
    return Measure("RTO", stopwatch.rto.total_seconds() / 60, objectives.rto_minutes, "min", detail)
