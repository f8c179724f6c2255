from __future__ import annotations

import json
import os
import shutil
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.cli import _newest_results, main
from harness.config import DrillConfig, Waiver
from harness.errors import HarnessError
from harness.integrity.baseline import previous_rows
from harness.records import (
    Check,
    DrillRecord,
    DrillRecorder,
    Measure,
    WaiverEntry,
    action_items,
    append_record,
    control_statuses,
    decide,
    load_chain,
    plot_trend,
    scrub_secrets,
    verify_chain,
    write_environment,
)
from harness.records.markdown import render_markdown
from harness.records.record import BackupUsed, content_hash
from harness.records.report import verdict_title
from harness.redact import register_secret

START = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
PASSED = Check(scenario="The newest dump restores", feature="Restore drill", area="restore_drill", status="passed")
FAILED = Check(
    scenario="Rows match the manifest",
    feature="Restore drill",
    area="restore_drill",
    status="failed",
    message="orders: restored 9 rows, manifest says 10",
)


def measure(name: str, value: float, objective: float, unit: str) -> Measure:
    return Measure(name=name, value=value, objective=objective, unit=unit, met=value <= objective)


def make_record(day: int = 0, rpo: float = 1.5, rto: float = 12.0, checks: list[Check] | None = None) -> DrillRecord:
    checks = [PASSED] if checks is None else checks
    measures = [measure("RPO", rpo, 6, "h"), measure("RTO", rto, 60, "min")]
    phases = {"download": 30.0, "pg_restore": 400.0, "health": 5.0}
    return DrillRecord(
        run_id=f"run{day}",
        started_at=START + timedelta(days=30 * day),
        finished_at=START + timedelta(days=30 * day, minutes=15),
        target="codeblack-sandbox",
        provider="local processes",
        harness_version="0.1.0",
        checks=checks,
        measures=measures,
        rto_phases=phases,
        verdict=decide(checks, measures),
        action_items=action_items(checks, measures, phases),
        controls=control_statuses(checks, measures),
    )


def test_missed_rpo_yields_the_number_and_the_advice() -> None:
    items = action_items([], [measure("RPO", 7.5, 6, "h")], {})
    assert [item.line() for item in items] == [
        "RPO: 7.5 h exceeds objective 6 h: increase pg_dump frequency or check the backup cron"
    ]


def test_missed_rto_names_the_slowest_phase() -> None:
    (item,) = action_items([], [measure("RTO", 75, 60, "min")], {"download": 30.0, "pg_restore": 4200.0})
    assert item.number == "75 min exceeds objective 60 min"
    assert "(pg_restore took 4200 s)" in item.todo


def test_failed_check_yields_its_message_and_area_advice() -> None:
    (item,) = action_items([PASSED, FAILED], [], {})
    assert item.what == "Restore drill: Rows match the manifest"
    assert item.number == "orders: restored 9 rows, manifest says 10"
    assert "repeat the restore drill" in item.todo


@pytest.mark.parametrize(
    ("area", "advice"),
    [
        ("backup_policy", "backup job"),
        ("migration_gates", "migration"),
        ("config_safety", "config API"),
        ("", "investigate"),
    ],
)
def test_every_area_has_its_own_advice(area: str, advice: str) -> None:
    (item,) = action_items([FAILED.model_copy(update={"area": area})], [], {})
    assert advice in item.todo


def test_a_check_that_could_not_run_asks_to_fix_the_setup() -> None:
    setup = FAILED.model_copy(update={"kind": "setup", "message": "drill.toml: [app] command: not found"})
    (item,) = action_items([setup], [], {})
    assert item.todo.startswith("the drill could not run this check: fix the setup")
    assert decide([setup], []).reasons == ["could not run: Restore drill: Rows match the manifest"]


def test_verdict_is_go_only_without_failures_and_missed_objectives() -> None:
    assert decide([PASSED], [measure("RPO", 1, 6, "h")]).decision == "GO"
    assert decide([PASSED, FAILED], []).reasons == ["failed: Restore drill: Rows match the manifest"]
    assert decide([PASSED], [measure("RPO", 7.5, 6, "h")]).reasons == ["RPO 7.5 h exceeds objective 6 h"]
    assert decide([], []).reasons == ["no scenario ran"]


def test_controls_follow_scenarios_and_the_rto_measure() -> None:
    statuses = {c.control: c for c in control_statuses([FAILED], [measure("RTO", 12, 60, "min")])}
    assert statuses["ISO/IEC 27001:2022 A.8.13"].status == "not effective"
    assert statuses["SOC 2 CC8.1"].status == "not tested"
    restore_time = statuses["AWS Backup Audit Manager: restore-time-for-resources-meet-target"]
    assert (restore_time.status, restore_time.evidence) == ("effective", ["RTO 12 min (objective 60 min)"])


