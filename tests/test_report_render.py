"""The report as an auditor is handed it: rendered by the Allure 3 CLI, opened from disk in headless Chromium.

Two drills of a tiny target run first, each into its own ``reports/runs/<run id>/``; ``render_handover`` then
writes the folder an auditor receives: a single-file ``index.html`` with Allure's history of both runs, the
plan the scenarios link to, and the newest record as HTML and PDF.

The tiny drill's steps carry no evidence, so the restore scenarios an auditor opens with their evidence come from
a real drill: ``features/restore_drill.feature``'s restore, row-count and app scenarios on the sandbox, whose
report is read as a reader reads it (:mod:`tests.browser`: the tree unfolded, the scenario clicked, its steps and
attachments opened) and compared with that run's drill record.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.config import PROJECT_ROOT, load_config
from harness.errors import ConfigError, HarnessError
from harness.records import DrillRecord, load_chain
from harness.records.handover import Handover, history_file, render_handover, run_results
from harness.records.pdf import CHROMIUM_FLAGS
from harness.records.report import ALLURE_CACHE, REPORT_CSP, render_html, verdict_summary
from harness.services.base import RUN_ENV
from tests.browser import Browser, browser
from tests.features.test_drill_evidence import CREDENTIALS, sandbox_drill_toml
from tests.harness.test_records_session import DrillRun, run_drill, write_drill_project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or (shutil.which("npm") is None and not (ALLURE_CACHE / "node_modules/.bin/allure").exists()),
    reason="needs chromium and npm (Node.js) to render and open the Allure report",
)


@pytest.fixture(scope="module")
def drills(tmp_path_factory: pytest.TempPathFactory) -> list[DrillRun]:
    """Two drills of one target (a row count off, then right) with a drill of another target between them."""
    root = tmp_path_factory.mktemp("drill")
    first = run_drill(write_drill_project(root), own_run_dir=True)
    config = write_drill_project(root) / "drill.toml"
    config.write_text(config.read_text().replace('name = "tiny-target"', 'name = "other-target"'))
    other = run_drill(root, own_run_dir=True)
    second = run_drill(write_drill_project(root, rows=10), own_run_dir=True)
    return [first, second, other]


@pytest.fixture(scope="module")
def handover(drills: list[DrillRun]) -> Handover:
    root = drills[-1].root
    return render_handover(load_config(root / "drill.toml"), root / "reports", root / "handover", single_file=True,
                           pdf=True)  # fmt: skip


def _chromium(url: str, profile: Path, *extra: str) -> str:
    argv = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *extra, url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _text(dom: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<(script|style)\b.*?</\1>|<[^>]+>", " ", dom, flags=re.S)))


def test_single_file_report_opens_from_disk(handover: Handover, tmp_path: Path) -> None:
    assert [path.name for path in handover.index.parent.iterdir() if path.is_dir()] == []  # no data/ beside it
    text = _text(_chromium(handover.index.as_uri(), tmp_path / "profile", "--dump-dom"))
    assert "The newest dump restores within the RTO" in text
    assert "The restored rows match the manifest" in text
    assert "Drill verdict NO-GO, RPO 1.5 h (objective 6 h), RTO 12 min (objective 60 min)" in text
    # The overview's environment block shows its first lines unfolded: the verdict and whether it is evidence.
    assert "drill.verdict NO-GO" in text
    assert "drill.sandbox false" in text


def test_verdict_page_shows_its_action_items_record_and_trend(
    drills: list[DrillRun], handover: Handover, tmp_path: Path
) -> None:
    tests = json.loads((handover.index.parent / "test-results.json").read_text())["byId"]
    verdict = next(key for key, test in tests.items() if test["name"].startswith("Drill verdict"))
    text = _text(_chromium(f"{handover.index.as_uri()}#/{verdict}", tmp_path / "profile", "--dump-dom"))
    record = load_chain(drills[-1].reports / "drills")[-1]
    assert record.action_items
    for item in record.action_items:  # the verdict's steps are its action items, owner and due date included
        assert item.assigned() in text, item.assigned()
    for attachment in ("drill record (Markdown)", "drill record (JSON)", "RPO and RTO trend"):
        assert attachment in text


def test_history_holds_each_run_once_in_order(drills: list[DrillRun], handover: Handover, tmp_path: Path) -> None:
    reports = drills[0].reports
    runs = [path.parent.name for path in run_results(reports)]
    assert len(runs) == 3
    tiny = [load_chain(drill.reports / "drills")[n].run_id for n, drill in ((0, drills[0]), (2, drills[1]))]
    history = history_file(reports, "tiny-target")
    entries = [json.loads(line) for line in history.read_text().splitlines()]
    assert [entry["name"] for entry in entries] == [f"tiny-target {run}" for run in tiny]  # not other-target's
    first = entries[0]
    assert first["uuid"] in handover.index.read_text()  # the newest run's report carries the first as history
    # Rendered again, the newest run shows the same history and the file gains nothing.
    again = render_handover(load_config(drills[1].root / "drill.toml"), reports, tmp_path / "again", single_file=True)
    assert history.read_text().splitlines() == [json.dumps(entry, separators=(",", ":")) for entry in entries]
    assert first["uuid"] in again.index.read_text()


def test_another_target_drilled_here_has_a_report_and_history_of_its_own(
    drills: list[DrillRun], handover: Handover, tmp_path: Path
) -> None:
    root = drills[0].root
    config = load_config(root / "drill.toml")
    other = config.model_copy(update={"target": config.target.model_copy(update={"name": "other-target"})})
    render_handover(other, root / "reports", tmp_path / "other", single_file=True)
    (record,) = (r for r in load_chain(root / "reports" / "drills") if r.target == "other-target")
    lines = history_file(root / "reports", "other-target").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [f"other-target {record.run_id}"]


def test_plan_links_land_on_their_sections(drills: list[DrillRun], handover: Handover) -> None:
    plan = (handover.index.parent / "plan.html").read_text()
    results = next(run_results(drills[-1].reports)[-1:].__iter__())
    links = {link["url"] for path in results.glob("*-result.json") for link in json.loads(path.read_text())["links"]}
    assert links == {"plan.html#restore-procedure-minimum", "plan.html#recovery-drills"}
    for link in links:
        assert f'id="{link.split("#")[1]}"' in plan, link


def test_record_is_handed_over_as_html_and_pdf(drills: list[DrillRun], handover: Handover) -> None:
    page, pdf = (path for path in handover.files if path.name.startswith("drill-record-"))
    record = load_chain(drills[-1].reports / "drills")[-1]
    assert page.name == f"drill-record-{record.run_id}.html"
    text = _text(page.read_text())
    for check in record.checks:  # every column of every row, nothing cut off
        assert f"{check.feature} {check.scenario} {check.status} {check.message}".strip() in text
    body = pdf.read_bytes()
    assert body.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", body)) >= 1


def test_verdict_description_is_lines_not_wide_tables(drills: list[DrillRun]) -> None:
    record = load_chain(drills[0].reports / "drills")[0]
    summary = verdict_summary(record)
    assert "|" not in summary  # Allure cuts a wide table's columns off
    assert "- failed: The restored rows match the manifest (orders: restored 10 rows, manifest says 11" in summary
    assert "- passed: The newest dump restores within the RTO" in summary


def test_report_refuses_to_replace_a_directory_that_is_not_a_report(drills: list[DrillRun], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    root = drills[-1].root
    with pytest.raises(HarnessError, match=rf"{tmp_path}: not empty and not an earlier report"):
        render_handover(load_config(root / "drill.toml"), root / "reports", tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_unreadable_plan_is_one_line_naming_the_key(drills: list[DrillRun], tmp_path: Path) -> None:
    root = drills[-1].root
    config = load_config(root / "drill.toml")
    config = config.model_copy(update={"reports": config.reports.model_copy(update={"plan": "missing-plan.md"})})
    with pytest.raises(ConfigError, match=r"drill.toml: \[reports\] plan: cannot read .*missing-plan.md"):
        render_handover(config, root / "reports", tmp_path / "out")


def test_bucket_text_in_the_report_cannot_make_the_reader_fetch_from_a_host(
    drills: list[DrillRun], tmp_path: Path
) -> None:
    """A message quoting a key with Markdown ``![x](http://host/...)`` fetches nothing: the report has a CSP."""
    hits: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        results = tmp_path / "results"
        shutil.copytree(run_results(drills[0].reports)[0], results)
        result = next(
            json.loads(p.read_text()) for p in results.glob("*-result.json") if "Drill verdict" in p.read_text()
        )
        beacon = f"http://127.0.0.1:{server.server_address[1]}/beacon.png"
        result["description"] = f"postgres/logical/![x]({beacon}).dump"
        (results / f"{result['uuid']}-result.json").write_text(json.dumps(result))
        index = render_html(results, tmp_path / "report", single_file=True)
        tests = json.loads((index.parent / "test-results.json").read_text())["byId"]
        verdict = next(key for key, test in tests.items() if test["name"].startswith("Drill verdict"))
        _chromium(f"{index.as_uri()}#/{verdict}", tmp_path / "profile", "--dump-dom")
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []
    assert f'content="{REPORT_CSP}"' in index.read_text()


def test_report_screenshot(handover: Handover, tmp_path: Path) -> None:
    picture = tmp_path / "report.png"
    # Headless Chromium's virtual time does not wait for the 6 MB inline script to be parsed: on a busy machine
    # a shot can catch Allure's loading spinner. Three tries tell a slow page from one that never renders.
    for attempt in range(3):
        _chromium(handover.index.as_uri(), tmp_path / f"profile{attempt}", f"--screenshot={picture}",
                  "--window-size=1400,900")  # fmt: skip
        if picture.stat().st_size > 20_000:
            break
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 20_000  # a rendered page, not a blank one


RESTORE = "The newest logical backup restores into isolated staging"
ROW_COUNTS = "Row counts of the critical tables match the backup's manifest"
APP = "The application starts against staging and its deep health is healthy"
SANDBOX_SCENARIOS = "isolated_staging or row_counts or deep_health"
"""The restore drill's scenarios an auditor opens: the restore with its backup, the row counts, the app."""
DSN_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]{0,15}://[^/\s:@'\"]{0,64}:(?!\*\*\*@)[^@\s/'\"]{1,128}@")
"""A connection URL carrying a password (``postgresql://user:secret@host``, not ``:***@``), whatever the run's was."""

