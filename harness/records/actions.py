"""Action items and the verdict, derived from the drill's failures and missed objectives.

The plan's "Recovery Drills" asks for the drill output and action items; an operator reading the record must
see at once what failed, the number that shows it, and what to do. Every failed check and every missed
objective yields exactly one item, so nothing that broke the drill goes unanswered.
"""

from __future__ import annotations

from harness.records.record import RAN, ActionItem, Check, Measure, Verdict, format_number

__all__ = ["action_items", "decide", "unverified"]

# What to do when a scenario of an area fails; the failure message already names the object and the number.
AREA_ADVICE = {
    "backup_policy": "fix the backup job or bucket settings named in the message, then re-run the backup policy checks",
    "restore_drill": "repair the restore path named in the message and repeat the restore drill before cut-over",
    "migration_gates": "fix or revert the migration named in the message; do not deploy until the gate passes",
    "config_safety": "fix the config API behaviour named in the message; do not deploy until the gate passes",
}
DEFAULT_ADVICE = "investigate the failure named in the message and re-run the drill"
SETUP_ADVICE = "the drill could not run this check: fix the setup the message names, then re-run the drill"

# What to do when a measured figure misses its objective, keyed by the measure's name.
MEASURE_ADVICE = {
    "rpo": "increase pg_dump frequency or check the backup cron",
    "rto": "restore with more pg_restore jobs, a restore-tuned server or a smaller dump; shorten the slowest phase",
}


def _measure_item(measure: Measure, phases: dict[str, float]) -> ActionItem:
    todo = MEASURE_ADVICE.get(measure.name.lower(), f"bring {measure.name} back within its objective")
    if measure.name.lower() == "rto" and phases:
        slowest, seconds = max(phases.items(), key=lambda item: item[1])
        todo += f" ({slowest} took {format_number(seconds)} s)"
    return ActionItem(what=measure.name, number=measure.excess(), todo=todo)


def action_items(checks: list[Check], measures: list[Measure], phases: dict[str, float]) -> list[ActionItem]:
    """One item per failed check and per missed objective, in the order the drill met them."""
    items = [
        ActionItem(
            what=f"{check.feature}: {check.scenario}",
            number=check.message or "failed without a message",
            todo=SETUP_ADVICE if check.kind == "setup" else AREA_ADVICE.get(check.area, DEFAULT_ADVICE),
        )
        for check in checks
        if check.status == "failed"
    ]
    items.extend(_measure_item(measure, phases) for measure in measures if not measure.met)
    return items


def decide(checks: list[Check], measures: list[Measure]) -> Verdict:
    """GO only when every check that ran passed and every measured objective was met.

    What did not apply to the target is listed among the reasons of a GO, so the verdict says what it covers.
    """
    reasons = [
        f"{'could not run' if check.kind == 'setup' else 'failed'}: {check.feature}: {check.scenario}"
        for check in checks
        if check.status == "failed"
    ]
    reasons += [f"{m.name} {m.excess()}" for m in measures if not m.met]
    if not checks:
        reasons.append("no scenario ran")
    if reasons:
        return Verdict(decision="NO-GO", reasons=reasons)
    passed = sum(check.status == "passed" for check in checks)
    ran = sum(check.status in RAN for check in checks)
    met = [f"{m.name} {m.against()}" for m in measures]
    inapplicable = [f"{c.message or 'not applicable'}: {c.feature}: {c.scenario}" for c in checks
                    if c.status == "not applicable"]  # fmt: skip
    return Verdict(decision="GO", reasons=[f"{passed} of {ran} scenarios passed", *met, *inapplicable])


def unverified(checks: list[Check], area: str = "restore_drill") -> list[str]:
    """Why staging is not verified although nothing failed: restore-drill scenarios that did not run.

    The plan allows cut-over "only after staging verification"; a session that deselected or skipped the
    restore drill (``-k``, ``-m predeploy``) verified nothing, so its record must not say GO.
    """
    drill = [check for check in checks if check.area == area]
    if not any(check.status in RAN for check in drill):
        return ["the restore drill did not run: staging is not verified"]
    return [
        f"{'deselected' if check.status == 'deselected' else 'not run'}: {check.feature}: {check.scenario}"
        for check in drill
        if check.status in ("skipped", "deselected")
    ]
