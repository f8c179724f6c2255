"""Lock and duration budget of each revision, measured while it runs on production-sized data.

A migration that holds an ACCESS EXCLUSIVE lock on a busy table for longer than a few seconds queues every
query of the live app behind it, whatever its SQL looks like on paper. While one revision runs on the staging
copy, a second connection samples that database every ``interval`` seconds (the migration child's backends:
``env.py`` may open its own connection):

- ``pg_locks``: per table and lock mode, the time between the first and the last sample that saw the lock
  granted (a lock is held until the revision's transaction ends, so that span is the hold time, to the sampling
  resolution). Tables the revision itself creates are invisible to the observer until commit and are left out:
  nobody else can be waiting on them.
- ``pg_stat_activity`` of the migration's role: each statement seen running, for how long, and how much of
  that it waited for a lock another session held (``wait_event_type = 'Lock'``). A statement shorter than one
  interval may go unseen; what is reported was measured.

Without an app, this is the whole deploy rehearsal: the upgrade of the restored copy, its timings and locks.
"""

from __future__ import annotations

import threading
import time
from dataclasses import astuple, dataclass, field
from types import TracebackType
from typing import ClassVar

import psycopg

from harness.errors import CheckFailed, HarnessError
from harness.services.postgres import OWNER_ROLE

__all__ = ["LockHeld", "LockWatcher", "RevisionTiming", "StatementSeen", "check_budgets"]

_LOCKS = """
    SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE l.pid <> pg_backend_pid() AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.granted AND l.locktype = 'relation' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
"""
_STATEMENTS = """
    SELECT pid, query_start, left(regexp_replace(query, '\\s+', ' ', 'g'), 200), wait_event_type = 'Lock'
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND usename = %s
      AND backend_type = 'client backend'
"""
_EXCLUSIVE = "AccessExclusiveLock"
#: PostgreSQL's table lock modes, weakest first (each conflicts with more of the others).
_MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
          "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")  # fmt: skip


@dataclass(frozen=True)
class RevisionTiming:
    """How long one revision ran and the longest ACCESS EXCLUSIVE lock it held on an existing table."""

    HEADER: ClassVar[list[str]] = ["revision", "wall time (s)", "longest ACCESS EXCLUSIVE lock (s)", "table"]

    revision: str
    wall_s: float
    lock_s: float
    table: str | None

    def row(self) -> list[object]:
        """A row for the report's table."""
        return [self.revision, round(self.wall_s, 3), round(self.lock_s, 3), self.table or "-"]


class _Measured:
    """A measurement as a row of the report: its fields in order, seconds to the millisecond."""

    def row(self) -> list[object]:
        """A row for the report's table."""
        return [round(value, 3) if isinstance(value, float) else value for value in astuple(self)]  # type: ignore[call-overload]


@dataclass(frozen=True)
class StatementSeen(_Measured):
    """One statement of a revision as the observer saw it running."""

    HEADER: ClassVar[list[str]] = ["revision", "statement", "seen running (s)", "of which waiting for a lock (s)"]

    revision: str
    statement: str
    running_s: float
    lock_wait_s: float


@dataclass(frozen=True)
class LockHeld(_Measured):
    """The strongest lock a revision held on one existing table, and for how long it was seen held."""

    HEADER: ClassVar[list[str]] = ["revision", "table", "strongest lock", "held (s)"]

    revision: str
    table: str
    mode: str
    held_s: float


