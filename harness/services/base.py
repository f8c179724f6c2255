"""What every throwaway server shares: a run label, a free port, a readiness wait, a reaped process.

testcontainers stamps each container with a session id so leftovers can be found; here every temp
directory is named ``codeblack-drills-<run id>-<what>`` and every process gets ``CODEBLACK_DRILLS_RUN`` in
its environment, so :mod:`harness.services.sweeper` can find what a killed run left behind. Processes are
started in their own session (a Ctrl-C in the terminal reaches the harness, which stops them in order) and
with a parent-death signal, so even a SIGKILLed harness does not leave servers running.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

from harness.errors import ServiceError
from harness.services.keeper import keeps_children

__all__ = [
    "LABEL",
    "PORT_ATTEMPTS",
    "RUN_ENV",
    "ManagedProcess",
    "ServiceUser",
    "child_setup",
    "free_port",
    "label_dir",
    "log_says",
    "minimal_env",
    "port_taken",
    "run_id",
    "service_user",
    "start_on_a_free_port",
    "wait_until",
]

log = logging.getLogger("harness.services")

LABEL = "codeblack-drills"
RUN_ENV = "CODEBLACK_DRILLS_RUN"
_PR_SET_PDEATHSIG = 1
_RUN_ID = os.environ.get(RUN_ENV) or uuid.uuid4().hex[:10]


#: What a server or tool that handles untrusted input may inherit from the harness's environment: where
#: programs are, the locale and time zone. Nothing else: the harness holds storage keys and signing keys, and a
#: restored dump that runs a command (``COPY ... TO PROGRAM``) or a hostile archive must find none of them.
INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def minimal_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a throwaway server or of a tool run on backup data.

    :data:`INHERITED`, the run label, and ``extra`` (what the caller knows the program needs, e.g. ``PGHOST``).
    """
    inherited = {name: os.environ[name] for name in INHERITED if name in os.environ}
    return {**inherited, RUN_ENV: _RUN_ID, **(extra or {})}


def run_id() -> str:
    """The id of this run, shared by every process and directory it creates (inherited by children)."""
    return _RUN_ID


def label_dir(what: str, base: Path | None = None) -> Path:
    """Make a temp directory labelled with the run id, so a sweeper can find it if the run is killed.

    The first one a process makes also claims the run for it (an owner file): a later sweep removes a run's
    leftovers only once all its owners have exited, and leaves a run nobody claimed alone. So whatever makes
    throwaways (a drill, ``codeblack-drills backup redis``, the bench) is swept after a ``kill -9``.
    """
    _claim_run()
    return Path(tempfile.mkdtemp(prefix=f"{LABEL}-{_RUN_ID}-{what}-", dir=base))


_CLAIMED_BY = 0  # the pid that claimed the run (a forked child is another owner)


def _claim_run() -> None:
    global _CLAIMED_BY
    if os.getpid() == _CLAIMED_BY:
        return
    from harness.services.sweeper import claim_run  # the sweeper reads the owner files and imports this module

    with contextlib.suppress(OSError):  # a temp dir it cannot write: making the directory itself says so
        claim_run()
    _CLAIMED_BY = os.getpid()


#: Ports :func:`free_port` handed out lately, so that it never hands one out twice while a server may yet bind it.
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=4096)
_HANDED_OUT_LOCK = threading.Lock()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, and that this process has not handed out lately.

    The caller binds it a moment later (a server starting). The kernel picks a free port at random each time, so
    two servers started side by side (staging PostgreSQL and Redis) were at times handed the same one, and the
    second to bind it failed to start.
    """
    with _HANDED_OUT_LOCK:
        for _ in range(64):  # at most 4,096 of ~14,000 ports are recent: a few picks find another
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                break
        _HANDED_OUT.append(port)
        return port


PORT_ATTEMPTS = 3
"""How many ports a server's start tries: another process may bind the one :func:`free_port` picked first."""


def _log_size(log_path: Path) -> int:
    """The size of a server's log now, so that :func:`port_taken` reads only what one start wrote."""
    try:
        return log_path.stat().st_size
    except OSError:
        return 0


