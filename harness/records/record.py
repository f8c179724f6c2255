"""The drill record: what one drill did, measured and concluded, in a form both machines and auditors read.

One record per run. It names the backup the drill restored, every scenario's outcome, RPO and RTO against the
objectives with the phase breakdown of RTO, the GO/NO-GO verdict with its reasons, the action items, the
waivers in force and the controls the run evidences. ``previous_hash`` and ``hash`` chain records together
(see :mod:`harness.records.chain`) so an edited or removed record is detected.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.storage.manifest import ManifestSignature

__all__ = [
    "RAN",
    "REHEARSAL",
    "ActionItem",
    "Attribution",
    "BackupUsed",
    "Check",
    "ControlStatus",
    "ControlStatusName",
    "DrillRecord",
    "FollowUp",
    "FollowUpStatus",
    "Measure",
    "ObjectiveChange",
    "ObjectiveValue",
    "Phase",
    "Restored",
    "StagingServer",
    "Verdict",
    "WaiverEntry",
    "canonical_json",
    "content_hash",
    "format_number",
]

CheckStatus = Literal["passed", "failed", "skipped", "not applicable", "deselected"]
"""``skipped``: selected but did not run (a skip, an interrupt); ``not applicable``: the target lacks the part it
checks (``message`` says which setting says so); ``deselected``: left out of this run by ``-m`` or ``-k``."""

RAN = ("passed", "failed")
"""The statuses of a scenario that ran."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackupUsed(_Part):
    """The backup object the drill restored, identified by key and content hash."""

    key: str
    sha256: str
    size: int = Field(ge=0)
    taken_at: datetime


class Restored(_Part):
    """One backup the drill restored (the PostgreSQL dump, the Redis copy, the base backup) and when it was taken."""

    what: str
    key: str
    sha256: str
    size: int = Field(ge=0)
    taken_at: datetime


class StagingServer(_Part):
    """A throwaway server the drill restored into, with the settings in which it differs from production's defaults.

    A staging copy is disposable, so it runs tuned for restore speed (``fsync = off`` …): its restore time is
    faster than a production-grade server's would be, and the record says so beside RTO.
    """

    what: str
    host: str
    port: int
    version: str
    settings: dict[str, str] = Field(default_factory=dict)


class Check(_Part):
    """One scenario's outcome; ``message`` is the failure's one line (empty when it passed).

    ``kind`` tells a broken rule of the plan (``check``) from a drill that could not run (``setup``: bad
    configuration, a server that would not start), because the two call for different actions.
    """

    scenario: str
    feature: str
    area: str = ""
    status: CheckStatus
    kind: Literal["check", "setup"] = "check"
    message: str = ""


class Measure(_Part):
    """A measured figure against its objective (``met`` when the value does not exceed it)."""

    name: str
    value: float
    unit: str
    objective: float
    met: bool
    detail: str = ""

    def figure(self, value: float | None = None) -> str:
        """The value (or another number in the same unit) as people write it: ``7.5 h``."""
        return f"{format_number(self.value if value is None else value)} {self.unit}"

    def against(self) -> str:
        """The value beside its objective: ``1.5 h (objective 6 h)``."""
        return f"{self.figure()} (objective {self.figure(self.objective)})"

    def excess(self) -> str:
        """The value over its objective: ``7.5 h exceeds objective 6 h``."""
        return f"{self.figure()} exceeds objective {self.figure(self.objective)}"


class Verdict(_Part):
    """GO for cut-over only when every check passed and every objective was met."""

    decision: Literal["GO", "NO-GO"]
    reasons: list[str] = Field(default_factory=list)


class ActionItem(_Part):
    """What failed, the number that shows it, what to do about it, who does it and by when.

    ``cause`` identifies the cause across drills (``measure:RPO``, ``check:<feature>: <scenario>``), so that one
    cause yields one item and the next drill can say whether it was closed.
    """

    what: str
    number: str
    todo: str
    cause: str = ""
    owner: str = ""
    due: date | None = None

    def line(self) -> str:
        """The item as one sentence, as printed in the terminal and the Markdown record."""
        return f"{self.what}: {self.number}: {self.todo}" if self.number else f"{self.what}: {self.todo}"

    def assigned(self) -> str:
        """The item with who does it and by when: ``… (owner: ops-carol; due 2026-12-15)``."""
        if self.due is None:
            return self.line()
        return f"{self.line()} (owner: {self.owner or 'unassigned'}; due {self.due.isoformat()})"


FollowUpStatus = Literal["closed", "open", "not re-tested"]


class FollowUp(_Part):
    """A previous drill's action item, re-evaluated against this drill's results."""

    cause: str
    item: str
    status: FollowUpStatus
    since: str = Field(description="the run id of the drill that raised it")


class ObjectiveValue(_Part):
    """An objective the drill was judged against, and where its value came from."""

    name: str
    value: float
    source: str


class ObjectiveChange(_Part):
    """An objective whose value differs from the previous drill's, with its approval when one is configured."""

    name: str
    previous: float
    current: float
    looser: bool
    approved_by: str = ""
    reason: str = ""

    def line(self) -> str:
        """The change as one sentence."""
        change = f"{self.name} changed from {format_number(self.previous)} to {format_number(self.current)}"
        if self.approved_by:
            return f"{change} since the previous drill, approved by {self.approved_by}: {self.reason}"
        return f"{change} since the previous drill without an approval ([[objective_approvals]] in drill.toml)"


