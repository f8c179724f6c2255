"""The report an auditor is handed: the Allure HTML with its history, the plan it links to, the record as PDF.

One folder holds everything and opens from disk: ``index.html`` (with ``single_file`` every script and datum
inlined), ``plan.html`` (the plan the scenarios' links point into), and, when asked, the drill record of the
rendered run as ``drill-record-<run id>.html`` and ``.pdf``. Allure's history lives beside the runs
(``<reports>/allure-history.jsonl``), so a run's report shows how each scenario fared in the runs before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.config import DrillConfig
from harness.errors import ConfigError, HarnessError
from harness.records.chain import load_chain
from harness.records.controls import PLAN_PAGE
from harness.records.html import markdown_page, record_page
from harness.records.pdf import print_pdf
from harness.records.report import render_html, render_runs

__all__ = ["HISTORY_FILE", "Handover", "render_handover", "run_results"]

HISTORY_FILE = "allure-history.jsonl"


@dataclass
class Handover:
    """What ``render_handover`` wrote."""

    index: Path
    files: list[Path] = field(default_factory=list)


def run_results(reports: Path) -> list[Path]:
    """Each run's Allure results under ``reports/runs/``, oldest first; runs that wrote no result are left out."""
    runs = [path for path in reports.glob("runs/*/allure-results") if any(path.glob("*-result.json"))]
    return sorted(runs, key=lambda path: (path.stat().st_mtime, path.parent.name))


def _plan_page(config: DrillConfig, out: Path) -> Path | None:
    if not config.reports.plan:
        return None
    plan = config.resolve_path(config.reports.plan)
    try:
        text = plan.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config.source}: [reports] plan: cannot read {plan}: {exc}") from None
    page = out / PLAN_PAGE
    page.write_text(markdown_page(text, plan.stem), encoding="utf-8")
    return page


def _record_pages(reports: Path, run_id: str, out: Path) -> list[Path]:
    drills = reports / "drills"
    records = [record for record in load_chain(drills) if record.run_id == run_id] if drills.is_dir() else []
    if not records:
        raise HarnessError(f"{drills}: no drill record of run {run_id}, so there is no record to print")
    record = records[-1]
    trend = drills / record.trend_image if record.trend_image else None
    page = out / f"drill-record-{run_id}.html"
    page.write_text(record_page(record, trend.read_bytes() if trend and trend.is_file() else None), "utf-8")
    return [page, print_pdf(page, page.with_suffix(".pdf"))]


def render_handover(
    config: DrillConfig,
    reports: Path,
    out: Path,
    *,
    results: Path | None = None,
    single_file: bool = False,
    pdf: bool = False,
) -> Handover:
    """Render the report of one run (default: the newest under ``reports/runs/``) into ``out``.

    Raises:
        HarnessError: no run to render, its record is missing (``pdf``), or a renderer failed.
        ConfigError: ``[reports] plan`` names a file that cannot be read.
    """
    runs = run_results(reports)
    target = results or (runs[-1] if runs else None)
    if target is None:
        raise HarnessError(
            f"{reports / 'runs'}: no Allure results of a drill run here; run the drill or pass --results"
        )
    out.mkdir(parents=True, exist_ok=True)
    name = config.target.name
    if target.resolve() in [run.resolve() for run in runs]:
        ordered = [run.resolve() for run in runs]
        index = render_runs(ordered, target.resolve(), out, reports / HISTORY_FILE, name=name, single_file=single_file)
    else:  # results from elsewhere (a CI artifact): no history to place them in
        index = render_html(target, out, name=name, single_file=single_file)
    handover = Handover(index)
    plan = _plan_page(config, out)
    if plan is not None:
        handover.files.append(plan)
    if pdf:
        handover.files += _record_pages(reports, target.resolve().parent.name, out)
    return handover
