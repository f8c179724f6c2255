"""The Allure side of the record: environment, a verdict result, and the HTML rendered by the Allure 3 CLI.

Auditors open the Allure report, so the drill's conclusion must be in it, not only in ``reports/drills/``.
Writing Allure's files directly (they are plain JSON and a properties file) keeps this module free of the
allure package, and lets the session add its verdict after the last test, when no test is active to attach to.
The HTML is rendered by the npm package ``allure`` (version 3), installed once under the user's cache.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from harness.errors import HarnessError
from harness.records.chain import VERDICT_CASE
from harness.records.controls import AREAS, EPIC
from harness.records.markdown import SANDBOX_BANNER, render_markdown
from harness.records.record import DrillRecord, format_number
from harness.redact import redact
from harness.services.base import run_tool

__all__ = [
    "ALLURE_CACHE",
    "allure_cli",
    "attribution_properties",
    "render_html",
    "scrub_secrets",
    "verdict_title",
    "write_environment",
    "write_not_applicable",
    "write_verdict_result",
]

ALLURE_CACHE = Path.home() / ".cache" / "codeblack-drills" / "allure"
ALLURE_PACKAGE = "allure@3"
_INSTALL_TIMEOUT_S = 300.0
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


def _attachment(results_dir: Path, name: str, body: bytes, mime: str, extension: str) -> dict[str, str]:
    source = f"{uuid.uuid4()}-attachment.{extension}"
    (results_dir / source).write_bytes(body)
    return {"name": name, "source": source, "type": mime}


def write_verdict_result(results_dir: Path, record: DrillRecord, trend: Path | None = None) -> Path:
    """Add one Allure result carrying the verdict, RPO/RTO with phases and objectives, the record and the trend.

    It passes for GO and fails for NO-GO, so the report's own totals agree with the verdict. The record and the
    trend are also written as global attachments of the report.
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
        "description": render_markdown(record, trend_link=False),  # the chart is an attachment here
        "start": int(record.started_at.timestamp() * 1000),
        "stop": int(max(record.finished_at.timestamp(), time.time()) * 1000),
        "labels": [
            {"name": "epic", "value": EPIC},
            {"name": "feature", "value": "Recovery Drills"},
            {"name": "story", "value": "Drill verdict"},
            {"name": "severity", "value": drill.severity},
            {"name": "tag", "value": "monthly"},
        ],
        "links": [
            {"name": "Plan: Recovery Drills", "url": "backup-and-migration-plan.md#recovery-drills", "type": "link"}
        ],
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
    cli = cache / "node_modules" / ".bin" / "allure"
    if cli.exists():
        return cli
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise HarnessError(
            f"rendering the HTML report needs {' and '.join(missing)}: install Node.js 20 or newer "
            "(for example `apt-get install nodejs npm`), then run the command again"
        )
    cache.mkdir(parents=True, exist_ok=True)
    run_tool(["npm", "install", "--no-audit", "--no-fund", "--prefix", cache, ALLURE_PACKAGE],
             what=f"npm install {ALLURE_PACKAGE} into {cache}", timeout=_INSTALL_TIMEOUT_S,
             inherit_env=True)  # fmt: skip
    if not cli.exists():
        raise HarnessError(
            f"npm installed {ALLURE_PACKAGE} into {cache} but {cli} is missing; delete {cache} and retry"
        )
    return cli


def render_html(results_dir: Path, out_dir: Path, *, name: str = "codeblack-drills") -> Path:
    """Render the Allure results into an HTML report; returns the report's ``index.html``.

    Raises:
        HarnessError: no results to render, the CLI could not be installed, or rendering failed.
    """
    if not results_dir.is_dir() or not any(results_dir.glob("*-result.json")):
        raise HarnessError(f"{results_dir}: no Allure results to render; run `uv run pytest features/` first")
    cli = allure_cli()
    run_tool([cli, "generate", results_dir.resolve(), "--output", out_dir.resolve(), "--report-name", name],
             what="allure generate", timeout=_GENERATE_TIMEOUT_S, inherit_env=True)  # fmt: skip
    index = out_dir / "index.html"
    if not index.exists():
        raise HarnessError(f"allure generate wrote no {index}; check {results_dir} holds Allure 2/3 results")
    return index
