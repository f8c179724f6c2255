"""The migration child's jail: a root of its own holding only what Alembic needs, entered as an unprivileged user.

A network namespace stops TCP, but not a server's *Unix* socket: ``/var/run/postgresql/.s.PGSQL.5432`` or a
socket in ``/tmp`` is a file, and a production server's ``local ... trust`` line lets anyone who can open it in.
So the child does not see the host's file system at all. :mod:`harness.migrations.isolation` starts this file
with the *drill's* interpreter (``-I -S``: no environment, no ``site``, so nothing of the project runs here) as
root in fresh network and mount namespaces (``unshare --net --mount``); it

1. brings up loopback (the namespace's only interface),
2. builds a new root on a tmpfs: the system's ``/usr``, ``/etc`` and library directories, the project's
   interpreter and the paths the harness lists (the project, its ``PYTHONPATH``, the child's script) bound
   read-only at their own paths, ``/dev/null`` and friends, and the account's own directory holding the socket
   forwarded to the throwaway (read-only too: a socket opens all the same); the only places it may write are a
   private ``/tmp`` and ``HOME``, each a small tmpfs, so the child cannot fill the host's disk or memory,
3. changes root into it, drops to the pool account (:func:`harness.services.accounts.acquire_account`) or,
   without root, drops every capability it holds in its user namespace, sets ``no_new_privs``, re-arms the
   parent-death signal, caps its processes' number, address space and file size (its output goes to a log
   on the host's disk) and leaves the harness's session keyring for an empty one of its own,
4. and replaces itself (``execv``) with the project's interpreter on :mod:`harness.migrations.child`.

``/run``, ``/var``, ``/tmp``, ``/home`` and ``/root`` of the host are not in the jail (save the listed paths
inside them), so neither is any socket there. A socket *inside* a bound path (the project's or the
interpreter's directories) would still be reachable, as the account's permissions allow: keep servers' sockets
out of them.

Without root the child stays uid 0 of a user namespace (``unshare --user --map-root-user``: the harness's own
user outside), and that uid holds every capability inside it: ``CAP_SYS_CHROOT`` alone walks out of a
``chroot`` (``chroot("sub"); chdir("..")…; chroot(".")``) back to the host's files the harness's user can read
(``~/.ssh``, the drill's passfiles), and ``CAP_SYS_ADMIN`` remounts the read-only project writable. So the child
gives them all up before ``exec``: an empty bounding set and no inheritable, permitted, effective or ambient
capability, with ``SECBIT_NOROOT`` locked so that ``exec`` as uid 0 grants none back. A process inside a
``chroot`` may not make a new user namespace either (``EPERM``), so it cannot win them back that way.
Only the standard library is used: this file runs before, and apart from, everything else of the
harness.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import socket
import struct
import sys
from pathlib import Path

__all__ = ["main"]

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_PR_CAPBSET_DROP, _PR_SET_SECUREBITS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 28, 47, 4
# SECBIT_NOROOT and SECBIT_NO_CAP_AMBIENT_RAISE, each with its lock: uid 0 gains nothing at exec, ever again.
_SECUREBITS = 0x01 | 0x02 | 0x40 | 0x80
_CAPABILITY_VERSION_3 = 0x20080522
# statvfs flags a read-only remount must keep (in a user namespace they are locked): noexec, noatime, nodiratime
# share their values with the MS_ flags; relatime does not (ST_RELATIME 4096, MS_RELATIME 1 << 21).
_KEPT, _ST_RELATIME, _MS_RELATIME = 8 | 1024 | 2048, 4096, 1 << 21
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
# What the child may write (/tmp and HOME, each) and the address space of each of its processes: Alembic, the
# project's models and a driver need far less; a migration file filling them stops there.
_SCRATCH = "size=256m,nr_inodes=16384"
_ADDRESS_SPACE = 4 << 30
# The largest file it may write: its output goes to a log on the host's disk (a write past this fails, EFBIG).
_FILE_SIZE = 64 << 20
# The processes (threads included) the child's user may have: the pool account is this child's alone, and without
# root the count is of uid 0 of its own user namespace (the kernel counts RLIMIT_NPROC per user namespace), so
# either way it counts only the jail's processes, and a fork bomb stops here, not at the host's pid limit.
_PROCESSES = 256
# keyctl(2) has no glibc wrapper: its system call number per machine (``uname -m``).
_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "loongarch64": 219, "ppc64le": 271, "s390x": 280,
           "i686": 288, "armv7l": 311}  # fmt: skip
_KEYCTL_JOIN_SESSION_KEYRING, _ENOSYS = 1, 38
_libc = ctypes.CDLL(None, use_errno=True)


def _encode(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    status: int = _libc.mount(_encode(source), _encode(target), _encode(fstype), ctypes.c_ulong(flags), _encode(data))
    if status != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source or fstype} on {target}: {os.strerror(errno)}")


def _bind(source: str, root: str, *, writable: bool = False) -> None:
    """Bind ``source`` at the same path under ``root``; read-only unless ``writable``."""
    target = root + source
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            Path(target).touch()
    _mount(source, target, None, _MS_BIND | _MS_REC)
    if not writable:
        kept = os.statvfs(source).f_flag
        flags = (kept & _KEPT) | (_MS_RELATIME if kept & _ST_RELATIME else 0)
        _mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | flags)


def _drop_capabilities() -> None:
    """Give up every capability of the user namespace for good (see the module's docstring: "Without root")."""
    cap = 0
    while _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:  # EINVAL past the kernel's last capability
        cap += 1
    if cap == 0 or _libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"dropping the user namespace's capabilities: {os.strerror(errno)}")
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    none = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable of capabilities 0-31, then of 32-63
    if _libc.capset(header, none) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"capset: {os.strerror(errno)}")


