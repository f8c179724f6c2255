"""The drill record as Markdown, for the person who signs off the cut-over.

The Markdown is rendered before the record is sealed and the JSON keeps its sha256 (``markdown_sha256``), so
the chain verifier notices when someone edited the human-readable copy instead of, or as well as, the JSON.
"""

from __future__ import annotations

from harness.records.record import DrillRecord, format_number
from harness.redact import redact

__all__ = ["render_markdown"]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(record: DrillRecord, *, trend_link: bool = True) -> str:
    """The record as a Markdown page: verdict first, then what was measured, checked and must be done.

    ``trend_link=False`` leaves out the chart's relative link, for places where the PNG does not sit beside
    the page (the Allure report carries it as an attachment instead).
    """
    lines = [
        f"# Drill {record.run_id}: {record.verdict.decision}",
        "",
        f"- Target: {record.target}",
        f"- Started: {record.started_at.isoformat()}; finished: {record.finished_at.isoformat()}",
        f"- Provider: {record.provider}; harness {record.harness_version}",
    ]
    if record.backup:
        b = record.backup
        lines.append(f"- Backup used: `{b.key}` taken {b.taken_at.isoformat()}, {b.size} bytes, sha256 `{b.sha256}`")
    if record.restored_rows:
        lines.append("- Rows restored: " + ", ".join(f"{t} {n}" for t, n in sorted(record.restored_rows.items())))
    lines += ["", "## Verdict", "", f"**{record.verdict.decision}**", ""]
    lines += [f"- {reason}" for reason in record.verdict.reasons] + [""]
    lines += ["## Measures against objectives", ""]
    lines += _table(
        ["measure", "value", "objective", "met", "detail"],
        [
            [m.name, m.figure(), m.figure(m.objective), "yes" if m.met else "**no**", m.detail]
            for m in record.measures
        ],
    )  # fmt: skip
    if record.rto_phases:
        lines += ["## RTO phases", ""]
        lines += _table(["phase", "seconds"], [[name, format_number(s)] for name, s in record.rto_phases.items()])
    lines += ["## Checks", ""]
    lines += _table(
        ["feature", "scenario", "status", "message"],
        [[c.feature, c.scenario, c.status, c.message] for c in record.checks if c.status != "deselected"],
    )
    inapplicable = [c for c in record.checks if c.status == "not applicable"]
    if inapplicable:
        lines += ["## Not applicable to this target", ""]
        lines += _table(["feature", "scenario", "why"], [[c.feature, c.scenario, c.message] for c in inapplicable])
    deselected = [c for c in record.checks if c.status == "deselected"]
    if deselected:
        lines += ["## Deselected (not part of this run)", ""]
        lines += [f"- {c.feature}: {c.scenario}" for c in deselected] + [""]
    lines += ["## Action items", ""]
    lines += [f"{n}. {item.line()}" for n, item in enumerate(record.action_items, 1)] or ["None."]
    lines.append("")
    if record.waivers:
        lines += ["## Waivers", ""]
        lines += _table(
            ["rule", "subject", "approved by", "reason"],
            [[w.rule, w.subject, w.approved_by, w.reason] for w in record.waivers],
        )
    lines += ["## Controls", ""]
    lines += _table(
        ["control", "description", "status", "evidence"],
        [[c.control, c.description, c.status, "; ".join(c.evidence)] for c in record.controls],
    )
    if record.environment:
        lines += ["## Environment", ""]
        lines += _table(["key", "value"], [[k, v] for k, v in sorted(record.environment.items())])
    if record.trend_image and trend_link:
        lines += ["## Trend", "", f"![RPO and RTO per drill]({record.trend_image})", ""]
    previous = record.previous_hash or "(first record)"
    lines += ["## Chain", "", f"- previous record's hash: `{previous}`", "- this record's hash: in its JSON twin"]
    return redact("\n".join(lines) + "\n")
