from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import PROJECT_ROOT, DrillConfig, Waiver
from harness.errors import CheckFailed, HarnessError
from harness.integrity.baseline import previous_rows
from harness.measure import Stopwatch
from harness.records import (
    ActionItem,
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
from harness.records import attribution as attribution_module
from harness.records.actions import assign, follow_up
from harness.records.attribution import harness_commit
from harness.records.cadence import check_drill_interval
from harness.records.handover import run_results
from harness.records.markdown import render_markdown
from harness.records.record import BackupUsed, Phase, Restored, StagingServer, content_hash
from harness.records.report import verdict_title
from harness.records.servers import postgres_server
from harness.records.servers import redis_server as redis_staging
from harness.redact import register_secret
from harness.services.postgres import RESTORE_TUNED, PostgresServer
from harness.services.redis import RedisServer

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


def test_controls_say_what_this_drill_collected_never_effective() -> None:
    statuses = {c.control: c for c in control_statuses([FAILED], [measure("RTO", 12, 60, "min")])}
    assert statuses["ISO/IEC 27001:2022 A.8.13"].status == "failed in this drill"
    assert statuses["SOC 2 CC8.1"].status == "not tested in this drill"
    tested = statuses["SOC 2 A1.3"]
    assert (tested.status, tested.evidence) == (
        "failed in this drill",
        ["Rows match the manifest (failed)", "RTO 12 min (objective 60 min)"],
    )
    passed = {c.control: c.status for c in control_statuses([PASSED], [measure("RTO", 12, 60, "min")])}
    assert passed["SOC 2 A1.2"] == passed["SOC 2 A1.3"] == "evidence collected in this drill"
    assert "effective" not in passed.values()


def test_aws_backup_audit_manager_controls_are_not_mapped_to_dumps_in_object_storage() -> None:
    assert not [c.control for c in control_statuses([PASSED], []) if "AWS Backup" in c.control]


def test_on_the_sandbox_every_control_is_a_rehearsal_not_evidence() -> None:
    statuses = control_statuses([PASSED, FAILED], [measure("RTO", 12, 60, "min")], sandbox=True)
    assert {c.status for c in statuses} == {"rehearsal, not evidence"}


RPO_MISSED = measure("RPO", 7.5, 6, "h")


def _failed(scenario: str, message: str) -> Check:
    return FAILED.model_copy(update={"scenario": scenario, "message": message})


def test_one_missed_objective_is_one_item_with_its_own_remedy() -> None:
    symptoms = [
        _failed("Recovery time and data loss are measured", "RPO 7.50 h (objective 6 h, MISSED): newest data ..."),
        _failed("Cut-over is decided after staging verification", "NO-GO: RPO 7.5 h exceeds objective 6 h"),
    ]
    (item,) = action_items(symptoms, [RPO_MISSED, measure("RTO", 12, 60, "min")], {})
    assert (item.what, item.cause) == ("RPO", "measure:RPO")
    assert item.number == "7.5 h exceeds objective 6 h (failed: Recovery time and data loss are measured)"
    assert item.todo == "increase pg_dump frequency or check the backup cron"


def test_a_store_named_rpo_gets_its_stores_remedy() -> None:
    redis = measure("RPO Redis", 30, 24, "h")
    check = _failed("Data loss per store", "RPO Redis 30.00 h (objective 24 h, MISSED)")
    (item,) = action_items([check], [RPO_MISSED.model_copy(update={"met": True, "value": 1}), redis], {})
    assert (item.cause, item.todo.startswith("take Redis RDB copies more often")) == ("measure:RPO Redis", True)


def test_a_verdict_restating_other_failures_adds_no_item_of_its_own() -> None:
    cut_over = _failed("Cut-over", "NO-GO: failed: Restore drill: Rows match the manifest")
    assert [item.what for item in action_items([FAILED, cut_over], [], {})] == [
        "Restore drill: Rows match the manifest"
    ]
    assert [item.what for item in action_items([cut_over], [], {})] == ["Restore drill: Cut-over"]


def test_items_get_an_owner_a_due_date_and_one_per_cause() -> None:
    items = action_items([FAILED], [RPO_MISSED], {})
    note = ActionItem(what="manifests", number="", todo="sign manifests")
    assigned = assign([*items, note, note], "ops-carol", date(2026, 12, 15))
    assert [(i.cause, i.owner, i.due) for i in assigned] == [
        ("check:Restore drill: Rows match the manifest", "ops-carol", date(2026, 12, 15)),
        ("measure:RPO", "ops-carol", date(2026, 12, 15)),
        ("note:manifests: sign manifests", "ops-carol", date(2026, 12, 15)),
    ]
    assert "(owner: ops-carol; due 2026-12-15)" in render_markdown(
        make_record(checks=[FAILED]).model_copy(update={"action_items": assigned})
    )


def test_the_previous_drills_items_are_re_evaluated_against_this_drill() -> None:
    previous = make_record(checks=[FAILED], rpo=7.5, rto=75)
    previous = previous.model_copy(update={"action_items": [
        *previous.action_items, ActionItem(what="manifests", number="", todo="sign manifests", cause="note:sign")
    ]})  # fmt: skip
    now_checks = [FAILED.model_copy(update={"status": "passed", "message": ""})]
    now_measures = [measure("RPO", 1, 6, "h")]  # RTO not measured this time
    notes = [ActionItem(what="manifests", number="", todo="sign manifests", cause="note:sign")]
    done = follow_up(previous, notes, now_checks, now_measures)
    assert [(f.cause, f.status, f.since) for f in done] == [
        ("check:Restore drill: Rows match the manifest", "closed", "run0"),
        ("measure:RPO", "closed", "run0"),
        ("measure:RTO", "not re-tested", "run0"),
        ("note:sign", "open", "run0"),
    ]
    failing_again = follow_up(previous, [], [FAILED], [RPO_MISSED])
    assert [f.status for f in failing_again[:2]] == ["open", "open"]


def test_a_note_this_drill_could_not_look_at_is_not_re_tested_rather_than_closed() -> None:
    """A local drill's "owners and grants" item, then a drill on a shared staging server that cannot restore roles."""
    item = ActionItem(what="owners and grants", number="", todo="no roles in the dump",
                      cause="note:owners and grants: no roles in the dump")  # fmt: skip
    previous = make_record().model_copy(update={"action_items": [item]})
    assert [f.status for f in follow_up(previous, [], [], [])] == ["closed"]
    assert [f.status for f in follow_up(previous, [], [], [], {"owners and grants"})] == ["not re-tested"]


def test_items_of_records_written_before_causes_are_followed_up_by_their_title() -> None:
    old = make_record(checks=[FAILED], rpo=7.5)
    old = old.model_copy(update={"action_items": [i.model_copy(update={"cause": ""}) for i in old.action_items]})
    done = follow_up(old, [], [FAILED], [measure("RPO", 1, 6, "h")])
    assert [(f.cause, f.status) for f in done] == [
        ("check:Restore drill: Rows match the manifest", "open"),
        ("measure:RPO", "closed"),
    ]


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


def test_trend_chart_of_several_databases_draws_the_rpo_nearest_its_objective(tmp_path: Path) -> None:
    record = make_record(0).model_copy(update={
        "measures": [measure("RPO orders", 5.0, 6, "h"), measure("RPO catalog", 4.0, 3, "h"),
                     measure("RTO", 9, 60, "min")],
        "database_rows": {"orders": {"orders": 1}, "catalog": {"products": 1}},
    })  # fmt: skip
    path = plot_trend([make_record(1), record], tmp_path / "trend.svg")
    labels = {node.text: node.get("fill") for node in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text")}
    assert labels["4.00"] == "#d62728"  # the catalog's, beyond its own 3 h
    assert "5.00" not in labels


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


TUNED = StagingServer(what="staging PostgreSQL", host="127.0.0.1", port=54321, version="PostgreSQL 15.14",
                      settings={"fsync": "off", "autovacuum": "off"})  # fmt: skip


def test_the_record_lists_every_backup_restored_and_the_servers_beside_rto() -> None:
    taken = START - timedelta(hours=2)
    restored = [Restored(what=what, key=key, sha256="cd" * 32, size=size, taken_at=taken)
                for what, key, size in [("PostgreSQL dump", "postgres/logical/x.dump", 1024),
                                        ("Redis copy", "redis/rdb/x.rdb", 77),
                                        ("base backup", "postgres/base/daily/x/base.tar.gz", 4096)]]  # fmt: skip
    record = make_record().model_copy(update={"restored": restored, "staging": [TUNED]})
    markdown = render_markdown(record)
    assert f"| Redis copy | redis/rdb/x.rdb | 77 | {'cd' * 32} | {taken.isoformat()} |" in markdown
    assert "| base backup | postgres/base/daily/x/base.tar.gz | 4096 |" in markdown
    assert "| staging PostgreSQL | 127.0.0.1 | 54321 | PostgreSQL 15.14 | fsync = off, autovacuum = off |" in markdown
    rto_row = next(line for line in markdown.splitlines() if line.startswith("| RTO |"))
    assert "staging PostgreSQL ran with fsync = off (a disposable copy tuned for restore speed" in rto_row


def test_overlapping_phases_are_shown_as_overlapping_so_their_sum_is_not_rto() -> None:
    timeline = [Phase(name="download", start_s=0.5, end_s=2.5), Phase(name="provision Redis", start_s=0.6, end_s=3.0),
                Phase(name="restore", start_s=2.6, end_s=4.0)]  # fmt: skip
    record = make_record(rto=0.05).model_copy(update={"rto_timeline": timeline})
    markdown = render_markdown(record)
    assert "| provision Redis | 0.6 | 3 | 2.4 |" in markdown
    assert "Phases overlap (they ran at the same time): their sum, 5.8 s, is not the RTO (0.05 min)" in markdown
    one_after_another = record.model_copy(update={"rto_timeline": timeline[:1]})
    assert "overlap" not in render_markdown(one_after_another)


def test_a_stopwatch_records_when_each_phase_ran() -> None:
    watch = Stopwatch(incident=datetime.now(UTC) - timedelta(seconds=10))
    with watch.phase("download"):
        watch.add("provision Redis", 0.0)
    (inner, outer) = sorted(watch.timeline(), key=lambda p: p.name, reverse=True)
    assert (inner.name, outer.name) == ("provision Redis", "download")
    assert 10 <= outer.start_s <= inner.start_s <= inner.end_s <= outer.end_s


def test_staging_servers_list_the_settings_that_differ_from_the_defaults(
    pg_server: PostgresServer, redis_server: RedisServer
) -> None:
    described = postgres_server("staging PostgreSQL", pg_server, RESTORE_TUNED)
    assert (described.host, described.port) == (pg_server.host, pg_server.port)
    assert described.version == f"PostgreSQL {pg_server.binaries.version}"
    assert described.settings["fsync"] == "off"
    assert "max_parallel_maintenance_workers" not in described.settings  # 2 is PostgreSQL's default
    with redis_server.client() as client:
        saved = client.config_get("save")["save"]
        client.config_set("save", "")  # no snapshots, as a throwaway runs
        try:
            throwaway = redis_staging("staging Redis", redis_server)
        finally:
            client.config_set("save", saved)
    assert throwaway.version.startswith("Redis ")
    assert throwaway.settings == {"save": '""'}  # appendonly yes, as production runs


def _drill_of(target: str, finished: datetime, area: str = "restore_drill") -> DrillRecord:
    checks = [PASSED.model_copy(update={"area": area})]
    return make_record(checks=checks).model_copy(update={"target": target, "finished_at": finished})


def test_the_previous_restore_drill_must_be_at_most_a_month_old() -> None:
    now = START + timedelta(days=60)
    chain = [_drill_of("shop", now - timedelta(days=40)), _drill_of("other", now - timedelta(days=1)),
             _drill_of("shop", now - timedelta(days=2), area="migration_gates")]  # fmt: skip
    with pytest.raises(CheckFailed) as failed:
        check_drill_interval(chain, "shop", now, 31, "reports/drills")
    assert str(failed.value) == (
        "reports/drills: the previous restore drill of shop (run0, finished 2026-11-21) was 40 days before this "
        "one, more than the 31 days allowed (objectives.drill_interval_days): run the restore drill every month"
    )
    recent = [*chain, _drill_of("shop", now - timedelta(days=30))]
    assert check_drill_interval(recent, "shop", now, 31, "reports/drills") == (
        "the previous restore drill of shop (run0, finished 2026-12-01) was 30.0 days before this one (at most 31)"
    )
    assert check_drill_interval([], "shop", now, 31, "reports/drills") == (
        "no previous restore drill of shop in reports/drills: this drill starts the record of its cadence"
    )


def test_outside_its_own_clone_the_harness_is_named_by_its_package_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org", "commit",
                    "-q", "--allow-empty", "-m", "someone else's project"], check=True, timeout=30)  # fmt: skip
    installed = tmp_path / "site-packages"  # an installed copy inside someone else's repository
    installed.mkdir()
    monkeypatch.setattr(attribution_module, "PROJECT_ROOT", installed)
    assert harness_commit() == (importlib.metadata.version("codeblack-drills"), "package version")
    monkeypatch.setattr(attribution_module, "PROJECT_ROOT", PROJECT_ROOT)
    commit, source = harness_commit()
    assert (source, re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit) is not None) == ("git", True)