def test_record_json_and_markdown_hold_everything(tmp_path: Path) -> None:
    sealed, path = append_record(tmp_path, make_record(checks=[PASSED, FAILED], rpo=7.5))
    data = json.loads(path.read_text())
    assert data["verdict"]["decision"] == "NO-GO"
    assert data["measures"][0] == {
        "name": "RPO",
        "value": 7.5,
        "unit": "h",
        "objective": 6.0,
        "met": False,
        "detail": "",
    }
    assert data["rto_phases"] == {"download": 30.0, "pg_restore": 400.0, "health": 5.0}
    assert [c["status"] for c in data["checks"]] == ["passed", "failed"]
    assert data["previous_hash"] == ""
    assert data["hash"] == content_hash(data)
    markdown = path.with_suffix(".md").read_text()
    assert "# Drill run0: NO-GO" in markdown
    assert "| RPO | 7.5 h | 6 h | **no** |  |" in markdown
    assert "| pg_restore | 400 |" in markdown
    assert "1. Restore drill: Rows match the manifest: orders: restored 9 rows, manifest says 10" in markdown
    assert "| SOC 2 CC7.5 |" in markdown
    assert f"![RPO and RTO per drill]({sealed.trend_image})" in markdown
    assert verdict_title(sealed) == "Drill verdict NO-GO, RPO 7.5 h (objective 6 h), RTO 12 min (objective 60 min)"


@pytest.fixture(scope="module")
def built_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("drills")
    for day in range(3):
        append_record(directory, make_record(day, rpo=1.0 + day, rto=10.0 + 5 * day))
    return directory


@pytest.fixture
def chain(built_chain: Path, tmp_path: Path) -> list[Path]:
    """A fresh copy of three chained records per test (built once per module)."""
    directory = shutil.copytree(built_chain, tmp_path / "drills")
    return sorted(directory.glob("drill-*.json"))


def test_chain_links_each_record_to_the_previous_one(chain: list[Path]) -> None:
    records = load_chain(chain[0].parent)
    assert [r.previous_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    result = verify_chain(chain[0].parent)
    assert (result.ok, str(result)) == (True, "drill record chain OK: 3 records")


def test_editing_one_number_of_an_old_record_is_detected(chain: list[Path]) -> None:
    chain[0].write_text(chain[0].read_text().replace('"value": 1.0', '"value": 0.5', 1))
    assert str(verify_chain(chain[0].parent)) == f"{chain[0]}: altered (its content no longer matches its hash)"


def test_editing_the_markdown_twin_is_detected(chain: list[Path]) -> None:
    markdown = chain[1].with_suffix(".md")
    markdown.write_text(markdown.read_text().replace("NO-GO", "GO").replace("| 2 h |", "| 1 h |"))
    assert str(verify_chain(chain[0].parent)).startswith(f"{markdown}: altered or removed")


def test_a_removed_record_is_detected(chain: list[Path]) -> None:
    chain[1].unlink()
    problem = str(verify_chain(chain[0].parent))
    assert problem.startswith(f"{chain[2]}: the record before it was removed, altered or reordered")


def test_removing_the_newest_record_is_detected(chain: list[Path]) -> None:
    chain[2].unlink()
    assert str(verify_chain(chain[0].parent)).startswith(f"{chain[2]}: the newest record was removed")


def test_appending_to_a_broken_chain_is_refused(chain: list[Path]) -> None:
    chain[0].write_text(chain[0].read_text().replace('"value": 1.0', '"value": 0.5', 1))
    with pytest.raises(HarnessError, match="refusing to append to a broken chain"):
        append_record(chain[0].parent, make_record(9))


def test_sessions_appending_together_keep_one_chain(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda day: append_record(tmp_path, make_record(day)), range(4)))
    assert str(verify_chain(tmp_path)) == "drill record chain OK: 4 records"


