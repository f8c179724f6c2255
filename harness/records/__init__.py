"""Drill records: the JSON/Markdown record of each run, its action items, hash chain, trend and Allure output."""

from __future__ import annotations

from harness.records.actions import action_items, decide
from harness.records.chain import ChainResult, append_record, load_chain, verify_chain
from harness.records.controls import AREAS, CONTROLS, control_statuses
from harness.records.markdown import render_markdown
from harness.records.record import ActionItem, BackupUsed, Check, DrillRecord, Measure, Verdict, WaiverEntry
from harness.records.recorder import DrillRecorder
from harness.records.report import (
    render_html,
    scrub_secrets,
    write_environment,
    write_not_applicable,
    write_verdict_result,
)
from harness.records.trend import plot_trend

__all__ = [
    "AREAS",
    "CONTROLS",
    "ActionItem",
    "BackupUsed",
    "ChainResult",
    "Check",
    "DrillRecord",
    "DrillRecorder",
    "Measure",
    "Verdict",
    "WaiverEntry",
    "action_items",
    "append_record",
    "control_statuses",
    "decide",
    "load_chain",
    "plot_trend",
    "render_html",
    "render_markdown",
    "scrub_secrets",
    "verify_chain",
    "write_environment",
    "write_not_applicable",
    "write_verdict_result",
]
