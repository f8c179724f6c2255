"""An OS account of its own for every throwaway server, so one server's code cannot reach another's.

A restored base backup brings its own catalog, and a catalog can hold code (a C function, a library in the
data directory) that runs as the server's OS user. When every server ran as ``nobody``, that code could read
another server's ``redis.conf`` (its password), rewrite another server's ``pg_hba.conf`` and signal its
postmaster, plant a symlink where the harness (root) was about to open a log, and leave a process behind for
the next drill (found by a hostile-bucket review). So, when the harness runs as root, each server gets an
account of a pool (``codeblack-drills-0``, ``-1``…, system accounts without a login or a home, created on first
use like a database package's ``postgres`` user), held with a lock for the server's lifetime (released by the
kernel if the harness is killed). The account owns only the server's data and socket directories; when the
server stops, and again before an account is reused, every process of that account is killed, so nothing a
restore started outlives its server. Without root there is nothing to switch to: servers run as the harness's
user (``None`` here), as the README says.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.errors import ServiceError
from harness.services.base import LABEL, ServiceUser, service_user

__all__ = ["ServiceAccount", "acquire_account", "remove_orphaned_shared_memory"]

log = logging.getLogger("harness.services")

#: Where the pool's locks live: root's own, on the machine (not per run), never in a shared temp directory.
LOCKS = Path("/run") / LABEL / "accounts"
POOL_SIZE = 64


@dataclass
class ServiceAccount:
    """A pool account held by one server; :meth:`release` kills what it still runs and frees it."""

    user: ServiceUser
    lock_fd: int
    dedicated: bool = True

    def kill_processes(self) -> list[int]:
        """Kill every process of this account (a server's children included); return their pids.

        Then remove the System V shared memory the account's dead servers left: PostgreSQL removes its segment
        only when it shuts down, so every killed server (a kill -9, a failed drill) left one behind for good.
        Only for a dedicated account: the shared fallback user also runs other servers.
        """
        if not self.dedicated:
            return []
        killed = _kill_processes_of(self.user.uid)
        removed = remove_orphaned_shared_memory(self.user.uid)
        if removed:
            log.info("removed %d shared memory segment(s) dead servers of %s left", len(removed), self.user.name)
        return killed

    def release(self) -> None:
        """Kill the account's processes, then let another server have it. Safe to call twice."""
        if self.lock_fd < 0:
            return
        survivors = self.kill_processes()
        if survivors:
            log.warning("killed %d process(es) of %s left after its server stopped: %s", len(survivors),
                        self.user.name, survivors)  # fmt: skip
        os.close(self.lock_fd)
        self.lock_fd = -1


def _kill_processes_of(uid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info["uids"]
        if uids is not None and uid in (uids.real, uids.effective):
            try:
                proc.kill()
                found.append(proc.pid)
            except psutil.Error:
                continue
    psutil.wait_procs([psutil.Process(pid) for pid in found if psutil.pid_exists(pid)], timeout=5)
    return found


SYSV_SHM = Path("/proc/sysvipc/shm")
_IPC_RMID = 0


def remove_orphaned_shared_memory(uid: int) -> list[int]:
    """Remove the System V shared memory segments of ``uid`` that no process has attached; their ids.

    Called only for a pool account this process holds, once its processes are killed: every segment of that
    uid then belongs to a server that is gone, and no server of another run can attach to it.
    """
    try:
        lines = SYSV_SHM.read_text().splitlines()[1:]
    except OSError:
        return []
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    removed = []
    for line in lines:  # key shmid perms size cpid lpid nattch uid ...
        fields = line.split()
        orphan = len(fields) > 7 and int(fields[7]) == uid and int(fields[6]) == 0
        if orphan and libc.shmctl(int(fields[1]), _IPC_RMID, None) == 0:
            removed.append(int(fields[1]))
    return removed


def _ensure_user(name: str) -> pwd.struct_passwd | None:
    """The pool account ``name``, created when missing; ``None`` when this host cannot create accounts."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    with (LOCKS / "useradd.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        argv = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", "/usr/sbin/nologin", "--comment", "codeblack-drills throwaway server", name]  # fmt: skip
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("cannot create service account %s (%s); servers share %s", name, exc, service_user())
            return None
        if done.returncode != 0:
            log.warning("cannot create service account %s (%s); servers share the service user", name,
                        done.stderr.strip().splitlines()[-1:] or done.returncode)  # fmt: skip
            return None
    return pwd.getpwnam(name)


def acquire_account() -> ServiceAccount | None:
    """A pool account for one server, locked until :meth:`ServiceAccount.release`; ``None`` when not root.

    When the host cannot create accounts (no ``useradd``, a read-only ``/etc``), the shared service user is
    used, with a warning: servers are then isolated from the harness but not from each other.

    Raises:
        ServiceError: every account of the pool is held by a running server.
    """
    shared = service_user()
    if shared is None:
        return None
    LOCKS.mkdir(parents=True, exist_ok=True, mode=0o700)
    for number in range(POOL_SIZE):
        name = f"{LABEL}-{number}"
        fd = os.open(LOCKS / f"{name}.lock", os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        entry = _ensure_user(name)
        user = shared if entry is None else ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
        account = ServiceAccount(user, fd, dedicated=entry is not None)
        if entry is not None:
            stale = account.kill_processes()  # what a killed run's server left running under this account
            if stale:
                log.warning("killed %d process(es) a killed run left under %s: %s", len(stale), name, stale)
        return account
    raise ServiceError(f"all {POOL_SIZE} service accounts ({LABEL}-0…) are held by running servers")
