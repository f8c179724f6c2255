"""Run a feature as an operator runs it: ``pytest features/…`` in a subprocess against a (broken) deployment.

The child's ``drill.toml`` describes a real target (``target.sandbox = false``): the deployment's S3 endpoint
and buckets, credentials in the environment variables the file names, reports under the test's directory.
The child runs under a run id chosen here, so a test can look for what it left behind
(:func:`leftovers`). Failure messages are read from the JUnit report, so the operator-facing message itself
is what a test asserts; the whole terminal output and the drill records are kept for checks on their form.
"""

from __future__ import annotations

import glob
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.config import PROJECT_ROOT
from harness.deployment import Deployment
from harness.services.base import LABEL, RUN_ENV
from sandbox.target import drill_env, write_drill_toml

RESTORE_DRILL = "features/test_restore_drill.py"

#: Called in a thread while the child runs, with the child's run id and process (to inject a fault).
During = Callable[[str, "subprocess.Popen[str]"], None]


@dataclass(frozen=True)
class DrillRun:
    """What one child drill did: its run id, exit code, terminal output, failures and reports."""

    run: str
    returncode: int
    output: str
    failures: dict[str, str]
    reports: Path
    seconds: float

    def records(self) -> list[dict[str, Any]]:
        """The drill records the child wrote (JSON), oldest first."""
        return [json.loads(path.read_text()) for path in sorted((self.reports / "drills").glob("drill-*.json"))]


def run_drill(
    directory: Path,
    target: Deployment,
    select: str,
    *,
    feature: str = RESTORE_DRILL,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    during: During | None = None,
    timeout: float = 300,
    **sections: dict[str, Any],
) -> DrillRun:
    """Run the scenarios of ``feature`` matching ``select`` against ``target`` and collect what they left.

    ``during`` runs in a thread while the child runs (a fault injector); the child is stopped with SIGTERM
    (then SIGKILL) if it outlives ``timeout``, so a hang fails the test instead of hanging it.
    """
    config = write_drill_toml(directory, target, **sections)
    run = f"rel{uuid.uuid4().hex[:7]}"
    junit = directory / "junit.xml"
    argv = [sys.executable, "-m", "pytest", feature, "-p", "no:randomly", f"--drill-config={config}",
            f"--alluredir={directory / 'allure'}", f"--junitxml={junit}", "-k", select, *args]  # fmt: skip
    started = time.monotonic()
    child = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=drill_env(target, run, env), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    injector = threading.Thread(target=during, args=(run, child), daemon=True) if during else None
    if injector is not None:
        injector.start()
    try:
        output = child.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGTERM)
        output = child.communicate(timeout=60)[0] + f"\n[killed after {timeout:g} s]"
    if injector is not None:
        injector.join(30)
    return DrillRun(run, child.returncode, output, _failures(junit), directory / "reports", time.monotonic() - started)


def _failures(junit: Path) -> dict[str, str]:
    messages: dict[str, str] = {}
    if not junit.exists():
        return messages
    for test in ET.parse(junit).getroot().iter("testcase"):
        for node in (test.find("failure"), test.find("error")):
            if node is not None:
                messages[test.get("name", "")] = node.get("message", "")
    return messages


def leftovers(run: str) -> list[str]:
    """Processes and temp directories labelled with the child run's id."""
    label = f"{LABEL}-{run}-"
    procs = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        cmdline, environ = proc.info["cmdline"] or [], proc.info["environ"] or {}
        if any(label in a for a in cmdline) or environ.get(RUN_ENV) == run:
            procs.append(f"{proc.pid} {' '.join(cmdline)[:80]}")
    return procs + glob.glob(f"/tmp/{label}*")