NEW_FIELDS = ("sandbox", "attribution", "restored", "staging", "rto_timeline", "follow_up")


def test_records_of_the_format_before_attribution_verify_and_the_chain_goes_on(tmp_path: Path) -> None:
    _, path = append_record(tmp_path, make_record(checks=[FAILED], rpo=7.5))
    stored = json.loads(path.read_text())
    for name in NEW_FIELDS:
        del stored[name]
    for item in stored["action_items"]:
        del item["cause"], item["owner"], item["due"]
    stored["controls"][0]["status"] = "not effective"  # the old wording
    stored["hash"] = content_hash(stored)
    path.write_text(json.dumps(stored))
    (tmp_path / "HEAD").write_text(f"{path.name} {stored['hash']}\n")
    assert verify_chain(tmp_path).ok
    (old,) = load_chain(tmp_path)
    assert (old.sandbox, old.attribution, old.controls[0].status) == (False, None, "not effective")
    recorder = DrillRecorder()
    recorder.checks["a"] = FAILED.model_copy(update={"status": "passed", "message": ""})
    recorder.measure("RPO", 1, 6, "h")
    append_record(tmp_path, recorder.build(DrillConfig(), old))
    assert str(verify_chain(tmp_path)) == "drill record chain OK: 2 records"
    assert [(f.cause, f.status) for f in load_chain(tmp_path)[-1].follow_up] == [
        ("check:Restore drill: Rows match the manifest", "closed"),
        ("measure:RPO", "closed"),
    ]
    assert "- Attribution: not recorded" in render_markdown(old)


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
    assert {item.owner for item in record.action_items} == {record.attribution.operator}  # type: ignore[union-attr]
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
    older, newer, empty = (tmp_path / "reports" / "runs" / run / "allure-results" for run in ("b-run", "a-run", "c"))
    for results, stamp in ((older, 1_000_000), (newer, 2_000_000), (empty, 3_000_000)):
        results.mkdir(parents=True)
        if results != empty:  # a run killed before it wrote a result has nothing to render
            (results / "x-result.json").write_text("{}")
        os.utime(results, (stamp, stamp))
    assert run_results(tmp_path / "reports") == [older, newer]