def test_trend_chart_is_drawn_across_the_chain(chain: list[Path]) -> None:
    newest = load_chain(chain[0].parent)[-1]
    svg = ET.parse(chain[0].parent / newest.trend_image).getroot()  # well-formed XML, or this raises
    texts = ["".join(node.itertext()) for node in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert {"RPO per drill (h)", "RTO per drill (min)"} <= set(texts)
    lines = svg.iter("{http://www.w3.org/2000/svg}polyline")
    measured = [line for line in lines if not line.get("stroke-dasharray")]
    assert [len(line.get("points", "").split()) for line in measured] == [len(chain)] * 2  # a point per drill


def test_trend_chart_labels_a_missed_objective_in_red(tmp_path: Path) -> None:
    path = plot_trend([make_record(0, rpo=2.0), make_record(1, rpo=7.5)], tmp_path / "trend.svg")
    labels = {node.text: node.get("fill") for node in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text")}
    assert (labels["2.00"], labels["7.50"]) == ("#000", "#d62728")


def test_environment_properties_escape_keys_and_keep_values(tmp_path: Path) -> None:
    path = write_environment(tmp_path, {"backup key": "postgres/logical/a=b.dump", "target": "sandbox"})
    assert path.read_text() == "backup\\ key=postgres/logical/a=b.dump\ntarget=sandbox\n"


def test_records_written_before_a_field_existed_still_verify(tmp_path: Path) -> None:
    _, path = append_record(tmp_path, make_record())
    stored = json.loads(path.read_text())
    for check in stored["checks"]:
        del check["kind"]  # as a writer from before setup failures were told apart
    stored["hash"] = content_hash(stored)
    path.write_text(json.dumps(stored))
    (tmp_path / "HEAD").write_text(f"{path.name} {stored['hash']}\n")
    assert verify_chain(tmp_path).ok


def test_waivers_are_listed_with_who_approved_and_why(tmp_path: Path) -> None:
    waiver = WaiverEntry(
        rule="ban-drop-table", subject="3f2a1c", approved_by="ops-bob", reason="legacy table, archived"
    )
    _, path = append_record(tmp_path, make_record().model_copy(update={"waivers": [waiver]}))
    assert "| ban-drop-table | 3f2a1c | ops-bob | legacy table, archived |" in path.with_suffix(".md").read_text()


def _verify(directory: Path) -> int:
    """``codeblack-drills records verify DIRECTORY`` in process; its exit code."""
    try:
        main(["records", "verify", str(directory)])
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


def test_verify_command_exit_codes(chain: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _verify(chain[0].parent) == 0
    assert capsys.readouterr().out == "drill record chain OK: 3 records\n"
    altered = json.loads(chain[1].read_text())
    altered["target"] = "somewhere else"
    chain[1].write_text(json.dumps(altered))
    assert _verify(chain[0].parent) == 1
    assert capsys.readouterr().err == f"check failed: {chain[1]}: altered (its content no longer matches its hash)\n"
    assert _verify(chain[0].parent / "missing") == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: {chain[0].parent / 'missing'}: no drill records here; run the monthly drill or pass the directory\n"
    )


def test_recorder_builds_the_record_from_what_the_session_reported() -> None:
    waiver = Waiver(rule="ban-drop-table", subject="3f2a1c", approved_by="ops-bob", reason="archived table")
    config = DrillConfig(waivers=[waiver]).with_changes(target={"name": "codeblack-sandbox"})
    recorder = DrillRecorder()
    recorder.checks["features/test_x.py::a"] = FAILED
    recorder.measure("RPO", 2.0, 6, "h")
    recorder.measure("RPO", 7.5, 6, "h", "newest heartbeat")  # a later figure replaces the earlier one
    recorder.phases({"download": 30.0})
    recorder.action_item("renew the storage credentials before they expire")
    recorder.waiver("ban-drop-table", "3f2a1c", "ops-bob", "archived table")
    record = recorder.build(config)
    assert [(m.name, m.value, m.met) for m in record.measures] == [("RPO", 7.5, False)]
    assert [item.what for item in record.action_items] == [
        "Restore drill: Rows match the manifest",
        "RPO",
        "operator note",
    ]
    assert len(record.waivers) == 1  # the same waiver from drill.toml and a step is listed once
    assert record.environment["target"] == "codeblack-sandbox"


def test_a_session_without_the_restore_drill_is_no_go() -> None:
    """Gates that pass do not verify staging: a -m predeploy or -k run must not record GO for cut-over."""
    recorder = DrillRecorder()
    gate = PASSED.model_copy(update={"area": "migration_gates", "feature": "Migration gates"})
    recorder.checks["features/test_m.py::a"] = gate
    verdict = recorder.build(DrillConfig()).verdict
    assert (verdict.decision, verdict.reasons) == ("NO-GO", ["the restore drill did not run: staging is not verified"])
    recorder.checks["features/test_r.py::a"] = PASSED
    recorder.checks["features/test_r.py::b"] = PASSED.model_copy(update={"status": "skipped", "scenario": "Redis"})
    assert recorder.build(DrillConfig()).verdict.reasons == ["not run: Restore drill: Redis"]
    del recorder.checks["features/test_r.py::b"]
    assert recorder.build(DrillConfig()).verdict.decision == "GO"


def test_the_previous_drills_rows_are_the_basis_for_a_dump_without_manifest(tmp_path: Path) -> None:
    def drilled(day: int, orders: int, target: str = "codeblack-sandbox") -> DrillRecord:
        backup = BackupUsed(key=f"postgres/logical/day{day}.dump", sha256="ab" * 32, size=1,
                            taken_at=START + timedelta(days=30 * day))  # fmt: skip
        return make_record(day).model_copy(update={"backup": backup, "restored_rows": {"orders": orders},
                                                   "target": target})  # fmt: skip

    assert previous_rows(tmp_path, "codeblack-sandbox", START) is None  # a first drill has no basis
    shrunk = drilled(2, 60).model_copy(
        update={
            "checks": [
                PASSED.model_copy(
                    update={
                        "status": "failed",
                        "message": "row counts shrank by more than [database] max_shrink_fraction = 0.1: …",
                    }
                )
            ]
        }
    )
    for record in (drilled(0, 100), drilled(1, 120), drilled(2, 999, target="elsewhere"), shrunk):
        append_record(tmp_path, record)
    newest = previous_rows(tmp_path, "codeblack-sandbox", START + timedelta(days=90))
    assert newest is not None
    assert newest.rows == {"orders": 120}  # a drill whose own row counts failed is never the bar
    assert newest.source.startswith("the previous drill's restored rows (run run1 of ")
    assert newest.source.endswith(", backup postgres/logical/day1.dump)")
    # Restoring an older dump again is judged by the drill of a dump no newer than it.
    older = previous_rows(tmp_path, "codeblack-sandbox", START + timedelta(days=10))
    assert older is not None
    assert older.rows == {"orders": 100}
    first = sorted(tmp_path.glob("drill-*.json"))[0]
    first.write_text(first.read_text().replace('"orders": 100', '"orders": 1'))
    with pytest.raises(HarnessError, match=rf"^{first}: altered .*; the previous drill's row counts cannot serve"):
        previous_rows(tmp_path, "codeblack-sandbox", START + timedelta(days=90))


def test_scrubbing_redacts_this_sessions_files_and_skips_older_ones(tmp_path: Path) -> None:
    secret = register_secret(f"planted-{uuid.uuid4().hex}")
    old, new = tmp_path / "old-result.json", tmp_path / "new-result.json"
    for path in (old, new):
        path.write_text(f'{{"message": "login failed for {secret}"}}')
    os.utime(old, (1_000_000, 1_000_000))  # an earlier session's file, already scrubbed by that session
    assert scrub_secrets(tmp_path, since=2_000_000) == [new]
    assert secret not in new.read_text()


def test_what_did_not_apply_is_listed_and_what_was_deselected_is_not_skipped(tmp_path: Path) -> None:
    """GO covers what applied; a not-applicable scenario is listed with its reason, a deselected one apart."""
    recorder = DrillRecorder()
    reason = "not applicable: the target has no Redis ([redis] enabled = false in drill.toml)"
    recorder.checks["features/test_r.py::a"] = PASSED
    recorder.checks["features/test_r.py::b"] = PASSED.model_copy(
        update={"status": "not applicable", "scenario": "Redis", "message": reason}
    )
    recorder.checks["features/test_m.py::c"] = PASSED.model_copy(
        update={"status": "deselected", "scenario": "Drift", "feature": "Migration gates", "area": "migration_gates"}
    )
    record = recorder.build(DrillConfig())
    assert record.verdict.decision == "GO"
    assert record.verdict.reasons == ["1 of 1 scenarios passed", f"{reason}: Restore drill: Redis"]
    markdown = render_markdown(record)
    assert f"| Restore drill | Redis | {reason} |" in markdown.split("## Not applicable to this target")[1]
    assert "- Migration gates: Drift" in markdown.split("## Deselected (not part of this run)")[1]
    assert "Drift" not in markdown.split("## Checks")[1].split("## Not applicable")[0]
    recorder.checks["features/test_r.py::d"] = PASSED.model_copy(update={"status": "deselected", "scenario": "RTO"})
    assert recorder.build(DrillConfig()).verdict.reasons == ["deselected: Restore drill: RTO"]


def test_report_renders_the_newest_runs_results_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "drill.toml"
    config.write_text(f'[target]\nsandbox = false\n\n[reports]\ndir = "{tmp_path / "reports"}"\n')
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config), "report"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'reports' / 'runs'}: no Allure results of a drill run here; run the drill or pass "
        "--results\n"
    )
    older, newer = (tmp_path / "reports" / "runs" / run / "allure-results" for run in ("b-run", "a-run"))
    for results, stamp in ((older, 1_000_000), (newer, 2_000_000)):
        results.mkdir(parents=True)
        os.utime(results, (stamp, stamp))
    assert _newest_results(tmp_path / "reports") == newer