def _own_session_keyring() -> None:
    """Leave the harness's session keyring for a new, empty one of the child's.

    The session keyring is inherited like the environment, and a key linked in it (a Kerberos ticket cache, an
    fscrypt or CIFS key of the drill's user) is *possessed* by every process that inherits it, whatever its uid:
    ``keyctl search @s user NAME`` and ``keyctl read`` gave it to a migration file, as the pool account too. A
    kernel without keyrings (``ENOSYS``) has nothing to leave.
    """
    machine = os.uname().machine
    number = _KEYCTL.get(machine)
    if number is None:
        raise OSError(_ENOSYS, f"no keyctl system call number is known for {machine}, so the session keyring "
                      "cannot be left")  # fmt: skip
    if _libc.syscall(number, _KEYCTL_JOIN_SESSION_KEYRING, None) < 0 and ctypes.get_errno() != _ENOSYS:
        errno = ctypes.get_errno()
        raise OSError(errno, f"joining a session keyring of its own: {os.strerror(errno)}")


def _loopback_up() -> None:
    """Bring up ``lo`` in the fresh network namespace (it starts down), as ``ip link set lo up`` would."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(probe, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


def _build_root(root: str, readable: list[str], run: str, home: str, owner: str) -> None:
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing mounted here shows outside the namespace
    _mount("jail", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    for path in _SYSTEM:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind(path, root)
    for device in _DEVICES:
        if os.path.exists(device):
            _bind(device, root, writable=True)
    os.makedirs(root + "/tmp")
    _mount("tmp", root + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=1777,{_SCRATCH}")
    for path in readable:
        _bind(path, root)
    _bind(run, root)
    _mount("home", root + home, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=0700,{owner},{_SCRATCH}")


def main(argv: list[str]) -> int:
    """Enter the jail described by the JSON in ``argv[1]`` and ``exec`` the child; see the module's docstring."""
    spec = json.loads(argv[1])
    try:
        _loopback_up()
        if spec["root"]:
            owner = f"uid={spec['uid'] or 0},gid={spec['gid'] or 0}"
            _build_root(spec["root"], spec["readable"], spec["run"], spec["home"], owner)
            os.chroot(spec["root"])
        os.chdir(spec["cwd"])
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]  # without root it can only be lowered
        processes = _PROCESSES if hard == resource.RLIM_INFINITY else min(_PROCESSES, hard)
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        if spec["uid"] is not None:
            os.setgroups([])
            os.setgid(spec["gid"])
            os.setuid(spec["uid"])  # the kernel clears every capability as uid 0 is left
        else:
            _drop_capabilities()
        _own_session_keyring()  # after the uid change: the new keyring is the child's own
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # no setuid binary in /usr lifts it back
        _libc.prctl(_PR_SET_PDEATHSIG, 9)  # cleared by the uid change: die with the harness
        resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE, _ADDRESS_SPACE))
        resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_SIZE, _FILE_SIZE))
        os.execv(spec["argv"][0], spec["argv"])
    except OSError as exc:
        print(f"cannot confine the migration child: {exc}", file=sys.stderr)
        return 111
    return 0  # not reached: execv replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