class Attribution(_Part):
    """Who ran the drill, where, with which harness and under which configuration."""

    operator: str
    operator_source: str
    host: str
    harness_commit: str
    harness_commit_source: Literal["git", "package version"]
    config_path: str
    config_sha256: str
    objectives: list[ObjectiveValue] = Field(default_factory=list)
    objective_changes: list[ObjectiveChange] = Field(default_factory=list)


class Phase(_Part):
    """One phase of the recovery as offsets in seconds from the incident: phases that ran together overlap."""

    name: str
    start_s: float
    end_s: float

    @property
    def seconds(self) -> float:
        """How long the phase took."""
        return self.end_s - self.start_s


class WaiverEntry(_Part):
    """A gate bypassed on purpose, with who approved it and why."""

    rule: str
    subject: str
    approved_by: str
    reason: str


REHEARSAL: Final = "rehearsal, not evidence"
"""A control's status on a sandbox run: the figures are the harness's own world, never production's."""


ControlStatusName = Literal[
    "evidence collected in this drill", "failed in this drill", "not tested in this drill",
    "rehearsal, not evidence", "effective", "not effective", "not tested",
]  # fmt: skip


class ControlStatus(_Part):
    """A control of a standard and what this drill collected for it.

    One drill is evidence collected, not proof that a control is effective (that is an auditor's judgement over
    a period); ``effective`` and ``not effective`` are the words of records written before that was said.
    """

    control: str
    description: str
    status: ControlStatusName
    evidence: list[str] = Field(default_factory=list)


class DrillRecord(_Part):
    """One drill run, hash-chained to the record before it.

    ``restored_rows`` holds each critical table's row count as restored: a later drill compares its own
    counts with them (see :mod:`harness.integrity.baseline`); in a drill of several databases (``[[databases]]``)
    ``database_rows`` holds them per database, and ``restored_rows`` the first's. ``manifests_authenticated`` says
    whether the restored backup's manifest was verified against ``[storage] manifest_verify_key``; without it, whoever
    can write the bucket could have written the numbers the drill compared with.

    ``sandbox`` marks a rehearsal on the harness's own world: never evidence about production. ``attribution``
    names operator, host, harness commit, configuration and objectives; ``restored`` and ``staging`` every backup
    restored and every server it went into. Records written before these fields existed load with their defaults
    and still verify (the hash is over the stored document).

    ``trend_sha256`` and ``markdown_sha256`` cover the chart and the Markdown twin; ``allure_digest`` names the
    file beside the record that lists the sha256 of each of the run's Allure results, and ``allure_sha256`` is
    that list's own sha256. ``signature`` is an Ed25519 signature over ``hash`` by ``[reports]
    signing_key_env``'s seed, so that a record re-sealed with the harness's own functions is told apart.
    """

    run_id: str
    started_at: datetime
    finished_at: datetime
    target: str
    provider: str
    harness_version: str
    sandbox: bool = False
    attribution: Attribution | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    backup: BackupUsed | None = None
    restored: list[Restored] = Field(default_factory=list)
    staging: list[StagingServer] = Field(default_factory=list)
    restored_rows: dict[str, int] = Field(default_factory=dict)
    database_rows: dict[str, dict[str, int]] = Field(default_factory=dict)
    manifests_authenticated: bool = False
    checks: list[Check] = Field(default_factory=list)
    measures: list[Measure] = Field(default_factory=list)
    rto_phases: dict[str, float] = Field(default_factory=dict)
    rto_timeline: list[Phase] = Field(default_factory=list)
    verdict: Verdict
    action_items: list[ActionItem] = Field(default_factory=list)
    follow_up: list[FollowUp] = Field(default_factory=list)
    waivers: list[WaiverEntry] = Field(default_factory=list)
    controls: list[ControlStatus] = Field(default_factory=list)
    trend_image: str = ""
    trend_sha256: str = ""
    allure_digest: str = ""
    allure_sha256: str = ""
    markdown_sha256: str = ""
    previous_hash: str = ""
    hash: str = ""
    signature: ManifestSignature | None = None

    def measure(self, name: str) -> Measure | None:
        """The measure called ``name`` (case-insensitive), if the drill took it."""
        return next((m for m in self.measures if m.name.lower() == name.lower()), None)

    def compute_hash(self) -> str:
        """The hash of the record as it is written (see :func:`content_hash`)."""
        return content_hash(json.loads(self.model_dump_json()))

    def sealed(self) -> DrillRecord:
        """A copy carrying its own hash."""
        return self.model_copy(update={"hash": self.compute_hash()})


def format_number(value: float) -> str:
    """A number as people write it: ``6`` rather than ``6.0``, at most two decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def canonical_json(data: Any) -> bytes:
    """JSON with sorted keys and no whitespace: the bytes the chain hashes (stable across writers)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(stored: dict[str, Any]) -> str:
    """The sha256 of a stored record's canonical JSON without its ``hash`` and ``signature`` fields.

    It is computed over the document as stored, not as this version of the model would write it, so records
    written before a field was added still verify.
    """
    sealed = {k: v for k, v in stored.items() if k not in ("hash", "signature")}
    return hashlib.sha256(canonical_json(sealed)).hexdigest()
