"""The drill record as Markdown, for the person who signs off the cut-over.

The Markdown is rendered before the record is sealed and the JSON keeps its sha256 (``markdown_sha256``), so
the chain verifier notices when someone edited the human-readable copy instead of, or as well as, the JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from harness.records.record import DrillRecord, format_number
from harness.redact import redact

__all__ = ["SANDBOX_BANNER", "overlap_note", "render_markdown", "staging_note"]

SANDBOX_BANNER = (
    "REHEARSAL ON THE SANDBOX, NOT EVIDENCE: the figures below are the harness's own world built on this machine, "
    "never production's"
)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def staging_note(record: DrillRecord) -> str:
    """What makes staging faster than production would be (``fsync = off`` …), said beside RTO; "" if nothing."""
    tuned = [f"{s.what} ran with {', '.join(f'{k} = {v}' for k, v in s.settings.items() if k == 'fsync')}"
             for s in record.staging if "fsync" in s.settings]  # fmt: skip
    if not tuned:
        return ""
    return "; ".join(tuned) + " (a disposable copy tuned for restore speed: a durable server restores slower)"


def _attribution(record: DrillRecord) -> list[str]:
    a = record.attribution
    if a is None:
        return ["- Attribution: not recorded (a record written before drills named operator, host and commit)"]
    lines = [
        f"- Operator: {a.operator} (from {a.operator_source}); host: {a.host}",
        f"- Harness: {a.harness_commit} ({a.harness_commit_source})",
        f"- Configuration: `{a.config_path}` sha256 `{a.config_sha256}`",
    ]
    return lines + [f"- Objective change: {change.line()}" for change in a.objective_changes]


def overlap_note(record: DrillRecord) -> str:
    """A sentence saying the RTO phases overlap, so their sum is not RTO ("" when they ran one after another)."""
    ordered = sorted(record.rto_timeline, key=lambda p: p.start_s)
    if not any(later.start_s < earlier.end_s for earlier, later in pairwise(ordered)):
        return ""
    total = format_number(sum(p.seconds for p in ordered))
    rto = record.measure("RTO")
    figure = f"RTO ({rto.figure()})" if rto else "RTO"
    return f"phases overlap (they ran at the same time): their sum, {total} s, is not the {figure}"


def _timeline(record: DrillRecord) -> list[str]:
    rows = [[p.name, format_number(p.start_s), format_number(p.end_s), format_number(p.seconds)]
            for p in record.rto_timeline]  # fmt: skip
    lines = _table(["phase", "start (s after incident)", "end (s after incident)", "seconds"], rows)
    note = overlap_note(record)
    return (
        [*lines, note[0].upper() + note[1:] + "; RTO runs from the incident to the last step.", ""] if note else lines
    )


def render_markdown(record: DrillRecord, *, trend_link: bool = True) -> str:
    """The record as a Markdown page: verdict first, then what was measured, checked and must be done.

    ``trend_link=False`` leaves out the chart's relative link, for places where the PNG does not sit beside
    the page (the Allure report carries it as an attachment instead).
    """
    lines = [f"# Drill {record.run_id}: {record.verdict.decision}", ""]
    if record.sandbox:
        lines += [f"> **{SANDBOX_BANNER}.**", ""]
    lines += [
        f"- Target: {record.target}{' (sandbox)' if record.sandbox else ''}",
        f"- Started: {record.started_at.isoformat()}; finished: {record.finished_at.isoformat()}",
        f"- Provider: {record.provider}; harness {record.harness_version}",
        *_attribution(record),
    ]
    if record.backup and not record.restored:
        b = record.backup
        lines.append(f"- Backup used: `{b.key}` taken {b.taken_at.isoformat()}, {b.size} bytes, sha256 `{b.sha256}`")
    for database, restored in record.database_rows.items() or [("", record.restored_rows)]:
        if restored:  # a drill of several databases lists each one's
            of = f" in {database}" if database else ""
            lines.append(f"- Rows restored{of}: " + ", ".join(f"{t} {n}" for t, n in sorted(restored.items())))
    if record.restored:
        lines += ["", "## Restored", ""]
        rows = [[r.what, r.key, r.size, r.sha256, r.taken_at.isoformat()] for r in record.restored]
        lines += _table(["backup", "key", "bytes", "sha256", "taken at"], rows)
    if record.staging:
        lines += ["## Staging servers", ""]
        lines += _table(
            ["server", "host", "port", "version", "settings that differ from production's defaults"],
            [[s.what, s.host, s.port, s.version, ", ".join(f"{k} = {v}" for k, v in s.settings.items()) or "none"]
             for s in record.staging],
        )  # fmt: skip
    lines += ["", "## Verdict", "", f"**{record.verdict.decision}**", ""]
    lines += [f"- {reason}" for reason in record.verdict.reasons] + [""]
    lines += ["## Measures against objectives", ""]
    note = staging_note(record)
    lines += _table(
        ["measure", "value", "objective", "met", "detail"],
        [
            [m.name, m.figure(), m.figure(m.objective), "yes" if m.met else "**no**",
             "; ".join(part for part in (m.detail, note if m.name == "RTO" else "") if part)]
            for m in record.measures
        ],
    )  # fmt: skip
    if record.rto_timeline:
        lines += ["## RTO phases", ""]
        lines += _timeline(record)
    elif record.rto_phases:
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
    lines += [f"{n}. {item.assigned()}" for n, item in enumerate(record.action_items, 1)] or ["None."]
    lines.append("")
    if record.follow_up:
        lines += ["## The previous drill's action items", ""]
        lines += _table(["item", "raised by", "now"], [[f.item, f.since, f.status] for f in record.follow_up])
    if record.waivers:
        lines += ["## Waivers", ""]
        lines += _table(
            ["rule", "subject", "approved by", "reason"],
            [[w.rule, w.subject, w.approved_by, w.reason] for w in record.waivers],
        )
    lines += ["## Controls", ""]
    if record.sandbox:
        lines += ["A sandbox run is a rehearsal: it collects no evidence for any control.", ""]
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