@dataclass
class LockWatcher:
    """Samples the table locks held and the statements run in one database (by the migration's ``role``)."""

    dsn: str
    role: str = OWNER_ROLE
    interval: float = 0.01
    held: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    running: dict[tuple[int, object, str], list[float]] = field(default_factory=dict)
    #: Set once a sample has seen a statement of the migration waiting for a lock another session holds.
    wait_seen: threading.Event = field(default_factory=threading.Event)
    _sampling: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: Exception | None = None

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as observer:
                while not self._stop.is_set():
                    now = time.monotonic()
                    for table, mode in observer.execute(_LOCKS).fetchall():
                        first, _ = self.held.get((table, mode), (now, now))
                        self.held[(table, mode)] = (first, now)
                    for pid, started, query, waiting in observer.execute(_STATEMENTS, (self.role,)).fetchall():
                        first, _, waited = self.running.get((pid, started, query), [now, now, 0.0])
                        self.running[(pid, started, query)] = [first, now, waited + (self.interval if waiting else 0)]
                        if waiting:
                            self.wait_seen.set()
                    self._sampling.set()
                    self._stop.wait(self.interval)
        except psycopg.Error as exc:
            self._error = exc
        finally:
            self._sampling.set()

    def __enter__(self) -> LockWatcher:
        """Start sampling and return once the first sample is taken, so the revision runs watched from its start.

        Raises:
            HarnessError: the observer could not connect (in 5 s) or take its first sample (in 30 s).
        """
        self._thread = threading.Thread(target=self._run, name="lock-watcher", daemon=True)
        self._thread.start()
        if not self._sampling.wait(timeout=30):
            self._stop.set()
            raise HarnessError("could not watch the locks of the migration: no sample taken in 30 s")
        self._raise_error()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def longest(self) -> tuple[float, str | None]:
        """The longest observed hold (seconds, one sampling interval added for the unseen edges) and its table.

        Raises:
            HarnessError: the observer connection failed, so the holds were not measured.
        """
        self._raise_error()
        exclusive = {table: span for (table, mode), span in self.held.items() if mode == _EXCLUSIVE}
        if not exclusive:
            return 0.0, None
        table, (first, last) = max(exclusive.items(), key=lambda item: item[1][1] - item[1][0])
        return last - first + self.interval, table

    def _raise_error(self) -> None:
        if self._error is not None:
            raise HarnessError(f"could not watch the locks of the migration: {self._error}")

    def statements(self, revision: str) -> list[StatementSeen]:
        """The statements seen running, in the order they started (one interval added for the unseen edges)."""
        self._raise_error()
        return [
            StatementSeen(revision, query, last - first + self.interval, waited)
            for (_, _, query), (first, last, waited) in sorted(self.running.items(), key=lambda item: item[1][0])
        ]

    def locks(self, revision: str) -> list[LockHeld]:
        """Per table, the strongest lock seen held and for how long (one interval added), strongest first."""
        self._raise_error()
        strongest: dict[str, tuple[str, float]] = {}
        for (table, mode), (first, last) in self.held.items():
            kept = strongest.get(table)
            if kept is None or _rank(mode) > _rank(kept[0]):
                strongest[table] = (mode, last - first + self.interval)
        held = [LockHeld(revision, table, mode, seconds) for table, (mode, seconds) in strongest.items()]
        return sorted(held, key=lambda lock: (-_rank(lock.mode), lock.table))


def _rank(mode: str) -> int:
    """How strong a table lock mode is (a predicate lock, ``SIReadLock``, blocks nothing: lowest)."""
    return _MODES.index(mode) if mode in _MODES else -1


def check_budgets(timings: list[RevisionTiming], *, lock_budget_s: float, duration_budget_s: float) -> None:
    """No revision held an ACCESS EXCLUSIVE lock or ran longer than its budget.

    Raises:
        CheckFailed: naming each revision over budget, the table, and the measured seconds.
    """
    over = [
        f"revision {t.revision} held an ACCESS EXCLUSIVE lock on {t.table} for {t.lock_s:.2f} s "
        f"(budget {lock_budget_s:g} s, [migrations] lock_budget_s)"
        for t in timings
        if t.lock_s > lock_budget_s
    ]
    over += [
        f"revision {t.revision} ran for {t.wall_s:.2f} s "
        f"(budget {duration_budget_s:g} s, [migrations] duration_budget_s)"
        for t in timings
        if t.wall_s > duration_budget_s
    ]
    if over:
        raise CheckFailed("; ".join(over) + ": the live app would queue behind it; split the migration or rework it")
