"""The report an auditor is handed: the Allure HTML with its history, the plan it links to, the record as PDF.

One folder holds everything and opens from disk: ``index.html`` (with ``single_file`` every script and datum
inlined), ``plan.html`` (the plan the scenarios' links point into), and, when asked, the drill record of the
rendered run as ``drill-record-<run id>.html`` and ``.pdf``. Allure's history lives beside the runs
(``<reports>/allure-history-<target>.jsonl``, one per target), so a run's report shows how each scenario fared
in that target's runs before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import DrillConfig
from harness.errors import ConfigError, HarnessError
from harness.records.chain import load_chain
from harness.records.controls import PLAN_PAGE
from harness.records.html import markdown_page, record_page
from harness.records.pdf import print_pdf
from harness.records.record import DrillRecord
from harness.records.report import render_html, render_runs

__all__ = ["Handover", "history_file", "render_handover", "run_results"]


@dataclass
class Handover:
    """What ``render_handover`` wrote."""

    index: Path
    files: list[Path] = field(default_factory=list)


def run_results(reports: Path) -> list[Path]:
    """Each run's Allure results under ``reports/runs/``, oldest first; runs that wrote no result are left out."""
    runs = [path for path in reports.glob("runs/*/allure-results") if any(path.glob("*-result.json"))]
    return sorted(runs, key=lambda path: (path.stat().st_mtime, path.parent.name))


@dataclass
class _Chain:
    """The drill records under ``reports/drills``, read once per report: the history and the PDF both need them."""

    drills: Path
    records: list[DrillRecord] = field(default_factory=list)
    error: HarnessError | None = None

    @classmethod
    def read(cls, reports: Path) -> _Chain:
        drills = reports / "drills"
        try:
            return cls(drills, load_chain(drills) if drills.is_dir() else [])
        except HarnessError as exc:
            return cls(drills, error=exc)

    def targets(self) -> dict[str, str]:
        """Each run's target (none when the chain is broken: that is `records verify`'s to report)."""
        return {record.run_id: record.target for record in self.records}

    def record_of(self, run_id: str) -> DrillRecord:
        if self.error is not None:
            raise self.error
        records = [record for record in self.records if record.run_id == run_id]
        if not records:
            raise HarnessError(f"{self.drills}: no drill record of run {run_id}, so there is no record to print")
        return records[-1]


def history_file(reports: Path, target: str) -> Path:
    """Allure's history of one target's runs: targets drilled from one directory keep histories of their own."""
    return reports / f"allure-history-{re.sub(r'[^A-Za-z0-9_.-]+', '-', target).strip('-.') or 'target'}.jsonl"


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


def _record_pages(chain: _Chain, run_id: str, out: Path) -> list[Path]:
    record = chain.record_of(run_id)
    trend = chain.drills / record.trend_image if record.trend_image else None
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
    chain = _Chain.read(reports)
    targets = chain.targets()
    runs = [run.resolve() for run in run_results(reports)]
    name = config.target.name
    if results is not None and results.resolve() in runs:
        name = targets.get(results.resolve().parent.name, name)
    # Only this target's runs, named after the target their records give: another target drilled from the
    # same directory (or the sandbox) is never part of this one's report or history.
    own = [run for run in runs if targets.get(run.parent.name) == name]
    target = results.resolve() if results is not None else (own[-1] if own else None)
    if target is None:
        raise HarnessError(
            f"{reports / 'runs'}: no Allure results of a drill run here{f' of {name}' if name else ''}; run the drill "
            "or pass --results"
        )
    out.mkdir(parents=True, exist_ok=True)
    if target in own:
        index = render_runs(own, target, out, history_file(reports, name), name=name, single_file=single_file)
    else:  # results from elsewhere (a CI artifact) or of a run without a record: no history to place them in
        index = render_html(target, out, name=name, single_file=single_file)
    handover = Handover(index)
    plan = _plan_page(config, out)
    if plan is not None:
        handover.files.append(plan)
    if pdf:
        handover.files += _record_pages(chain, target.resolve().parent.name, out)
    return handover
