"""Start servers in the background without losing the guarantee that they die with the harness.

Every server the harness starts gets a parent-death signal, so a drill that is killed outright takes its
servers down with it. The kernel fires that signal when the *thread* that started the child exits, so a
child of an ordinary worker thread would be killed as soon as the worker finished. A :class:`Keeper` runs
one start-up job (restore a staging copy, launch an app) on a thread of its own and then keeps that thread
alive until it is released, after its servers are stopped; its children therefore get the signal too.

Example::

    keeper = Keeper(lambda: restore(...), name="staging")   # starts at once
    ...                                                      # other work meanwhile
    staging = keeper.result()                                # waits; raises what the job raised
    staging.stop()
    keeper.release()                                         # only now may the thread end

    keeper.discard(Staging.stop, timeout=120)                # or, for a result nobody took
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Keeper", "keeps_children"]

T = TypeVar("T")

_KEEPING: set[int] = set()
_LOCK = threading.Lock()


def keeps_children() -> bool:
    """Whether the current thread outlives the children it starts (the main thread, or a running keeper)."""
    if threading.current_thread() is threading.main_thread():
        return True
    with _LOCK:
        return threading.get_ident() in _KEEPING


class Keeper(Generic[T]):
    """One job on a thread that stays alive, once the job is done, until :meth:`release`."""

    def __init__(self, job: Callable[[], T], *, name: str) -> None:
        self.name = name
        self._job = job
        self._done = threading.Event()
        self._released = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        # A daemon: an interpreter that exits without releasing it (a crash) must not hang on it.
        self._thread = threading.Thread(target=self._run, name=f"keeper-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with _LOCK:
            _KEEPING.add(threading.get_ident())
        try:
            self._value = self._job()
        except BaseException as exc:  # handed to whoever asks for the result, in their thread
            self._error = exc
        finally:
            self._done.set()
        self._released.wait()
        with _LOCK:
            _KEEPING.discard(threading.get_ident())

    def done(self) -> bool:
        """Whether the job has finished (well or not)."""
        return self._done.is_set()

    def result(self) -> T:
        """The job's value, waiting for it; the job's exception is raised here instead."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def discard(self, stop: Callable[[T], object], *, timeout: float | None = None) -> bool:
        """For a result nobody took: wait for the job, ``stop`` what it made, then :meth:`release` the thread.

        A job that failed made nothing to stop (it cleans up after itself). Returns ``False`` if the job had not
        ended within ``timeout``; the thread is released all the same, and its children end with the process.
        """
        try:
            if not self._done.wait(timeout):
                return False
            if self._error is None:
                stop(self._value)  # type: ignore[arg-type]
            return True
        finally:
            self.release()

    def release(self, timeout: float = 5.0) -> None:
        """Let the thread end (its children then lose their parent, so stop them first)."""
        self._released.set()
        self._thread.join(timeout)