STEPS = """() => {
    const root = document.querySelector('[data-testid=test-result-steps-root]');
    const steps = root ? [...root.querySelectorAll(':scope > [data-testid=test-result-step]')] : [];
    return steps.length && steps.map((step) => [
        step.querySelector('[data-testid=test-result-step-title]').innerText,
        step.querySelector('[data-testid^=tree-leaf-status-]').dataset.testid.replace('tree-leaf-status-', ''),
    ]);
}"""
"""The scenario's steps as the page lists them: title and the status its icon shows."""


@dataclass(frozen=True)
class SandboxDrill:
    """The restore scenarios of ``features/restore_drill.feature`` run on the sandbox, as the operator runs them."""

    config: Path
    reports: Path
    record: DrillRecord
    results: dict[str, dict[str, Any]]
    """The run's Allure results by scenario name."""


@pytest.fixture(scope="module")
def sandbox_drill(tmp_path_factory: pytest.TempPathFactory) -> SandboxDrill:
    home = tmp_path_factory.mktemp("sandbox-drill")
    config = home / "drill.toml"
    config.write_text(sandbox_drill_toml(home / "reports"))
    env = {**os.environ, "DRILL_OPERATOR": "ops-auditor-check"}
    env.pop("DRILL_CONFIG", None)
    env.pop(RUN_ENV, None)  # a run of its own, its results under reports/runs/<run id>/
    argv = [sys.executable, "-m", "pytest", "features/test_restore_drill.py", "-k", SANDBOX_SCENARIOS,
            "-p", "no:randomly", "-p", "no:cacheprovider", f"--drill-config={config}"]  # fmt: skip
    done = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = (done.stdout + done.stderr)[-4000:]
    records, runs = load_chain(home / "reports" / "drills"), run_results(home / "reports")
    assert len(records) == len(runs) == 1, output
    by_name = {r["name"]: r for r in (json.loads(path.read_text()) for path in runs[0].glob("*-result.json"))}
    assert {RESTORE, ROW_COUNTS, APP} <= set(by_name), output
    return SandboxDrill(config, home / "reports", records[0], by_name)


