"""The Allure side of the record: environment, a verdict result, and the HTML rendered by the Allure 3 CLI.

Auditors open the Allure report, so the drill's conclusion must be in it, not only in ``reports/drills/``.
Writing Allure's files directly (they are plain JSON and a properties file) keeps this module free of the
allure package, and lets the session add its verdict after the last test, when no test is active to attach to.
The HTML is rendered by the npm package ``allure`` (version 3), installed once under the user's cache.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import HarnessError
from harness.records.chain import VERDICT_CASE
from harness.records.controls import AREAS, EPIC, plan_link
from harness.records.markdown import SANDBOX_BANNER, render_markdown
from harness.records.record import DrillRecord, format_number
from harness.redact import redact
from harness.services.base import run_tool
from harness.services.npm import npm_tool

__all__ = [
    "ALLURE_CACHE",
    "allure_cli",
    "attribution_properties",
    "history_runs",
    "render_html",
    "render_runs",
    "scrub_secrets",
    "settle_result",
    "verdict_summary",
    "verdict_title",
    "write_environment",
    "write_not_applicable",
    "write_verdict_result",
]

ALLURE_CACHE = Path.home() / ".cache" / "codeblack-drills" / "allure"
ALLURE_PACKAGE = "allure@3"
_GENERATE_TIMEOUT_S = 180.0


def _escape_property(text: str, *, key: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return "".join("\\" + c if key and c in "=: #!" else c for c in text)


def write_environment(results_dir: Path, mapping: Mapping[str, str]) -> Path:
    """Write Allure's ``environment.properties`` (redacted) in ``mapping``'s order, shown on the report's overview.

    The overview shows the first few lines and folds the rest, so the caller puts what matters most first.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{_escape_property(key, key=True)}={_escape_property(redact(str(value)), key=False)}"
        for key, value in mapping.items()
    ]
    path = results_dir / "environment.properties"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def attribution_properties(record: DrillRecord) -> dict[str, str]:
    """The overview's lines that say whose drill this was and whether it is evidence at all."""
    found = {"drill.sandbox": f"true: {SANDBOX_BANNER}" if record.sandbox else "false"}
    a = record.attribution
    if a is not None:
        found |= {"drill.operator": f"{a.operator} (from {a.operator_source})", "drill.host": a.host,
                  "harness.commit": f"{a.harness_commit} ({a.harness_commit_source})",
                  "config.path": a.config_path, "config.sha256": a.config_sha256}  # fmt: skip
        found |= {f"objective.{o.name}": f"{format_number(o.value)} ({o.source})" for o in a.objectives}
    return found


def verdict_title(record: DrillRecord) -> str:
    """One line with the verdict and the RPO/RTO figures against their objectives (a rehearsal says so first)."""
    parts = [f"{'Sandbox rehearsal, not evidence: ' if record.sandbox else ''}Drill verdict {record.verdict.decision}"]
    for measure in record.measures:
        parts.append(f"{measure.name} {measure.against()}")
    return ", ".join(parts)


def verdict_summary(record: DrillRecord) -> str:
    """The verdict result's description: the record's substance as lists, never wide tables.

    Allure's description pane gives a table the page's width and cuts off what does not fit (an auditor lost
    the status and message columns of the checks that way), so here every row is a line that wraps; the full
    record, tables and all, is attached beside it and handed over as HTML and PDF (``report --pdf``).
    """
    lines = [f"## Drill {record.run_id}: {record.verdict.decision}", ""]
    lines += [f"- {reason}" for reason in record.verdict.reasons] + ["", "### Measures against objectives", ""]
    for m in record.measures:
        lines.append(f"- **{m.name}** {m.against()}, {'met' if m.met else '**missed**'}"
                     + (f": {m.detail}" if m.detail else ""))  # fmt: skip
    lines += ["", "### Checks", ""]
    shown = sorted((c for c in record.checks if c.status != "deselected"), key=lambda c: c.feature)
    for feature, checks in itertools.groupby(shown, key=lambda c: c.feature):
        lines += [f"**{feature}**", ""]
        lines += [f"- {c.status}: {c.scenario}" + (f" ({c.message})" if c.message else "") for c in checks]
        lines.append("")
    lines += ["### Action items", ""]
    lines += [f"{n}. {item.line()}" for n, item in enumerate(record.action_items, 1)] or ["None."]
    lines += ["", "The whole record (controls, environment, chain) is attached as Markdown and JSON."]
    return redact("\n".join(lines) + "\n")


