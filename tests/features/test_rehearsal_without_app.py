"""The deploy rehearsal of a target with backups but no app: the upgrade of the restored copy, timed, its locks shown.

The sandbox world (dumps in a bucket) with ``[app] enabled = false`` and a pending revision that rewrites
``orders`` (``tests/data/migration_sets/lock_rewrite``). The rehearsal runs ``pytest features/`` in a subprocess
as CI would: the ``@app`` rehearsal is not applicable, the one without an app upgrades the restored copy and
attaches each statement seen running (with its lock wait) and the strongest lock per table, and no step of it
touches an app (maintenance switch, probe write, health).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.config import PROJECT_ROOT
from tests.data.migration_sets import build_project

pytestmark = pytest.mark.slow

WITHOUT_APP = "The pending migrations are rehearsed on a staging copy of the newest backup, the target having no app"


def _attachment(allure: Path, result: dict[str, Any], name: str) -> list[dict[str, str]]:
    step = next(a for s in result["steps"] for a in s.get("attachments", []) if a["name"] == name)
    return list(csv.DictReader(io.StringIO((allure / step["source"]).read_text())))


def test_without_an_app_the_rehearsal_is_the_upgrade_of_the_restored_copy_with_its_timings_and_locks(
    tmp_path: Path,
) -> None:
    project = build_project("lock_rewrite", tmp_path)
    # The sandbox's orders are a couple of thousand rows: rewritten in milliseconds, the ALTER could run between
    # two of the lock watcher's samples and go unseen (as harness/migrations/locks.py says). A default that
    # sleeps a moment per row keeps it running for about two seconds on any machine, however fast or busy.
    revision = next((project / "versions").glob("10c4ed000001_*.py"))
    slow = revision.read_text().replace(
        '"gen_random_uuid()::text"', '"concat(gen_random_uuid()::text, pg_sleep(0.0005))"'
    )
    assert slow != revision.read_text()
    revision.write_text(slow)
    config = project / "drill.toml"  # its directory is the migration child's working directory: readable by it
    config.write_text(
        f'[target]\nname = "no-app"\nsandbox = true\n\n[app]\nenabled = false\n\n[reports]\ndir = "{tmp_path}/reports"'
        f'\n\n[migrations]\nscript_location = "{project}"\nexpected_head = "10c4ed000001"\n'
    )
    allure, junit = tmp_path / "allure", tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "features/test_migration_gates.py", "-p", "no:randomly", "-q", "-rs",
         f"--drill-config={config}", f"--alluredir={allure}", f"--junitxml={junit}", "-k", "rehearsed"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    skipped = {
        test.get("name", ""): node.get("message", "")
        for test in ET.parse(junit).getroot().iter("testcase")
        if (node := test.find("skipped")) is not None
    }
    assert list(skipped.values()) == [
        "not applicable: the target has no application ([app] enabled = false in drill.toml)"
    ]
    [rehearsal] = [
        loaded
        for path in allure.glob("*-result.json")
        if (loaded := json.loads(path.read_text()))["name"] == WITHOUT_APP
    ]
    assert rehearsal["status"] == "passed"
    steps = [step["name"] for step in rehearsal["steps"]]
    assert not [step for step in steps if re.search(r"\bapp\b|\bwrites?\b|maintenance|health", step)], steps
    pending = json.loads((allure / rehearsal["steps"][3]["attachments"][0]["source"]).read_text())
    assert pending == {"deployed": "b6e8dcb19a40", "pending": ["10c4ed000001"]}
    statements = _attachment(allure, rehearsal, "statements seen running, with lock waits")
    assert any(
        row["revision"] == "10c4ed000001" and row["statement"].startswith("ALTER TABLE orders ADD COLUMN reference")
        for row in statements
    ), statements
    locks = _attachment(allure, rehearsal, "strongest lock per table")
    assert {(row["table"], row["strongest lock"]) for row in locks} >= {("orders", "AccessExclusiveLock")}, locks