@pytest.fixture(scope="module", params=["served over HTTP", "single file from disk"])
def report(
    request: pytest.FixtureRequest, sandbox_drill: SandboxDrill, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The sandbox run's report as ``report`` renders it: by default served over HTTP (the README says so), and
    with ``--single-file`` opened from disk (``file://``), as an auditor handed the folder opens it."""
    out = tmp_path_factory.mktemp("report")
    single_file = request.param == "single file from disk"
    index = render_handover(
        load_config(sandbox_drill.config), sandbox_drill.reports, out, single_file=single_file
    ).index
    if single_file:
        yield index.as_uri()
        return

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{index.name}"
    finally:
        server.shutdown()
        server.server_close()


def _tree_item(kind: str, title: str) -> str:
    return f"[...document.querySelectorAll('[data-testid=tree-{kind}-title]')].find((t) => t.innerText === {title!r})"


def _open_scenario(page: Browser, result: dict[str, Any]) -> list[list[str]]:
    """Open a scenario from the report's tree as a reader does: unfold its sections, click it; its steps as listed."""
    name, sections = result["name"], result["titlePath"]
    for section, inner in zip(sections, [*sections[1:], None], strict=True):
        shown = _tree_item("section", inner) if inner else _tree_item("leaf", name)
        if not page.evaluate(f"!!({shown})"):  # a section the report did not unfold by itself
            page.click(_tree_item("section", section), f"the section {section!r} in the report's tree")
        page.wait(f"() => {shown}", f"{inner or name!r} in the report's tree")
    page.click(_tree_item("leaf", name), f"the scenario {name!r} in the report's tree")
    page.wait(f"() => document.querySelector('[data-testid=test-result-info-title]')?.innerText === {name!r}",
              f"the page of {name!r}")  # fmt: skip
    steps: list[list[str]] = page.wait(STEPS, f"the steps of {name!r}")
    return steps


def _step(title: str) -> str:
    return ("[...document.querySelectorAll('[data-testid=test-result-step]')].find((step) => "
            f"step.querySelector('[data-testid=test-result-step-title]').innerText === {title!r})")  # fmt: skip


def _unfold(page: Browser, title: str) -> str:
    """Click the step ``title`` open, as a reader does to see its parameters and attachments; returns the step."""
    step = _step(title)
    page.click(f"{step}?.querySelector('[data-testid=test-result-step-header]')", f"the step {title!r}")
    return step


def _open_attachment(page: Browser, title: str, name: str) -> str:
    """Unfold the step ``title`` and open its attachment ``name``; the text the page shows of its content."""
    attachment = (
        f"[...{_unfold(page, title)}.querySelectorAll('[data-testid=test-result-attachment]')].find((a) => "
        f"a.querySelector('[data-testid=test-result-attachment-header]').innerText.includes({name!r}))"
    )
    page.click(f"{attachment}?.querySelector('[data-testid=test-result-attachment-header] button')",
               f"the attachment {name!r} of the step {title!r}")  # fmt: skip
    shown: str = page.wait(f"() => {attachment}.querySelector('[data-testid$=attachment-content]')?.innerText",
                           f"the content of the attachment {name!r}")  # fmt: skip
    return shown


def _leaks(text: str) -> list[str]:
    return [secret for secret in CREDENTIALS if secret in text] + DSN_PASSWORD.findall(text)


@pytest.mark.slow
def test_a_restore_scenario_shows_its_steps_and_the_evidence_its_record_holds(
    sandbox_drill: SandboxDrill, report: str, tmp_path: Path
) -> None:
    record, result = sandbox_drill.record, sandbox_drill.results[RESTORE]
    assert record.backup is not None
    with browser(report, tmp_path / "profile") as page:
        steps = _open_scenario(page, result)
        assert steps == [[step["name"], step["status"]] for step in result["steps"]]
        assert {status for _, status in steps} == {"passed"}
        given, _, isolated, _ = (title for title, _ in steps)
        backup = json.loads(_open_attachment(page, given, "backup restored"))
        shown = (backup["key"], backup["size"], backup["sha256"])
        assert shown == (record.backup.key, record.backup.size, record.backup.sha256)
        staging = json.loads(_open_attachment(page, isolated, "staging server"))
        assert staging["port"] == next(s.port for s in record.staging if s.what == "staging PostgreSQL")
        dom = page.evaluate("document.documentElement.outerHTML")
    assert _leaks(html.unescape(dom)) == []


@pytest.mark.slow
def test_the_row_counts_shown_are_those_the_record_holds(
    sandbox_drill: SandboxDrill, report: str, tmp_path: Path
) -> None:
    result = sandbox_drill.results[ROW_COUNTS]
    with browser(report, tmp_path / "profile") as page:
        steps = _open_scenario(page, result)
        counted = steps[1][0]  # the Then: "each critical table holds exactly the rows the backup's manifest counted"
        table = _open_attachment(page, counted, "expected vs restored")
    header, *rows = (line.split("\t") for line in table.strip().splitlines())
    restored = {row[header.index("table")]: int(row[header.index("restored rows")]) for row in rows}
    assert restored == sandbox_drill.record.restored_rows


@pytest.mark.slow
def test_no_step_of_the_restore_scenarios_shows_a_credential(
    sandbox_drill: SandboxDrill, report: str, tmp_path: Path
) -> None:
    """Every step unfolded, so its parameters are on the page: none is a key, a seed or a URL with a password."""
    for name in (RESTORE, ROW_COUNTS, APP):
        with browser(report, tmp_path / name[:12]) as page:
            result = sandbox_drill.results[name]
            _open_scenario(page, result)
            for step in result["steps"]:
                if step.get("parameters") or step.get("attachments"):  # a step with neither has nothing to unfold
                    shown = _unfold(page, step["name"])
                    page.wait(f"() => {shown}.querySelector('[data-testid=test-result-step-content]')",
                              f"the step {step['name']!r} unfolded")  # fmt: skip
            dom = page.evaluate("document.documentElement.outerHTML")
        assert _leaks(html.unescape(dom)) == [], name