def _attachment(results_dir: Path, name: str, body: bytes, mime: str, extension: str) -> dict[str, str]:
    source = f"{uuid.uuid4()}-attachment.{extension}"
    (results_dir / source).write_bytes(body)
    return {"name": name, "source": source, "type": mime}


def write_verdict_result(
    results_dir: Path, record: DrillRecord, trend: Path | None = None, *, plan: bool = False
) -> Path:
    """Add one Allure result carrying the verdict, RPO/RTO with phases and objectives, the record and the trend.

    It passes for GO and fails for NO-GO, so the report's own totals agree with the verdict. The record and the
    trend are also written as global attachments of the report. ``plan``: link the plan's Recovery Drills
    section (the target configured ``[reports] plan``).
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(record)
    attachments = [
        _attachment(results_dir, "drill record (Markdown)", markdown.encode(), "text/markdown", "md"),
        _attachment(results_dir, "drill record (JSON)", redact(record.model_dump_json(indent=2)).encode(),
                    "application/json", "json"),
    ]  # fmt: skip
    if trend is not None and trend.exists():
        attachments.append(_attachment(results_dir, "RPO and RTO trend", trend.read_bytes(), "image/svg+xml", "svg"))
    parameters = [{"name": m.name, "value": m.against()} for m in record.measures]
    parameters += [
        {"name": name, "value": f"{format_number(s)} s (RTO phase)"} for name, s in record.rto_phases.items()
    ]
    failed = record.verdict.decision == "NO-GO"
    drill = AREAS["restore_drill"]
    result = {
        "uuid": str(uuid.uuid4()),
        "historyId": VERDICT_CASE,
        "testCaseId": VERDICT_CASE,
        "fullName": "codeblack-drills: drill verdict",
        "name": verdict_title(record),
        "status": "failed" if failed else "passed",
        "statusDetails": {"message": "; ".join(record.verdict.reasons)} if failed else {},
        "stage": "finished",
        "description": verdict_summary(record),
        "start": int(record.started_at.timestamp() * 1000),
        "stop": int(max(record.finished_at.timestamp(), time.time()) * 1000),
        "labels": [
            {"name": "epic", "value": EPIC},
            {"name": "feature", "value": "Recovery Drills"},
            {"name": "story", "value": "Drill verdict"},
            {"name": "severity", "value": drill.severity},
            {"name": "tag", "value": "monthly"},
        ],
        "links": [{"name": "Plan: Recovery Drills", "url": plan_link("Recovery Drills"), "type": "link"}]
        if plan
        else [],
        "parameters": parameters,
        "attachments": attachments,
        "steps": [{"name": item.assigned(), "status": "failed", "stage": "finished"} for item in record.action_items],
    }
    path = results_dir / f"{result['uuid']}-result.json"
    path.write_text(redact(json.dumps(result, indent=2)), encoding="utf-8")
    # The same files as global attachments, so the overview's "Global Attachments" tab holds record and trend.
    stamp = int(time.time() * 1000)
    globals_item = {"attachments": [{**a, "timestamp": stamp} for a in attachments], "errors": []}
    (results_dir / f"{uuid.uuid4()}-globals.json").write_text(json.dumps(globals_item, indent=2), encoding="utf-8")
    return path


def write_not_applicable(results_dir: Path, record: DrillRecord) -> list[Path]:
    """One skipped Allure result per scenario that did not apply to the target, its reason as the message.

    Such a scenario is skipped before pytest-bdd starts it, so the Allure plugin writes nothing for it; without
    these results the report would not show what the drill did not cover, nor why.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    written = []
    stamp = int(record.finished_at.timestamp() * 1000)
    for check in record.checks:
        if check.status != "not applicable":
            continue
        identity = hashlib.sha256(f"{check.feature}\n{check.scenario}".encode()).hexdigest()
        result = {
            "uuid": str(uuid.uuid4()),
            "historyId": identity,
            "testCaseId": identity,
            "fullName": f"{check.feature}: {check.scenario}",
            "titlePath": ["features", check.feature],  # beside the feature's other scenarios in the report's tree
            "name": check.scenario,
            "status": "skipped",
            "statusDetails": {"message": check.message},
            "stage": "finished",
            "start": stamp,
            "stop": stamp,
            "labels": [
                {"name": "epic", "value": EPIC},
                {"name": "feature", "value": check.feature},
                {"name": "story", "value": check.scenario},
                {"name": "tag", "value": "not applicable"},
            ],
        }
        path = results_dir / f"{result['uuid']}-result.json"
        path.write_text(redact(json.dumps(result, indent=2)), encoding="utf-8")
        written.append(path)
    return written


