"""Deadlines for reading from object storage: an overall deadline and a minimum rate over a sliding window.

A socket read timeout only trips when nothing at all arrives for that long. A storage endpoint (or whatever
sits in front of it) that sends its headers and then one byte every ten seconds never trips it, and a
download of a large dump would run for days. :class:`Watchdog` watches every transfer from a thread of its
own: when the transfer misses ``storage.download_deadline_s``, or receives less than
``storage.download_min_bytes_per_s`` on average over the last ``storage.download_rate_window_s``, it shuts
the transfer's sockets down (which wakes a read blocked in the kernel) and the reader raises one line naming
the object, the bytes received and the limit. A transfer that finishes within one window is never judged
on its rate, so small objects on slow links pass.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from harness.config import StorageSettings
from harness.errors import HarnessError

__all__ = ["TransferLimits", "Watchdog"]


@dataclass(frozen=True)
class TransferLimits:
    """How long one transfer may take and how slow it may be; ``min_bytes_per_s = 0`` turns the rate off."""

    deadline_s: float = 4 * 3600.0
    min_bytes_per_s: float = 256 * 1024.0
    window_s: float = 60.0

    @classmethod
    def from_settings(cls, storage: StorageSettings) -> TransferLimits:
        """The limits ``[storage] download_deadline_s``, ``download_min_bytes_per_s``, ``download_rate_window_s``."""
        return cls(storage.download_deadline_s, storage.download_min_bytes_per_s, storage.download_rate_window_s)


def _shut(body: Any) -> None:
    """Shut a response's connection down so that a read blocked on it returns at once (closing would not wake it).

    The socket is reached through its file descriptor (urllib3's public ``fileno()``), duplicated so that
    closing the duplicate leaves the reader's own descriptor alone; a shutdown acts on the connection itself.
    """
    raw = getattr(body, "_raw_stream", body)  # botocore's StreamingBody wraps urllib3's HTTPResponse
    try:
        with socket.fromfd(raw.fileno(), socket.AF_INET, socket.SOCK_STREAM) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError, AttributeError):  # already closed, or not a socket: nothing is blocked on it
        with contextlib.suppress(Exception):
            body.close()


class Watchdog:
    """Counts one transfer's bytes and aborts it when it misses its deadline or stays under the minimum rate.

    Use it as a context manager around the transfer; register each response body with :meth:`track`, report
    bytes with :meth:`add`, and call :meth:`check` when the transfer ends or fails: it raises the reason the
    watchdog stopped it, if it did.
    """

    def __init__(
        self, where: str, total: int | None, limits: TransferLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.where, self.total, self.limits, self.clock = where, total, limits, clock
        self.received = 0
        self.reason = ""
        self._lock = threading.Lock()
        self._bodies: list[Any] = []
        self._done = threading.Event()
        self._started = clock()
        self._samples: deque[tuple[float, int]] = deque([(self._started, 0)])
        self._thread = threading.Thread(target=self._watch, name="download-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()

    def add(self, count: int) -> None:
        """Count bytes received."""
        with self._lock:
            self.received += count

    @contextlib.contextmanager
    def track(self, body: Any) -> Iterator[Any]:
        """Watch ``body`` (a response body) while the block reads it; it is shut down if the limits are broken."""
        with self._lock:
            if self.reason:
                _shut(body)
            self._bodies.append(body)
        try:
            yield body
        finally:
            with self._lock:
                self._bodies.remove(body)

    def check(self) -> None:
        """Raise why the watchdog stopped the transfer, if it did.

        Raises:
            HarnessError: the deadline passed or the rate fell under the minimum; names the object, the bytes
                received and the limit.
        """
        if self.reason:
            raise HarnessError(self.reason) from None

    def _watch(self) -> None:
        limits = self.limits
        interval = min(1.0, limits.window_s / 4, limits.deadline_s / 4)
        while not self._done.wait(interval):
            reason = self._broken(self.clock())
            if reason:
                with self._lock:
                    self.reason = reason
                    for body in self._bodies:
                        _shut(body)
                return

    def _broken(self, now: float) -> str:
        limits, received = self.limits, self.received
        of = f"{received} of {self.total} bytes" if self.total is not None else f"{received} bytes"
        if now - self._started > limits.deadline_s:
            return (f"{self.where}: not finished within storage.download_deadline_s = {limits.deadline_s:g} s: "
                    f"{of} received")  # fmt: skip
        self._samples.append((now, received))
        while len(self._samples) > 1 and self._samples[1][0] <= now - limits.window_s:
            self._samples.popleft()
        since, before = self._samples[0]
        if limits.min_bytes_per_s and since <= now - limits.window_s:
            rate = (received - before) / (now - since)
            if rate < limits.min_bytes_per_s:
                return (f"{self.where}: too slow: {received - before} bytes in the last {now - since:.0f} s "
                        f"({rate:.0f} B/s), under storage.download_min_bytes_per_s = {limits.min_bytes_per_s:g} "
                        f"over storage.download_rate_window_s = {limits.window_s:g} s; {of} received")  # fmt: skip
        return ""
