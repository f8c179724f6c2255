"""Lock and duration budget of each revision, measured while it runs on production-sized data.

A migration that holds an ACCESS EXCLUSIVE lock on a busy table for longer than a few seconds queues every
query of the live app behind it, whatever its SQL looks like on paper. While one revision runs on the staging
copy, a second connection samples ``pg_locks`` of that database (the migration child's backends: ``env.py`` may
open its own connection) every ``interval`` seconds and keeps,
per table, the time between the first and the last sample that saw the lock granted (a lock is held until the
revision's transaction ends, so that span is the hold time, to the sampling resolution). Tables the revision
itself creates are invisible to the observer until commit and are left out: nobody else can be waiting on them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar

import psycopg

from harness.errors import CheckFailed, HarnessError

__all__ = ["LockWatcher", "RevisionTiming", "check_budgets"]

_LOCKS = """
    SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE l.pid <> pg_backend_pid() AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.granted AND l.mode = 'AccessExclusiveLock' AND l.locktype = 'relation'
      AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'
"""


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


@dataclass
class LockWatcher:
    """Samples the ACCESS EXCLUSIVE locks held in one database (by the migration), from a connection of its own."""

    dsn: str
    interval: float = 0.01
    seen: dict[str, tuple[float, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: Exception | None = None

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as observer:
                while not self._stop.is_set():
                    now = time.monotonic()
                    for (table,) in observer.execute(_LOCKS).fetchall():
                        first, _ = self.seen.get(table, (now, now))
                        self.seen[table] = (first, now)
                    self._stop.wait(self.interval)
        except psycopg.Error as exc:
            self._error = exc

    def __enter__(self) -> LockWatcher:
        self._thread = threading.Thread(target=self._run, name="lock-watcher", daemon=True)
        self._thread.start()
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
        if self._error is not None:
            raise HarnessError(f"could not watch the locks of the migration: {self._error}")
        if not self.seen:
            return 0.0, None
        table, (first, last) = max(self.seen.items(), key=lambda item: item[1][1] - item[1][0])
        return last - first + self.interval, table


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