def settle_result(directory: Path, scenario: str, status: str, message: str, *, since: float = 0.0) -> list[Path]:
    """Give a scenario's result the ``status`` decided after it ran; returns the files changed.

    With pytest-xdist a worker judges cut-over on its own share of the databases only: it fails it when that
    share is NO-GO, and otherwise leaves it (skipped) to the controller, which decides it on every worker's
    checks and measures. The report must show that decision, not the worker's skip or pass beside the
    record's verdict. Only a result the worker passed or skipped is changed; ``since`` skips earlier sessions'.
    """
    changed = []
    for path in sorted(p for p in directory.glob("*-result.json") if p.stat().st_mtime >= since):
        result = json.loads(path.read_text(encoding="utf-8"))
        if result.get("name") != scenario or result.get("status") not in ("passed", "skipped"):
            continue
        details = {"statusDetails": {"message": message}} if status == "failed" else {}
        result.pop("statusDetails", None)
        result.update(status=status, **details)
        if result.get("steps"):  # the step that judged cut-over, so the scenario page shows where it was decided
            result["steps"][-1].pop("statusDetails", None)
            result["steps"][-1].update(status=status, **details)
        path.write_text(json.dumps(result), encoding="utf-8")
        changed.append(path)
    return changed


def scrub_secrets(directory: Path, *, since: float = 0.0) -> list[Path]:
    """Redact every text file under ``directory`` in place; returns the files that held a secret.

    allure-pytest-bdd writes failure messages, tracebacks and captured logs as they were raised, so a secret
    inside an exception would reach the results; the session end passes every file through :func:`redact`.
    ``since`` (epoch seconds) skips files not modified since then: the results of earlier sessions, which
    accumulate in the same directory, were scrubbed by their own session.
    """
    changed = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.stat().st_mtime >= since):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: nothing the harness writes, but an attachment a plugin added may be
        clean = redact(text)
        if clean != text:
            path.write_text(clean, encoding="utf-8")
            changed.append(path)
    return changed


def allure_cli(cache: Path = ALLURE_CACHE) -> Path:
    """The Allure 3 CLI, installed with npm under ``cache`` the first time it is needed.

    Raises:
        HarnessError: node or npm is missing, or the install failed.
    """
    return npm_tool(ALLURE_PACKAGE, "allure", cache, purpose="rendering the HTML report")


