"""The drill_record plugin end to end: a tiny pytest-bdd drill in a subprocess writes the record and Allure files."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.config import PROJECT_ROOT
from harness.records import load_chain, verify_chain
from harness.records.chain import record_files
from harness.records.markdown import SANDBOX_BANNER
from harness.services.base import RUN_ENV
from harness.services.s3 import MotoS3
from harness.storage.signing import ManifestSigner

RECORDS_SEED = "c2Vzc2lvbiByZWNvcmRzIHRlc3Qgc2lnbmluZyBrZXk="  # base64 of 32 bytes: a test key
SECRETS = ("s3cr3t-db-password-7731", "signing-key-QmFzZTY0U2VjcmV0")
OPERATOR = "ops-dana"
# A real (non-sandbox) target's storage credentials: asked for at start-up, never used by the tiny drill.
TARGET_SECRETS = {"DRILL_S3_ACCESS_KEY_ID": "tiny-access-key-1", "DRILL_S3_SECRET_ACCESS_KEY": "tiny-secret-key-1"}
UNREGISTERED = "unregistered-aws-secret-9QxZ"  # a credential in a fixture that no one registered as a secret

FEATURE = """\
Feature: Restore drill
  The newest backup restores into staging and the app answers.

  @monthly @restore_drill
  Scenario: The newest dump restores within the RTO
    Given the drill restored the newest dump in {rto:g} minutes with data {rpo:g} hours old
    Then the restored database answers

  @monthly @restore_drill
  Scenario: The restored rows match the manifest
    Given the drill restored the newest dump in {rto:g} minutes with data {rpo:g} hours old
    Then the row count of "orders" matches {rows:d}

  @monthly @restore_drill
  Scenario: The app answers on the restored copy
    Given the app started against the restored copy
    Then the restored database answers
"""

PLAN = """\
# Tiny target: recovery plan

## Restore Procedure (Minimum)
Restore the newest dump into staging and count its rows.

## Recovery Drills
Once a month, with RPO and RTO measured.
"""

CONFTEST = """\
from datetime import UTC, datetime

import pytest
from pytest_bdd import given, parsers, then

from harness.errors import CheckFailed, HarnessError
from harness.redact import register_secret
from harness.storage.manifest import BackupManifest, TableStats

pytest_plugins = ["fixtures.config", "fixtures.drill_record", "fixtures.step_parameters"]
SECRETS = {secrets!r}
for secret in SECRETS:
    register_secret(secret)


@given(parsers.parse("the drill restored the newest dump in {{rto:g}} minutes with data {{rpo:g}} hours old"))
def _restored(drill_record, rto, rpo):
    drill_record.backup_used(BackupManifest(
        kind="logical", key="postgres/logical/codeblack-20261124T000000Z.dump",
        taken_at=datetime(2026, 11, 24, tzinfo=UTC),
        format="custom", sha256="ab" * 32, size=123456), {{"orders": TableStats(rows=11, rows_last_24h=3)}})
    drill_record.measure("RPO", rpo, 6, "h", "newest heartbeat in the restored database")
    drill_record.measure("RTO", rto, 60, "min")
    drill_record.phases({{"download": 12.5, "pg_restore": 300.0, "app health": 4.0}})
    drill_record.environment("database.password", SECRETS[0])


@given("the app started against the restored copy")
def _app():
    raise HarnessError("drill.toml: [app] command: executable 'uvicorn' not found; install the app's dependencies")


@pytest.fixture
def app_environment():
    return {{"AWS_SECRET_ACCESS_KEY": {unregistered!r}}}


@then("the restored database answers")
def _answers(app_environment, drill_record):
    pass


@then(parsers.parse('the row count of "{{table}}" matches {{rows:d}}'))
def _rows(table, rows):
    if rows != 10:
        raise CheckFailed(f"{{table}}: restored 10 rows, manifest says {{rows}} (signed with {{SECRETS[1]}})")