def log_says(log_path: Path, since: int, text: str) -> bool:
    """Whether a server's log, after byte ``since`` (what this start wrote), holds ``text`` (in any case)."""
    try:
        with log_path.open("rb") as log:
            log.seek(since)
            return text.lower().encode() in log.read().lower()
    except OSError:
        return False


def port_taken(log_path: Path, since: int) -> bool:
    """Whether a server's log, after byte ``since``, says it could not bind its port (another process had it).

    PostgreSQL, Redis and Python servers all say "Address already in use" (uvicorn in lower case).
    """
    return log_says(log_path, since, "address already in use")


def start_on_a_free_port(
    what: str,
    launch: Callable[[int], ManagedProcess],
    ready: Callable[[int], bool],
    *,
    timeout: float,
    interval: float = 0.05,
) -> None:
    """Start a server on a port :func:`free_port` picks and wait until ``ready``; on another port when it was taken.

    Another process may bind the port between the pick and the server's own bind (a second drill on the
    machine): when the server's log says so, it is stopped and launched again on a new port, at most
    :data:`PORT_ATTEMPTS` times. ``launch(port)`` makes the server's process for ``port`` (and points the
    server at both); ``ready(since)`` probes it, ``since`` being its log's size before this start.

    Raises:
        ServiceError: it did not become ready in ``timeout`` seconds, or exited, for another reason than a taken
            port or on the last port tried.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        process = launch(port)
        logged = _log_size(process.log_path)
        process.start()
        try:
            wait_until(partial(ready, logged), timeout=timeout, what=f"{what} on port {port}", interval=interval)
            return
        except ServiceError:
            if attempt == PORT_ATTEMPTS or not port_taken(process.log_path, logged):
                raise
            log.info("%s: port %d was taken before it bound it; another port", what, port)
            process.stop(timeout)


def wait_until(probe: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Call ``probe`` until it returns true; never sleep blindly, never wait forever.

    Raises:
        ServiceError: the deadline passed; the message names what was awaited and for how long.
    """
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if time.monotonic() >= deadline:
            raise ServiceError(f"{what} was not ready after {timeout:g} s")
        time.sleep(interval)


@dataclass(frozen=True)
class ServiceUser:
    """The unprivileged account servers run as when the harness runs as root (initdb refuses root)."""

    name: str
    uid: int
    gid: int


def service_user() -> ServiceUser | None:
    """``None`` when not root; otherwise the ``nobody`` account that throwaway servers run as."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("nobody")
    return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def give_to_service_user(path: Path, user: ServiceUser | None = None) -> None:
    """Hand a directory tree to ``user`` (default: the shared service user), so a server run by it can write it."""
    user = user or service_user()
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.uid, user.gid)
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), user.uid, user.gid)


def child_setup(user: ServiceUser | None, death_signal: int, memory_limit: int | None = None) -> Callable[[], None]:
    """The child's first acts: die with the harness, drop root to ``user``, cap its address space.

    ``user`` ``None`` keeps the harness's user; ``memory_limit`` is in bytes (``None``: no cap).

    The parent-death signal fires when the *thread* that forked exits, so it is armed only for children of
    the main thread and of a :class:`~harness.services.keeper.Keeper`; a child started from another worker
    thread relies on the stop in ``finally`` and the sweeper.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    arm = keeps_children()

    def setup() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        if user is not None:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
        if arm:
            # After the uid change: the kernel clears the parent-death signal when credentials change.
            libc.prctl(_PR_SET_PDEATHSIG, death_signal)

    return setup


def _run_following(
    argv: list[str], *, env: dict[str, str], setup: Callable[[], None], stdout: IO[bytes] | int | None,
    timeout: float, on_stderr: Callable[[str], None],
) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """``subprocess.run`` that hands each stderr line to ``on_stderr`` as it arrives (progress of a long tool).

    Stdout, when piped, is drained by a thread so a chatty tool cannot block on a full pipe.
    """
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, env=env,
                               preexec_fn=setup)  # fmt: skip
    killer = threading.Timer(timeout, process.kill)
    out: list[bytes] = []
    piped = process.stdout
    drain = None if piped is None else threading.Thread(target=lambda: out.append(piped.read()), daemon=True)
    err: list[bytes] = []
    killer.start()
    try:
        if drain is not None:
            drain.start()
        assert process.stderr is not None
        for raw in process.stderr:
            err.append(raw)
            on_stderr(raw.decode(errors="replace").rstrip())
        code = process.wait()
    finally:
        killer.cancel()
        if process.poll() is None:
            process.kill()
        process.wait()
        if drain is not None:
            drain.join()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    if killer.finished.is_set() and code < 0:
        raise subprocess.TimeoutExpired(argv, timeout)
    return subprocess.CompletedProcess(argv, code, b"".join(out), b"".join(err))