def render_html(
    results_dir: Path,
    out_dir: Path,
    *,
    name: str = "codeblack-drills",
    history: Path | None = None,
    single_file: bool = False,
) -> Path:
    """Render the Allure results into an HTML report; returns the report's ``index.html``.

    ``history`` is Allure's history file (JSON lines): read for the report's History tabs and trend, and this
    report appended to it. ``single_file`` inlines every script and datum into ``index.html``, so the report
    opens from disk (a file handed over, or a CI artifact) instead of needing a web server.

    Raises:
        HarnessError: no results to render, the CLI could not be installed, or rendering failed.
    """
    if not results_dir.is_dir() or not any(results_dir.glob("*-result.json")):
        raise HarnessError(f"{results_dir}: no Allure results to render; run `uv run pytest features/` first")
    cli = allure_cli()
    settings: dict[str, object] = {"name": name, "plugins": {"awesome": {"options": {"singleFile": single_file}}}}
    if history is not None:
        history.parent.mkdir(parents=True, exist_ok=True)
        settings["historyPath"] = str(history.resolve())
    _check_replaceable(out_dir)
    with tempfile.TemporaryDirectory(prefix="allure-generate-") as scratch:
        rc, fresh = Path(scratch) / "allurerc.json", Path(scratch) / "report"
        rc.write_text(json.dumps(settings), encoding="utf-8")
        run_tool([cli, "generate", results_dir.resolve(), "--config", rc, "--output", fresh],
                 what="allure generate", timeout=_GENERATE_TIMEOUT_S, inherit_env=True)  # fmt: skip
        if not (fresh / "index.html").exists():
            raise HarnessError(f"allure generate wrote no index.html; check {results_dir} holds Allure 2/3 results")
        # Into an empty directory: Allure writes beside an earlier report (in awesome/), leaving a stale index.
        _confine(fresh / "index.html")
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(fresh, out_dir)
    return out_dir / "index.html"


REPORT_CSP = (
    "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; connect-src 'self' data: blob:; "
    "img-src 'self' data: blob:; form-action 'none'; base-uri 'none'"
)
"""What the report may load: its own files and inlined data, never a remote host.

Scenario names, messages and attachments quote bucket text (object keys, manifest fields); Markdown in them
such as ``![x](http://host/...)`` would otherwise have the auditor's browser fetch from wherever it points.
"""


def _confine(index: Path) -> None:
    """Put :data:`REPORT_CSP` at the top of the report's ``<head>``."""
    page = index.read_text(encoding="utf-8")
    head = page.find("<head>")
    if head < 0:
        raise HarnessError(f"{index}: no <head> in the page allure generate wrote; cannot confine it")
    meta = f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
    index.write_text(page[: head + len("<head>")] + meta + page[head + len("<head>") :], encoding="utf-8")


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a directory that is not an earlier report (an --output pointed at the wrong place)."""
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "index.html").exists():
        raise HarnessError(f"{out_dir}: not empty and not an earlier report; choose an empty --output directory")


def history_runs(history: Path) -> list[str]:
    """The report names in Allure's history file, oldest first (one line per rendered run)."""
    if not history.exists():
        return []
    names = []
    for line in history.read_text(encoding="utf-8").splitlines():
        try:
            names.append(str(json.loads(line).get("name", "")))
        except (json.JSONDecodeError, AttributeError):
            raise HarnessError(f"{history}: not an Allure history file (a line is not a JSON object)") from None
    return names


def render_runs(
    runs: Sequence[Path], target: Path, out_dir: Path, history: Path, *, name: str, single_file: bool = False
) -> Path:
    """Render the run ``target`` with Allure's history of every earlier run in ``runs`` (oldest first).

    Allure learns a run only when a report of it is generated, so a run never rendered would be a hole in the
    history: those are rendered first (into a scratch directory) to append their entry. Each entry is named
    ``<name> <run id>``; rendering a run again shows the history up to that run and appends nothing, so the
    history file holds each run once, in order.
    """
    names = history_runs(history)
    before = list(itertools.takewhile(lambda run: run != target, runs))
    for run in before:
        if f"{name} {run.parent.name}" not in names:
            with tempfile.TemporaryDirectory(prefix="allure-history-") as scratch:
                render_html(run, Path(scratch), name=f"{name} {run.parent.name}", history=history)
    title = f"{name} {target.parent.name}"
    names = history_runs(history)
    if title not in names:
        return render_html(target, out_dir, name=title, history=history, single_file=single_file)
    with tempfile.TemporaryDirectory(prefix="allure-history-") as scratch:
        earlier = Path(scratch) / "history.jsonl"
        lines = history.read_text(encoding="utf-8").splitlines()[: names.index(title)]
        earlier.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return render_html(target, out_dir, name=title, history=earlier, single_file=single_file)