"""

INI = """\
[pytest]
markers =
    monthly: monthly drill
    restore_drill: restore area
bdd_features_base_dir = features/
"""


@dataclass(frozen=True)
class DrillRun:
    """One run of the tiny drill: where it wrote and what it printed."""

    root: Path
    output: str
    returncode: int

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def results(self) -> Path:
        return self.reports / "allure-results"


def write_drill_project(
    root: Path, *, rpo: float = 1.5, rto: float = 12.0, rows: int = 11, sandbox: bool = False, toml: str = ""
) -> Path:
    """A pytest-bdd project using the suite's drill_record plugin; ``rows != 10`` makes one scenario fail.

    ``toml`` is appended to its ``drill.toml`` (objectives, approvals, report settings).
    """
    (root / "features").mkdir(parents=True, exist_ok=True)
    (root / "features" / "restore_drill.feature").write_text(FEATURE.format(rpo=rpo, rto=rto, rows=rows))
    (root / "features" / "test_restore_drill.py").write_text(
        'from pytest_bdd import scenarios\n\nscenarios("restore_drill.feature")\n'
    )
    (root / "conftest.py").write_text(CONFTEST.format(secrets=SECRETS, unregistered=UNREGISTERED))
    (root / "pytest.ini").write_text(INI)
    (root / "plan.md").write_text(PLAN)
    (root / "drill.toml").write_text(
        f'[target]\nname = "tiny-target"\nsandbox = {str(sandbox).lower()}\n\n[reports]\ndir = "reports"\n'
        f'plan = "plan.md"\n{toml}'
    )
    return root


def run_drill(root: Path, *args: str, own_run_dir: bool = False) -> DrillRun:
    """Run the project's features with Allure results, as an operator would (``DRILL_OPERATOR`` set).

    ``own_run_dir``: results go where a drill puts them by default (``reports/runs/<run id>/``), else into
    ``reports/allure-results``.
    """
    # Only the plugins the drill needs: faster, and other installed plugins cannot change the outcome.
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "DRILL_OPERATOR": OPERATOR, **TARGET_SECRETS}  # fmt: skip
    env.pop("DRILL_CONFIG", None)
    env.pop(RUN_ENV, None)  # each drill is a run of its own
    results = [] if own_run_dir else ["--alluredir", "reports/allure-results"]
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "pytest_bdd.plugin",
            "-p", "allure_pytest_bdd.plugin", "--drill-config", "drill.toml", *results, "features", *args]  # fmt: skip
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=180, check=False)
    return DrillRun(root, done.stdout + done.stderr, done.returncode)


@pytest.fixture(scope="module")
def failing_drill(tmp_path_factory: pytest.TempPathFactory) -> DrillRun:
    return run_drill(write_drill_project(tmp_path_factory.mktemp("drill"), rpo=7.5))


def test_terminal_summary_ends_with_verdict_rpo_and_rto(failing_drill: DrillRun) -> None:
    assert "drill verdict: NO-GO" in failing_drill.output
    assert "RPO: 7.5 h (objective 6 h) MISSED (newest heartbeat in the restored database)" in failing_drill.output
    assert "RTO: 12 min (objective 60 min) met" in failing_drill.output
    assert "action: RPO: 7.5 h exceeds objective 6 h: increase pg_dump frequency or check the backup cron" in (
        failing_drill.output
    )


def test_record_holds_checks_backup_and_action_items(failing_drill: DrillRun) -> None:
    (record,) = load_chain(failing_drill.reports / "drills")
    assert record.target == "tiny-target"
    assert record.backup is not None
    assert record.backup.key == "postgres/logical/codeblack-20261124T000000Z.dump"
    assert [(c.scenario, c.status, c.kind) for c in record.checks] == [
        ("The newest dump restores within the RTO", "passed", "check"),
        ("The restored rows match the manifest", "failed", "check"),
        ("The app answers on the restored copy", "failed", "setup"),
    ]
    assert record.checks[1].message == "orders: restored 10 rows, manifest says 11 (signed with ***)"
    assert record.checks[2].message.startswith("drill.toml: [app] command: executable 'uvicorn' not found")
    assert [item.what for item in record.action_items] == [
        "Restore drill: The restored rows match the manifest",
        "Restore drill: The app answers on the restored copy",
        "RPO",
    ]
    assert record.action_items[1].todo.startswith("the drill could not run this check")
    assert record.rto_phases == {"download": 12.5, "pg_restore": 300.0, "app health": 4.0}
    assert verify_chain(failing_drill.reports / "drills").ok


def _results(run: DrillRun) -> list[dict[str, object]]:
    return [json.loads(path.read_text()) for path in run.results.glob("*-result.json")]


def test_every_scenario_carries_plan_labels_and_controls(failing_drill: DrillRun) -> None:
    scenario = next(r for r in _results(failing_drill) if r["name"] == "The newest dump restores within the RTO")
    labels = {(label["name"], label["value"]) for label in scenario["labels"]}  # type: ignore[attr-defined]
    assert {
        ("epic", "Backend Operations: Backup and Migration Plan"),
        ("feature", "Restore drill"),
        ("story", "The newest dump restores within the RTO"),
        ("severity", "blocker"),
        ("tag", "monthly"),
        ("control", "SOC 2 CC7.5"),
    } <= labels
    assert scenario["links"] == [
        {
            "type": "link",
            "url": "plan.html#restore-procedure-minimum",
            "name": "Plan: Restore Procedure (Minimum)",
        }
    ]


def test_results_carry_environment_and_the_verdict(failing_drill: DrillRun) -> None:
    environment = (failing_drill.results / "environment.properties").read_text()
    assert "backup.key=postgres/logical/codeblack-20261124T000000Z.dump\n" in environment
    assert "drill.verdict=NO-GO\n" in environment
    verdict = next(r for r in _results(failing_drill) if str(r["name"]).startswith("Drill verdict"))
    assert verdict["name"] == "Drill verdict NO-GO, RPO 7.5 h (objective 6 h), RTO 12 min (objective 60 min)"
    assert verdict["status"] == "failed"
    assert {a["type"] for a in verdict["attachments"]} == {"text/markdown", "application/json", "image/svg+xml"}  # type: ignore[attr-defined]


def test_no_planted_secret_appears_in_any_report_file(failing_drill: DrillRun) -> None:
    files = [path for path in failing_drill.reports.rglob("*") if path.is_file()]
    assert len(files) > 10  # records, chart, HEAD, results, attachments
    failed = next(r for r in _results(failing_drill) if r["name"] == "The restored rows match the manifest")
    assert "(signed with ***)" in failed["statusDetails"]["message"]  # type: ignore[index]  # the plant reached it
    leaks = [(path.name, secret) for path in files for secret in SECRETS if secret.encode() in path.read_bytes()]
    assert leaks == []


def _steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result.get("steps", []))


def test_step_parameters_are_the_parsed_arguments_never_fixtures(failing_drill: DrillRun) -> None:
    shown = {(step["name"], str(param["name"]), str(param["value"])) for result in _results(failing_drill)
             for step in _steps(result) for param in step.get("parameters", [])}  # fmt: skip
    assert shown == {
        ("Given the drill restored the newest dump in 12 minutes with data 7.5 hours old", "rto", "12.0"),
        ("Given the drill restored the newest dump in 12 minutes with data 7.5 hours old", "rpo", "7.5"),
        ('Then the row count of "orders" matches 11', "table", "'orders'"),
        ('Then the row count of "orders" matches 11', "rows", "11"),
    }
    leaks = [path.name for path in failing_drill.results.rglob("*") if UNREGISTERED.encode() in path.read_bytes()]
    assert leaks == []


def test_a_second_drill_extends_the_chain(failing_drill: DrillRun) -> None:
    again = run_drill(failing_drill.root)
    records = load_chain(again.reports / "drills")
    assert len(records) == 2
    assert records[1].previous_hash == records[0].hash
    assert str(verify_chain(again.reports / "drills")) == "drill record chain OK: 2 records"


def test_a_broken_chain_fails_the_session_without_a_traceback(failing_drill: DrillRun) -> None:
    oldest = sorted((failing_drill.reports / "drills").glob("drill-*.json"))[0]
    oldest.write_text(oldest.read_text().replace('"value": 7.5', '"value": 5.5'))
    broken = run_drill(failing_drill.root)
    assert f"drill record NOT kept: {oldest}: altered" in broken.output
    assert "Traceback" not in broken.output
    assert broken.returncode == 1


def test_the_record_names_operator_host_commit_configuration_and_objectives(failing_drill: DrillRun) -> None:
    (record,) = load_chain(failing_drill.reports / "drills")[:1]
    who = record.attribution
    assert who is not None
    assert (who.operator, who.operator_source) == (OPERATOR, "$DRILL_OPERATOR")
    assert who.host == socket.gethostname()
    head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    assert (who.harness_commit.removesuffix("+dirty"), who.harness_commit_source) == (head, "git")
    toml = failing_drill.root / "drill.toml"
    assert (who.config_path, who.config_sha256) == (str(toml), hashlib.sha256(toml.read_bytes()).hexdigest())
    rpo = next(o for o in who.objectives if o.name == "rpo_hours")
    assert (rpo.value, rpo.source) == (6, "default (the plan's)")
    markdown = next((failing_drill.reports / "drills").glob("drill-*.md")).read_text()
    assert f"- Operator: {OPERATOR} (from $DRILL_OPERATOR); host: {who.host}" in markdown
    assert f"- Configuration: `{toml}` sha256 `{who.config_sha256}`" in markdown
    environment = (failing_drill.results / "environment.properties").read_text()
    assert f"drill.operator={OPERATOR} (from $DRILL_OPERATOR)\n" in environment
    assert "drill.sandbox=false\n" in environment


def test_the_operator_option_comes_before_the_environment(tmp_path: Path) -> None:
    run = run_drill(write_drill_project(tmp_path), "--operator", "ops-erin")
    (record,) = load_chain(run.reports / "drills")
    assert record.attribution is not None
    assert (record.attribution.operator, record.attribution.operator_source) == ("ops-erin", "--operator")


def test_items_have_an_owner_and_a_due_date_and_the_next_drill_follows_them_up(tmp_path: Path) -> None:
    root = write_drill_project(tmp_path, rpo=7.5, toml='action_owner = "ops-frank"\naction_due_days = 7\n')
    first = run_drill(root)
    (record,) = load_chain(first.reports / "drills")
    assert {(item.owner, item.due) for item in record.action_items} == {
        ("ops-frank", (record.finished_at + timedelta(days=7)).date())
    }
    write_drill_project(root, rpo=1.5, rows=10, toml='action_owner = "ops-frank"\n')  # RPO and rows fixed
    second = run_drill(root)
    newest = load_chain(second.reports / "drills")[-1]
    assert [(f.cause, f.status) for f in newest.follow_up] == [
        ("check:Restore drill: The restored rows match the manifest", "closed"),
        ("check:Restore drill: The app answers on the restored copy", "open"),
        ("measure:RPO", "closed"),
    ]
    assert "previous action (" in second.output
    assert f"previous action ({record.run_id}): closed: RPO: 7.5 h exceeds objective 6 h" in second.output


def test_a_loosened_objective_without_approval_is_no_go_and_with_approval_is_stated(tmp_path: Path) -> None:
    root = write_drill_project(tmp_path, rows=10)  # the app scenario fails: NO-GO whatever the objectives
    run_drill(root)
    write_drill_project(root, rows=10, toml="[objectives]\nrpo_hours = 12\n")
    loosened = load_chain(run_drill(root).reports / "drills")[-1]
    line = ("rpo_hours changed from 6 to 12 since the previous drill without an approval ([[objective_approvals]] "
            "in drill.toml)")  # fmt: skip
    assert line in loosened.verdict.reasons
    item = next(i for i in loosened.action_items if i.cause == "objective:rpo_hours")
    assert item.todo.startswith("record the approval in [[objective_approvals]]")
    rpo = next(o for o in loosened.attribution.objectives if o.name == "rpo_hours")  # type: ignore[union-attr]
    assert rpo.source == f"{root / 'drill.toml'} [objectives] rpo_hours"
    approval = ('[[objective_approvals]]\nobjective = "rpo_hours"\nvalue = 3\napproved_by = "cto-grace"\n'
                'reason = "tighter RPO agreed in the Q4 review"\n')  # fmt: skip
    write_drill_project(root, rows=10, toml=f"[objectives]\nrpo_hours = 3\n{approval}")
    approved = load_chain(run_drill(root).reports / "drills")[-1]
    (change,) = approved.attribution.objective_changes  # type: ignore[union-attr]
    assert change.line() == ("rpo_hours changed from 12 to 3 since the previous drill, approved by cto-grace: "
                             "tighter RPO agreed in the Q4 review")  # fmt: skip
    assert not [r for r in approved.verdict.reasons if "rpo_hours" in r]
    assert not [i for i in approved.action_items if i.cause.startswith("objective:")]


DATABASES = (
    "[[databases]]\nname = 'shop'\ncritical_tables = ['orders']\n{shop}\n"
    "[[databases]]\nname = 'catalog'\ncritical_tables = ['products']\n"
)


def test_a_database_rpo_loosened_without_approval_is_no_go_naming_the_database(tmp_path: Path) -> None:
    root = write_drill_project(tmp_path, rows=10, toml=DATABASES.format(shop="rpo_hours = 2"))
    first = load_chain(run_drill(root).reports / "drills")[-1]
    assert [(o.name, o.value, o.source) for o in first.attribution.objectives  # type: ignore[union-attr]
            if o.name.startswith("rpo_hours ")] == [
        ("rpo_hours shop", 2, f"{root / 'drill.toml'} [[databases]] shop rpo_hours"),
        ("rpo_hours catalog", 6, "default (the plan's), inherited by [[databases]] catalog"),
    ]  # fmt: skip
    write_drill_project(root, rows=10, toml=DATABASES.format(shop="rpo_hours = 24"))
    loosened = load_chain(run_drill(root).reports / "drills")[-1]
    line = ("rpo_hours shop changed from 2 to 24 since the previous drill without an approval "
            "([[objective_approvals]] in drill.toml)")  # fmt: skip
    assert line in loosened.verdict.reasons
    assert [c.name for c in loosened.attribution.objective_changes] == ["rpo_hours shop"]  # type: ignore[union-attr]
    approval = ('[[objective_approvals]]\nobjective = "rpo_hours shop"\nvalue = 1\napproved_by = "cto-grace"\n'
                'reason = "the shop moved to hourly dumps"\n')  # fmt: skip
    write_drill_project(root, rows=10, toml=DATABASES.format(shop="rpo_hours = 1") + approval)
    approved = load_chain(run_drill(root).reports / "drills")[-1]
    (change,) = approved.attribution.objective_changes  # type: ignore[union-attr]
    assert (change.name, change.approved_by, change.looser) == ("rpo_hours shop", "cto-grace", False)


def test_a_common_rpo_change_is_stated_once_not_again_for_each_database_inheriting_it(tmp_path: Path) -> None:
    root = write_drill_project(tmp_path, rows=10, toml=DATABASES.format(shop=""))
    run_drill(root)
    write_drill_project(root, rows=10, toml="[objectives]\nrpo_hours = 3\n" + DATABASES.format(shop=""))
    tightened = load_chain(run_drill(root).reports / "drills")[-1]
    assert [c.name for c in tightened.attribution.objective_changes] == ["rpo_hours"]  # type: ignore[union-attr]


def test_a_sandbox_run_is_marked_a_rehearsal_everywhere(tmp_path: Path) -> None:
    run = run_drill(write_drill_project(tmp_path, sandbox=True))
    (record,) = load_chain(run.reports / "drills")
    assert record.sandbox is True
    assert json.loads(next((run.reports / "drills").glob("drill-*.json")).read_text())["sandbox"] is True
    markdown = next((run.reports / "drills").glob("drill-*.md")).read_text()
    assert f"> **{SANDBOX_BANNER}.**" in markdown
    assert {c.status for c in record.controls} == {"rehearsal, not evidence"}
    assert "drill verdict: NO-GO (sandbox rehearsal, not evidence)" in run.output
    assert SANDBOX_BANNER in run.output
    environment = (run.results / "environment.properties").read_text()
    assert f"drill.sandbox=true: {SANDBOX_BANNER}\n" in environment
    verdict = next(r for r in _results(run) if "Drill verdict" in str(r["name"]))
    assert str(verdict["name"]).startswith("Sandbox rehearsal, not evidence: Drill verdict NO-GO")


def _with_records_storage(root: Path, s3_server: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the tiny drill's records at ``bucket`` of the throwaway S3, signed with a key from the environment."""
    monkeypatch.setenv("T_S3_KEY", s3_server.endpoint.access_key.get_secret_value())
    monkeypatch.setenv("T_S3_SECRET", s3_server.endpoint.secret_key.get_secret_value())
    monkeypatch.setenv("T_RECORDS_SEED", RECORDS_SEED)
    (root / "drill.toml").write_text(
        f'[target]\nname = "tiny-target"\nsandbox = false\n[storage]\nendpoint_url = "{s3_server.endpoint.url}"\n'
        'access_key_env = "T_S3_KEY"\nsecret_key_env = "T_S3_SECRET"\n'
        f'[reports]\ndir = "reports"\nsigning_key_env = "T_RECORDS_SEED"\nstorage_bucket = "{bucket}"\n'
        'storage_prefix = "drill-records/"\n'
    )


