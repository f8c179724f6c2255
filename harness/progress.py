"""Progress lines for long transfers and restores: done, total, rate and ETA in the live log.

A drill or a backup can spend most of its time moving one large dump. An operator watching ``pytest features/``
(pytest's live log) or a ``codeblack-drills`` command must see that it moves, how fast, and when it will end,
without a line per chunk. One :class:`Progress` per operation counts what is done (bytes or items), logs at
INFO at most once every ``every_s`` seconds, and always logs a final line with the total time and mean rate.
It holds numbers only, never data, so streaming stays streaming. It is thread-safe: parallel download workers
share one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["EVERY_S", "Progress", "format_bytes"]

log = logging.getLogger("harness.progress")

EVERY_S = 2.0
"""Seconds between two progress lines: often enough to see movement, rare enough to read the log."""

Unit = Literal["bytes", "items"]


def format_bytes(count: float) -> str:
    """A byte count as people read it: ``512 B``, ``3.4 MiB``, ``1.2 GiB``."""
    if abs(count) < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB"):
        count /= 1024
        if abs(count) < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} GiB"


class Progress:
    """Counts one operation's progress and logs it, throttled, plus a final line.

    Args:
        what: names the operation and its object, e.g. ``downloading postgres/logical/shop-….dump``.
        total: how much there is to do, when known (no percentage and no ETA otherwise).
        unit: ``bytes`` (shown as KiB/MiB/GiB) or ``items`` (pg_restore's TOC entries).
        every_s: the least time between two progress lines (default :data:`EVERY_S`, read when created).
        clock: the monotonic clock (a test can step it).
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        unit: Unit = "bytes",
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.unit, self.clock = what, total, unit, clock
        self.every_s = EVERY_S if every_s is None else every_s
        self.done = 0
        self.started = self.last_line = clock()
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        """Count ``count`` more done (a chunk written, an item restored)."""
        with self._lock:
            self._advance(self.done + count)

    def update(self, done: int) -> None:
        """Set how much is done so far (a caller that counts itself, e.g. bytes sent after each part)."""
        with self._lock:
            self._advance(done)

    def _advance(self, done: int) -> None:
        self.done = done
        now = self.clock()
        if now - self.last_line < self.every_s:
            return
        self.last_line = now
        log.info("%s: %s", self.what, self._status(now))

    def _amount(self, count: float) -> str:
        return format_bytes(count) if self.unit == "bytes" else f"{count:.0f} items"

    def _rate(self, now: float) -> float:
        return self.done / max(now - self.started, 1e-6)

    def _status(self, now: float) -> str:
        rate = self._rate(now)
        per_s = f"{self._amount(rate)}/s"
        if not self.total:
            return f"{self._amount(self.done)}, {per_s}"
        eta = f"ETA {(self.total - self.done) / rate:.0f} s" if rate > 0 else "ETA unknown"
        percent = 100 * self.done / self.total
        return f"{self._amount(self.done)} of {self._amount(self.total)} ({percent:.0f}%), {per_s}, {eta}"

    def finish(self, note: str = "", *, done: int | None = None) -> None:
        """Log the final line: everything done, in how long, at what mean rate (and ``note``, e.g. parts).

        ``done`` is the final amount when the caller counts itself: a transfer that ended within one step
        (a single PUT) never called :meth:`update`, and its line must still say the bytes it moved.
        """
        if done is not None:
            with self._lock:
                self.done = done
        now = self.clock()
        seconds = now - self.started
        tail = f", {note}" if note else ""
        log.info("%s: done, %s in %.1f s (%s/s)%s", self.what, self._amount(self.done), seconds,
                 self._amount(self._rate(now)), tail)  # fmt: skip
