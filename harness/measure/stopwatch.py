"""A stopwatch of named phases on the monotonic clock, anchored to the drill's incident time.

RTO is measured from the incident (when the drill pretends production was lost) to health green. The
incident is a wall-clock moment (``restore.incident_time`` or the drill's start), but durations are taken
on ``time.monotonic`` so a clock step during the drill cannot distort them: the stopwatch notes the wall
time and the monotonic time at its start once and converts between them from there.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from harness.records.record import Phase

__all__ = ["Stopwatch"]


@dataclass
class Stopwatch:
    """Named phases (download, provision, restore, checks, app start) and the RTO clock.

    Attributes:
        incident: when the RTO clock starts (UTC); defaults to the stopwatch's creation.
        phases: seconds per phase name; a phase timed twice adds up (threads may time phases concurrently).
        spans: each timing as a :class:`Phase` of offsets from the incident, so phases that ran at the same time
            show as overlapping and their sum is not mistaken for RTO.
    """

    incident: datetime = field(default_factory=lambda: datetime.now(UTC))
    phases: dict[str, float] = field(default_factory=dict)
    spans: list[Phase] = field(default_factory=list)
    stopped_at: datetime | None = None
    _wall0: datetime = field(default_factory=lambda: datetime.now(UTC), repr=False)
    _mono0: float = field(default_factory=time.monotonic, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def now(self) -> datetime:
        """The current UTC time as the monotonic clock sees it since the stopwatch started."""
        return self._wall0 + timedelta(seconds=time.monotonic() - self._mono0)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as phase ``name`` (also when it fails: a failed phase still took time)."""
        started = time.monotonic()
        try:
            yield
        finally:
            self._record(name, started, time.monotonic())

    def add(self, name: str, seconds: float) -> None:
        """Add seconds to a phase that ends now (for phases measured elsewhere, e.g. an app launched ahead)."""
        ended = time.monotonic()
        self._record(name, ended - seconds, ended)

    def _record(self, name: str, started: float, ended: float) -> None:
        """Add the phase between two monotonic readings; its span's ends are offsets of those very readings.

        A span's start once came from a later reading minus the duration: a phase delayed between the two
        readings started, on the timeline, after a phase timed inside it.
        """
        offset = (self._wall0 - self.incident).total_seconds() - self._mono0
        with self._lock:
            self.phases[name] = self.phases.get(name, 0.0) + (ended - started)
            self.spans.append(Phase(name=name, start_s=round(offset + started, 3), end_s=round(offset + ended, 3)))

    def stop(self) -> datetime:
        """Stop the RTO clock (health is green); returns the moment."""
        self.stopped_at = self.now()
        return self.stopped_at

    def stop_not_before(self, moment: datetime) -> None:
        """Move a stop that came before ``moment`` to it: the recovery ends with the last of its parts.

        The app may be healthy on the first database while another database of the drill still restores.
        """
        if self.stopped_at is not None and moment > self.stopped_at:
            self.stopped_at = moment

    @property
    def rto(self) -> timedelta:
        """Incident to stop (or to now while running)."""
        return (self.stopped_at or self.now()) - self.incident

    def timeline(self) -> list[Phase]:
        """Every timing in the order it started, as offsets in seconds from the incident."""
        with self._lock:
            return sorted(self.spans, key=lambda phase: phase.start_s)

    def rounded_phases(self) -> dict[str, float]:
        """Phases in seconds, rounded to milliseconds, for the report."""
        return {name: round(seconds, 3) for name, seconds in self.phases.items()}
