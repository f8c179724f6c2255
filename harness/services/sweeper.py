"""Find and remove what a killed run left behind: its processes and its labelled temp directories.

Every harness process writes an owner file ``codeblack-drills-<run>-<pid>.owner`` in the temp directory;
every child carries ``CODEBLACK_DRILLS_RUN=<run>`` in its environment and every directory is named
``codeblack-drills-<run>-...``; every container carries the label ``codeblack-drills.run=<run>``. A run whose
owners are all dead is stale: its processes are killed, its directories removed and, when a Docker engine
answers, its containers removed. Live runs (another drill running at the same time) are never touched.
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

from harness.services.base import LABEL, RUN_ENV, remove_dir, run_id
from harness.services.docker import remove_containers

__all__ = ["Leftovers", "claim_run", "find_leftovers", "sweep"]

log = logging.getLogger("harness.services")

_NAME = re.compile(rf"^{LABEL}-(?P<run>[0-9a-f]+)-")


def _tmp() -> Path:
    return Path(tempfile.gettempdir())


def claim_run() -> Path:
    """Mark this process as an owner of the current run (idempotent)."""
    owner = _tmp() / f"{LABEL}-{run_id()}-{os.getpid()}.owner"
    owner.write_text(str(os.getpid()))
    return owner


def _owners() -> dict[str, list[Path]]:
    owners: dict[str, list[Path]] = {}
    for owner in _tmp().glob(f"{LABEL}-*.owner"):
        match = _NAME.match(owner.name)
        if match:
            owners.setdefault(match.group("run"), []).append(owner)
    return owners


def _dead_runs() -> set[str]:
    """Runs that claimed ownership and whose owners have all exited.

    Runs with no owner file are unknown and left alone: they may belong to a tool that does not claim them.
    """
    dead = set()
    for run, owners in _owners().items():
        pids = [owner.stem.rsplit("-", 1)[-1] for owner in owners]
        if not any(pid.isdigit() and psutil.pid_exists(int(pid)) for pid in pids):
            dead.add(run)
    return dead


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
    """Labelled processes and directories, of one run or of every run (or of dead runs only)."""
    dead = _dead_runs() if stale_only else set()

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
        match = _NAME.match(entry.name)
        if entry.is_dir() and match and wanted(match.group("run")):
            found.directories.append(entry)
    return found


def sweep(run: str | None = None) -> Leftovers:
    """Kill and remove the leftovers of dead runs (or of one named run); returns what was removed."""
    runs = {run} if run else _dead_runs()
    found = find_leftovers(run, stale_only=run is None)
    found.containers = remove_containers(runs)
    for proc in found.processes:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(found.processes, timeout=5)
    for directory in found.directories:
        remove_dir(directory)
    owners = _owners()
    for swept in runs:
        for owner in owners.get(swept, []):
            owner.unlink(missing_ok=True)
    if found:
        log.warning("swept leftovers of dead drill runs: %s", found.describe())
    return found
