"""Find and remove what a killed run left behind: its processes and its labelled temp directories.

Every harness process writes an owner file ``codeblack-drills-<run>-<pid>.owner`` in the temp directory;
every child carries ``CODEBLACK_DRILLS_RUN=<run>`` in its environment and every directory is named
``codeblack-drills-<run>-...``; every container carries the label ``codeblack-drills.run=<run>``. A run whose
owners are all dead is stale: its processes are killed, its directories and owner files removed and, when a
Docker engine answers, its containers removed. Live runs (another drill running at the same time) are never
touched, nor anything whose name does not carry a run that claimed ownership.

A run id names files, so a run claims ownership only under a safe token (letters, digits, underscores:
:func:`check_run_id`). Owner files of any run id are still read (the pid is what follows the last ``-``), and a
directory belongs to the longest known run id its name starts with, so a dead run ``a`` never takes the
directories of a live run ``a-b`` named before run ids were checked. An owner whose pid now belongs to another
process (the pid was reused) is told apart by the process's start time, which the owner file records.

A user other than root sweeps only the dead runs its own processes claimed: another user's (a root drill's)
owner files and directories in the sticky temp directory are not its to remove, and trying ended the drill's
start in a ``PermissionError``. They are named in one warning, with the command that removes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.errors import ConfigError
from harness.services.base import LABEL, RUN_ENV, remove_dir, run_id
from harness.services.docker import remove_containers

__all__ = ["Leftovers", "check_run_id", "claim_run", "find_leftovers", "live_runs", "sweep"]

log = logging.getLogger("harness.services")

_SAFE_RUN = re.compile(r"[A-Za-z0-9_]{1,64}")
_FIRST_TOKEN = re.compile(r"([A-Za-z0-9_]+)-")


def _tmp() -> Path:
    return Path(tempfile.gettempdir())


def check_run_id(run: str | None = None) -> str:
    """The run id (this run's by default), refused unless it is a safe token.

    Raises:
        ConfigError: one line naming the variable, the value and what a run id may hold.
    """
    run = run_id() if run is None else run
    if not _SAFE_RUN.fullmatch(run):
        raise ConfigError(
            f"{RUN_ENV}={run!r}: a run id may hold only letters, digits and underscores (1 to 64), because it "
            "names the run's temp directories and owner files; choose one such as 'nightly_42' or unset it"
        )
    return run


def claim_run() -> Path:
    """Mark this process as an owner of the current run (idempotent).

    Raises:
        ConfigError: the run id (``CODEBLACK_DRILLS_RUN``) is not a safe token.
    """
    owner = _tmp() / f"{LABEL}-{check_run_id()}-{os.getpid()}.owner"
    owner.write_text(f"{os.getpid()} {psutil.Process().create_time()!r}")
    return owner


def _owners() -> dict[str, list[Path]]:
    """Owner files by run id, whatever the run id (the pid is what follows its last ``-``)."""
    owners: dict[str, list[Path]] = {}
    for owner in _tmp().glob(f"{LABEL}-*.owner"):
        run, _, pid = owner.name[len(LABEL) + 1 : -len(".owner")].rpartition("-")
        if run and pid.isdigit():
            owners.setdefault(run, []).append(owner)
    return owners


def _owner_alive(owner: Path) -> bool:
    """Whether the process that wrote ``owner`` still runs (a reused pid with another start time does not)."""
    pid = int(owner.name[: -len(".owner")].rpartition("-")[2])
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return False
    try:
        recorded = owner.read_text().split()
        return len(recorded) < 2 or abs(float(recorded[1]) - started) < 1
    except (OSError, ValueError):
        return True  # unreadable: assume it lives rather than sweep a run that may be running


def _dead_runs(owners: dict[str, list[Path]]) -> set[str]:
    """Runs that claimed ownership and whose owners have all exited.

    Runs with no owner file are unknown and left alone: they may belong to a tool that does not claim them.
    """
    return {run for run, files in owners.items() if not any(_owner_alive(owner) for owner in files)}


def _ours(owners: dict[str, list[Path]], runs: set[str]) -> tuple[set[str], set[str]]:
    """``runs`` split into those this user may sweep and those another user's process claimed (root: none)."""
    me = os.geteuid()
    if me == 0:
        return runs, set()

    def claimed_by_other(owner: Path) -> bool:
        try:
            return owner.lstat().st_uid != me
        except OSError:
            return False  # gone meanwhile: nothing of it to leave alone

    theirs = {run for run in runs if any(claimed_by_other(owner) for owner in owners.get(run, []))}
    return runs - theirs, theirs


def live_runs() -> set[str]:
    """Runs on this machine with an owner that still runs (their databases on a staging server are theirs)."""
    owners = _owners()
    return set(owners) - _dead_runs(owners)


def _run_of(name: str, known: set[str]) -> str | None:
    """The run a labelled name belongs to: the longest known run id it starts with, else its first token."""
    rest = name.removeprefix(f"{LABEL}-")
    if rest == name:
        return None
    matching = [run for run in known if rest.startswith(f"{run}-")]
    if matching:
        return max(matching, key=len)
    token = _FIRST_TOKEN.match(rest)
    return token.group(1) if token else None


@dataclass
class Leftovers:
    """Processes, directories and (once swept) containers carrying a run label."""

    processes: list[psutil.Process] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.directories or self.containers)

    def describe(self) -> str:
        """One line listing what is left, for an assertion message or a log line."""
        procs = ", ".join(f"{p.pid} {p.info.get('name')}" for p in self.processes)
        dirs = ", ".join(str(d) for d in self.directories)
        return f"processes: [{procs}]; directories: [{dirs}]; containers: [{', '.join(self.containers)}]"


def find_leftovers(run: str | None = None, *, stale_only: bool = False) -> Leftovers:
    """Labelled processes, directories and containers, of one run or of every run (or of dead runs only)."""
    owners = _owners()
    dead = _ours(owners, _dead_runs(owners))[0] if stale_only else set()
    known = set(owners) | ({run} if run else set())

    def wanted(label: str | None) -> bool:
        if label is None:
            return False
        if run is not None:
            return label == run
        return not stale_only or label in dead

    found = Leftovers()
    for proc in psutil.process_iter(["pid", "name"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and wanted(proc.environ().get(RUN_ENV)):
                found.processes.append(proc)
    for entry in _tmp().glob(f"{LABEL}-*"):
        if entry.is_dir() and not entry.is_symlink() and wanted(_run_of(entry.name, known)):
            found.directories.append(entry)
    runs = {run} if run is not None else (dead if stale_only else known)
    found.containers = remove_containers(runs, remove=False)
    return found


def sweep(run: str | None = None) -> Leftovers:
    """Kill and remove the leftovers of dead runs (or of one named run); returns what was removed."""
    owners = _owners()
    runs, theirs = ({run}, set()) if run else _ours(owners, _dead_runs(owners))
    if theirs:
        log.warning("left the leftovers of dead drill run(s) %s in %s: another user's, which only that user or "
                    "root may remove (sudo codeblack-drills sweep)", ", ".join(sorted(theirs)), _tmp())  # fmt: skip
    found = find_leftovers(run, stale_only=run is None)
    found.containers = remove_containers(runs)
    for proc in found.processes:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(found.processes, timeout=5)
    for directory in found.directories:
        remove_dir(directory)
    for swept in runs:
        for owner in owners.get(swept, []):
            owner.unlink(missing_ok=True)
    if found:
        log.warning("swept leftovers of dead drill runs: %s", found.describe())
    return found