def test_the_session_signs_its_record_and_keeps_it_write_once(
    tmp_path: Path, s3_server: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"records-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    root = write_drill_project(tmp_path)
    _with_records_storage(root, s3_server, bucket, monkeypatch)
    run = run_drill(root)
    (record,) = load_chain(run.reports / "drills")
    assert record.signature is not None
    assert record.signature.key_id == ManifestSigner(RECORDS_SEED).key_id
    assert f"drill record copy: 4 files kept at s3://{bucket}/drill-records/ (write-once until " in run.output
    stored = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="drill-records/")["Contents"]
    assert sorted(entry["Key"].removeprefix("drill-records/") for entry in stored) == sorted(
        path.name for path in record_files(run.reports / "drills")
    )


def test_a_record_that_cannot_be_kept_makes_the_run_no_go(
    tmp_path: Path, s3_server: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_drill_project(tmp_path)
    _with_records_storage(root, s3_server, "no-such-records-bucket", monkeypatch)
    run = run_drill(root)
    (record,) = load_chain(run.reports / "drills")
    kept = next(check for check in record.checks if check.scenario == "The drill record is kept off the drill machine")
    message = ("evidence not kept: s3://no-such-records-bucket/drill-records/: cannot read the bucket's Object Lock "
               "setting: NoSuchBucket: The specified bucket does not exist")  # fmt: skip
    assert (kept.status, kept.kind, kept.message) == ("failed", "setup", message)
    assert record.verdict.decision == "NO-GO"
    assert "drill record copy" not in run.output
    assert run.returncode == 1
    assert "Traceback" not in run.output
