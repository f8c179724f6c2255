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

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis

from harness.config import DatabaseSettings, Objectives
from harness.counting import count_specs, heartbeat_spec, newest_time
from harness.measure.stopwatch import Stopwatch

__all__ = ["Measure", "NewestData", "data_loss", "newest_data", "redis_heartbeat", "rpo_measure", "rto_measure"]


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


def newest_data(conn: psycopg.Connection[Any], database: DatabaseSettings) -> NewestData:
    """Read the newest data of a restored database: the heartbeat when configured, else the critical tables' times.

    Only tables with a time column count; naive timestamps and dates are read as :mod:`harness.counting` says.

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
        moment = newest_time(conn, spec, zone)
        if moment is not None and (newest is None or moment > newest):
            newest = moment
    if not timed:
        return NewestData(None, BACKUP_BASIS, from_backup=True)
    return NewestData(newest, f"newest row of {', '.join(s.table.key for s in timed)} (no heartbeat configured)")


def rpo_measure(incident: datetime, newest: NewestData, backup_taken_at: datetime, objectives: Objectives) -> Measure:
    """Incident minus the newest restored data, in hours; the backup's age and the basis in the detail.

    A database with no data at all loses everything: its RPO is infinite and the objective is missed.
    """
    age_h = (incident - backup_taken_at).total_seconds() / 3600
    if newest.from_backup:
        return Measure("RPO", age_h, objectives.rpo_hours, "h", f"backup age {age_h:.2f} h from {newest.basis}")
    if newest.moment is None:
        return Measure("RPO", float("inf"), objectives.rpo_hours, "h", f"no data found ({newest.basis})")
    hours = (incident - newest.moment).total_seconds() / 3600
    detail = f"newest data {newest.moment.isoformat()} from {newest.basis}; backup age {age_h:.2f} h"
    return Measure("RPO", hours, objectives.rpo_hours, "h", detail)


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


def data_loss(store: str, incident: datetime, newest: NewestData, backup_taken_at: datetime, hours: float) -> Measure:
    """The data-loss window of one store to the second: incident minus its newest heartbeat (or newest row).

    Args:
        store: the store's name in the report.
        incident: the drill's incident time.
        newest: the newest heartbeat (or row) the restored store holds.
        backup_taken_at: when the restored backup was taken (its age goes beside the window).
        hours: the store's objective: the RPO for PostgreSQL; for Redis, whose copies the plan takes daily,
            ``objectives.max_rdb_save_age_hours``.
    """
    objective = hours * 3600
    age = f"backup age {(incident - backup_taken_at).total_seconds():.0f} s"
    if newest.from_backup:
        seconds = (incident - backup_taken_at).total_seconds()
        return Measure(f"data loss {store}", seconds, objective, "s", f"{age} from {newest.basis}")
    if newest.moment is None:
        return Measure(f"data loss {store}", float("inf"), objective, "s", f"no data found ({newest.basis}); {age}")
    seconds = (incident - newest.moment).total_seconds()
    detail = f"newest {newest.moment.isoformat()} from {newest.basis}; {age}"
    return Measure(f"data loss {store}", seconds, objective, "s", detail)


def rto_measure(stopwatch: Stopwatch, objectives: Objectives, stopped_at: str = "") -> Measure:
    """Incident to the last applicable step, in minutes; the step (``stopped_at``) and the phases in the detail."""
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stopwatch.phases.items())
    detail = f"stopped at {stopped_at}; {phases}" if stopped_at else phases
    return Measure("RTO", stopwatch.rto.total_seconds() / 60, objectives.rto_minutes, "min", detail)
