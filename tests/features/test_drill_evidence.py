"""The monthly drill on the sandbox as an operator runs it, read as an auditor reads its evidence.

One ``pytest features/ -m monthly`` in a subprocess with the embedded ``drill.toml`` (its reports moved to the
test's directory). Its record must say it is a rehearsal, name everything it restored and the servers it
restored into, give each store its RPO in hours, show phases that overlap as overlapping, and no file of its
Allure results may hold a credential or a step parameter that is a Python object's dump.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.config import PROJECT_ROOT
from harness.records import DrillRecord, load_chain
from harness.records.markdown import SANDBOX_BANNER
from harness.services.s3 import ACCESS_KEY, SECRET_KEY
from sandbox.target import toml_text
from sandbox.world import MANIFEST_SEED, RECORDS_SEED

pytestmark = pytest.mark.slow

OPERATOR = "ops-auditor-check"
CREDENTIALS = (ACCESS_KEY, SECRET_KEY, MANIFEST_SEED, RECORDS_SEED)
"""The sandbox's published credentials: rehearsal keys, but no report may show them."""
DUMP = re.compile(r"object at 0x|^\w+\(\w+=|^\{'")
"""What a parameter that is a Python object's ``repr`` (a dataclass, a dict) looks like."""


@dataclass(frozen=True)
class Drill:
    output: str
    record: DrillRecord
    markdown: str
    results: Path


def sandbox_drill_toml(reports: Path) -> str:
    """The embedded drill.toml for a copy under ``reports`` (its paths are ``package:path``, valid anywhere)."""
    sections = tomllib.loads((PROJECT_ROOT / "drill.toml").read_text())
    sections["reports"]["dir"] = str(reports)
    return toml_text(sections)


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    home = tmp_path_factory.mktemp("evidence")
    config = home / "drill.toml"
    config.write_text(sandbox_drill_toml(home / "reports"))
    results = home / "allure-results"
    env = {**os.environ, "DRILL_OPERATOR": OPERATOR}
    env.pop("DRILL_CONFIG", None)
    argv = [sys.executable, "-m", "pytest", "features/", "-m", "monthly", "-p", "no:randomly", "-p",
            "no:cacheprovider", f"--drill-config={config}", f"--alluredir={results}"]  # fmt: skip
    done = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    drills = home / "reports" / "drills"
    records = load_chain(drills)
    assert len(records) == 1, output[-4000:]
    return Drill(output, records[0], next(drills.glob("drill-*.md")).read_text(), results)


def test_no_allure_file_holds_a_credential_or_an_object_dump(drill: Drill) -> None:
    files = [path for path in drill.results.rglob("*") if path.is_file()]
    assert len(files) > 30
    leaks = [(path.name, secret) for path in files for secret in CREDENTIALS if secret.encode() in path.read_bytes()]
    assert leaks == []
    parameters: list[tuple[str, str]] = []

    def collect(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            parameters.extend((p["name"], p["value"]) for p in step.get("parameters", []))
            collect(step.get("steps", []))

    for path in drill.results.glob("*-result.json"):
        collect(json.loads(path.read_text()).get("steps", []))
    assert parameters  # parsed step arguments ({hours:d}, quoted names) are still shown
    assert [(name, value) for name, value in parameters if DUMP.search(value)] == []
    assert not {"app", "restored", "deployment", "drill_record", "staging"} & {name for name, _ in parameters}


def test_a_sandbox_drill_is_a_rehearsal_in_record_console_and_allure(drill: Drill) -> None:
    assert drill.record.sandbox
    assert f"> **{SANDBOX_BANNER}.**" in drill.markdown
    assert {control.status for control in drill.record.controls} == {"rehearsal, not evidence"}
    assert "(sandbox rehearsal, not evidence)" in drill.output
    assert f"drill.sandbox=true: {SANDBOX_BANNER}" in (drill.results / "environment.properties").read_text()
    assert drill.record.attribution is not None
    assert drill.record.attribution.operator == OPERATOR


def test_every_backup_restored_and_every_staging_server_is_recorded(drill: Drill) -> None:
    restored = {item.what: item for item in drill.record.restored}
    assert set(restored) == {"PostgreSQL dump", "Redis copy", "base backup"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", item.sha256) and item.size > 0 for item in restored.values())
    servers = {server.what: server for server in drill.record.staging}
    assert set(servers) == {"staging PostgreSQL", "staging Redis", "base backup server"}
    assert servers["staging PostgreSQL"].settings["fsync"] == "off"
    assert all(server.host and server.port for server in servers.values())
    rto = next(line for line in drill.markdown.splitlines() if line.startswith("| RTO |"))
    assert "staging PostgreSQL ran with fsync = off" in rto


def test_each_store_has_an_rpo_in_hours_and_phases_carry_their_times(drill: Drill) -> None:
    rpo = {m.name: m.unit for m in drill.record.measures if m.name.startswith("RPO")}
    assert rpo == {"RPO": "h", "RPO Redis": "h"}
    assert not [m.name for m in drill.record.measures if m.name.startswith("data loss")]
    names = {phase.name for phase in drill.record.rto_timeline}
    assert {"download", "provision", "provision Redis", "restore"} <= names
    assert all(0 <= p.start_s <= p.end_s for p in drill.record.rto_timeline)


def test_the_restore_scenario_shows_when_its_phases_really_ran(drill: Drill) -> None:
    """The restore runs ahead on another thread; the scenario's own duration is not the restore's."""
    results = [json.loads(path.read_text()) for path in drill.results.glob("*-result.json")]
    scenario = next(r for r in results if r["name"] == "The newest logical backup restores into isolated staging")
    attachments = [a for step in scenario["steps"] for a in step.get("attachments", [])]
    table = next(a for a in attachments if a["name"] == "restore phases so far (seconds after the incident)")
    rows = (drill.results / table["source"]).read_text().splitlines()
    assert rows[0] == "phase,start,end,seconds"
    assert {"download", "provision", "restore"} <= {row.split(",")[0] for row in rows[1:]}