def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    timeout: float,
    as_service_user: bool = False,
    env: dict[str, str] | None = None,
    stdout: IO[bytes] | int | None = subprocess.PIPE,
    on_stderr: Callable[[str], None] | None = None,
    stdin: bytes = b"",
    inherit_env: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run a short-lived tool (initdb, pg_dump, redis-check-rdb) with a deadline and a clear error.

    ``on_stderr`` receives each stderr line as it is written (e.g. ``pg_restore --verbose`` to report progress);
    the whole stderr is still returned. ``stdin`` is what the tool reads (never the terminal of the run).
    The tool gets :func:`minimal_env` plus ``env``; ``inherit_env`` passes the harness's whole environment
    instead, for tools the operator points at their own systems (``pg_basebackup`` of production, ``npm``).

    Raises:
        ServiceError: the tool is missing, timed out or failed; the message carries its last stderr line.
    """
    args = [os.fspath(a) for a in argv]
    full_env = {**os.environ, RUN_ENV: _RUN_ID, **(env or {})} if inherit_env else minimal_env(env)
    setup = child_setup(service_user() if as_service_user else None, signal.SIGKILL)
    try:
        if on_stderr is None:
            result = subprocess.run(args, input=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                                    env=full_env, preexec_fn=setup, check=False)  # fmt: skip
        else:
            result = _run_following(args, env=full_env, setup=setup, stdout=stdout, timeout=timeout,
                                    on_stderr=on_stderr)  # fmt: skip
    except FileNotFoundError:
        raise ServiceError(f"{what}: executable {os.fspath(argv[0])!r} not found") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{what} did not finish within {timeout:g} s") from None
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit code {result.returncode}"
        raise ServiceError(f"{what} failed: {detail}")
    return result


@dataclass
class ManagedProcess:
    """A long-running server process that is always stopped: politely first, then killed.

    Its output goes to a log file in its own directory, so a failed start can quote the log. Its environment is
    :func:`minimal_env` plus ``env``: a server never inherits the harness's secrets.
    """

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    user: ServiceUser | None = None
    memory_limit: int | None = None
    stop_signal: int = signal.SIGTERM
    death_signal: int = signal.SIGKILL
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        """Start the process in its own session, with the run label in its environment."""
        # Never through a link: the harness may be root, and the log's directory is one a server can write.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
        log_file = os.fdopen(os.open(self.log_path, flags, 0o644), "ab")
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=minimal_env(self.env),
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=child_setup(self.user, self.death_signal, self.memory_limit),
            )
        except FileNotFoundError:
            raise ServiceError(f"{self.name}: executable {self.argv[0]!r} not found") from None
        finally:
            log_file.close()
        log.debug("started %s (pid %s): %s", self.name, self.process.pid, " ".join(self.argv))
        return self

    @property
    def pid(self) -> int:
        """The process id; only valid once started."""
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the process's log, to quote in an error."""
        with contextlib.suppress(OSError), os.fdopen(os.open(self.log_path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as log:
            text = log.read().decode(errors="replace").strip().splitlines()
            return " | ".join(text[-lines:])
        return ""

    def ensure_alive(self) -> None:
        """Raise with the log's tail if the process has exited (used inside readiness probes)."""
        if self.process is not None and self.process.poll() is not None:
            raise ServiceError(
                f"{self.name} exited with code {self.process.returncode} during start: {self.log_tail()}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process group: the stop signal, then SIGKILL after ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %g s; killing it", self.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def remove_dir(path: Path) -> None:
    """Remove a throwaway directory, even one partly owned by the service user."""
    shutil.rmtree(path, ignore_errors=True)
