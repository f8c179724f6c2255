"""Action items and the verdict, derived from the drill's failures and missed objectives.

The plan's "Recovery Drills" asks for the drill output and action items; an operator reading the record must
see at once what failed, the number that shows it, what to do, who does it and by when. Items are one per
*cause*: a missed objective is one item, however many scenarios failed because of it (the RPO scenario, the
per-store data loss, the cut-over decision), and its remedy is the objective's, never the advice of the area
whose scenario happened to report it. Each item carries its cause, so the next drill can re-evaluate the
previous drill's items against its own results (:func:`follow_up`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date

from harness.records.record import (
    RAN,
    ActionItem,
    Check,
    DrillRecord,
    FollowUp,
    FollowUpStatus,
    Measure,
    Verdict,
    format_number,
)

__all__ = ["action_items", "assign", "decide", "follow_up", "unverified"]
# What to do when a scenario of an area fails; the failure message already names the object and the number.
AREA_ADVICE = {
    "backup_policy": "fix the backup job or bucket settings named in the message, then re-run the backup policy checks",
    "restore_drill": "repair the restore path named in the message and repeat the restore drill before cut-over",
    "migration_gates": "fix or revert the migration named in the message; do not deploy until the gate passes",
    "config_safety": "fix the config API behaviour named in the message; do not deploy until the gate passes",
}
DEFAULT_ADVICE = "investigate the failure named in the message and re-run the drill"
SETUP_ADVICE = "the drill could not run this check: fix the setup the message names, then re-run the drill"

# What to do when a measured figure misses its objective, keyed by the measure's name (the longest that fits).
MEASURE_ADVICE = {
    "rpo": "increase pg_dump frequency or check the backup cron",
    "rpo postgresql": "increase pg_dump frequency or check the backup cron",
    "rpo redis": "take Redis RDB copies more often or check the copy job and the server's save schedule",
    "rto": "restore with more pg_restore jobs, a restore-tuned server or a smaller dump; shorten the slowest phase",
    "rto projected": "the restore would miss the RTO at production's size: restore with more pg_restore jobs and "
    "faster storage, split the database, or restore from a physical base backup instead of a dump",
}
CONSEQUENCE = "NO-GO: "
"""How a scenario that only restates the other failures (the cut-over decision) begins its message."""


def _measure_item(measure: Measure, phases: dict[str, float]) -> ActionItem:
    name = measure.name.lower()  # a database's "RPO orders" takes the RPO's advice
    todo = MEASURE_ADVICE.get(name) or MEASURE_ADVICE.get(
        name.split()[0], f"bring {measure.name} back within its objective"
    )
    if measure.name.lower() == "rto" and phases:
        slowest, seconds = max(phases.items(), key=lambda item: item[1])
        todo += f" ({slowest} took {format_number(seconds)} s)"
    return ActionItem(what=measure.name, number=measure.excess(), todo=todo, cause=f"measure:{measure.name}")


def _check_item(check: Check) -> ActionItem:
    return ActionItem(
        what=f"{check.feature}: {check.scenario}",
        number=check.message or "failed without a message",
        todo=SETUP_ADVICE if check.kind == "setup" else AREA_ADVICE.get(check.area, DEFAULT_ADVICE),
        cause=f"check:{check.feature}: {check.scenario}",
    )


def _missed_in(message: str, missed: list[Measure]) -> Measure | None:
    """The missed measure a failure message reports (the longest name first: ``RPO Redis`` before ``RPO``)."""
    for measure in sorted(missed, key=lambda m: len(m.name), reverse=True):
        if re.search(rf"(?<!\w){re.escape(measure.name)}(?!\w)", message):
            return measure
    return None


def action_items(checks: list[Check], measures: list[Measure], phases: dict[str, float]) -> list[ActionItem]:
    """One item per cause: each missed objective, and each failed check that is not one of their symptoms.

    A failed check whose message reports a missed objective is that objective's symptom: it is named in the
    objective's item, not given an item advising another remedy. A check that restates the verdict
    (``NO-GO: …``) has an item only if nothing else does.
    """
    missed = [measure for measure in measures if not measure.met]
    items = {f"measure:{m.name}": _measure_item(m, phases) for m in missed}
    symptoms: dict[str, list[str]] = {cause: [] for cause in items}
    consequences = []
    for check in (c for c in checks if c.status == "failed"):
        measure = _missed_in(check.message, missed) if check.kind == "check" else None
        if check.message.startswith(CONSEQUENCE):
            consequences.append(check)
        elif measure is not None:
            symptoms[f"measure:{measure.name}"].append(check.scenario)
        else:
            item = _check_item(check)
            items.setdefault(item.cause, item)
    if not items:
        items = {item.cause: item for item in map(_check_item, consequences)}
    for cause, scenarios in symptoms.items():
        if scenarios:
            item = items[cause]
            items[cause] = item.model_copy(update={"number": f"{item.number} (failed: {'; '.join(scenarios)})"})
    return sorted(items.values(), key=lambda item: not item.cause.startswith("check:"))  # checks, then objectives


def assign(items: list[ActionItem], owner: str, due: date) -> list[ActionItem]:
    """Every item given an owner and a due date, one per cause (a later item of a known cause is dropped)."""
    seen: set[str] = set()
    assigned = []
    for item in items:
        cause = item.cause or f"note:{item.what}: {item.todo}"
        if cause in seen:
            continue
        seen.add(cause)
        assigned.append(item.model_copy(update={"cause": cause, "owner": item.owner or owner, "due": item.due or due}))
    return assigned


def _status_now(
    cause: str, checks: list[Check], measures: list[Measure], open_causes: set[str], untested: Collection[str]
) -> FollowUpStatus:
    """Whether a previous cause is closed, still open, or was not re-tested by this drill."""
    kind, _, name = cause.partition(":")
    if kind == "note" and any(name.startswith(f"{what}: ") for what in untested):
        return "not re-tested"
    if kind == "measure":
        measure = next((m for m in measures if m.name == name), None)
        return "not re-tested" if measure is None else ("closed" if measure.met else "open")
    if kind == "check":
        check = next((c for c in checks if f"{c.feature}: {c.scenario}" == name), None)
        if check is None or check.status not in RAN:
            return "not re-tested"
        return "open" if cause in open_causes or check.status == "failed" else "closed"
    return "open" if cause in open_causes else "closed"


def follow_up(
    previous: DrillRecord | None,
    items: list[ActionItem],
    checks: list[Check],
    measures: list[Measure],
    untested: Collection[str] = (),
) -> list[FollowUp]:
    """The previous drill's action items, each closed, still open or not re-tested by this drill's results.

    A measure's item is closed when the measure is within its objective now; a check's when its scenario
    passed now; any other item when this drill raised no item of the same cause, unless this drill could not
    look at what the item is about (``untested``: e.g. owners and grants on a shared staging server): silence
    there is not a fix.
    """
    if previous is None:
        return []
    open_causes = {item.cause for item in items}
    return [
        FollowUp(cause=cause, item=item.line(), since=previous.run_id,
                 status=_status_now(cause, checks, measures, open_causes, untested))
        for item in previous.action_items
        for cause in [item.cause or _legacy_cause(item)]
    ]  # fmt: skip


def _legacy_cause(item: ActionItem) -> str:
    """The cause of an item written before items carried one: a measure's name, else a scenario's title."""
    if item.what.lower() in MEASURE_ADVICE:
        return f"measure:{item.what}"
    return f"check:{item.what}" if ": " in item.what and item.number else f"note:{item.what}: {item.todo}"


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
