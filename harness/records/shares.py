"""A drill spread over worker processes (pytest-xdist): each worker's share of the recorder, merged into one.

Each worker runs the scenarios of some databases and learns what a single process would learn about them; it
ships its :class:`DrillRecorder` (as JSON: nothing beyond what the record itself holds) and the controlling
process merges the shares into one recorder, from which it builds the one record and verdict exactly as a
single process does. Three things only the merge can decide: a worker that crashed took its evidence with it,
so its scenarios are failed, never counted as passed; the recovery ends with the last database verified on
any worker, so RTO is the slowest worker's (their clocks start at the same incident); and cut-over, which a
worker judged on its own share only (and left to the merge when that share was GO), is decided on every worker's
checks and measures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pydantic import TypeAdapter

from harness.measure.cutover import cut_over_verdict
from harness.records.record import RAN, Check
from harness.records.recorder import DrillRecorder, replaced_entry

__all__ = ["Shares", "dump_share", "load_share"]

_ADAPTER = TypeAdapter(DrillRecorder)
_LOCAL = {"written", "path", "error"}  # the controller's own: a worker writes no record
_NOT_RUN = Check(scenario="", feature="", status="skipped")


def dump_share(recorder: DrillRecorder) -> str:
    """A worker's recorder as JSON, for the controller."""
    return _ADAPTER.dump_json(recorder, exclude=_LOCAL).decode()


def load_share(text: str) -> DrillRecorder:
    """A worker's recorder from :func:`dump_share`'s JSON."""
    return _ADAPTER.validate_json(text)


_T = TypeVar("_T")


def _unique(items: Iterable[_T]) -> list[_T]:
    kept: list[_T] = []
    for item in items:
        if item not in kept:
            kept.append(item)
    return kept


@dataclass
class Shares:
    """The controller's merge of the workers' shares into :attr:`recorder`, and who did what.

    Attributes:
        recorder: the merged recorder (the controller's own, which collected nothing itself).
        workers: the workers whose shares were merged.
        ran_on: scenario node id → the worker that reported it.
        crashed: worker → why it went down without a share.
        crash_items: scenario node id → the worker that crashed while running it.
        measured_by: measure name → the worker that measured it.
        verified_on: database → the worker that verified its copy.
    """

    recorder: DrillRecorder
    workers: list[str] = field(default_factory=list)
    ran_on: dict[str, str] = field(default_factory=dict)
    crashed: dict[str, str] = field(default_factory=dict)
    crash_items: dict[str, str] = field(default_factory=dict)
    measured_by: dict[str, str] = field(default_factory=dict)
    verified_on: dict[str, str] = field(default_factory=dict)

    def merge(self, share: DrillRecorder, worker: str) -> None:
        """Add one worker's share: what it ran, measured, restored and verified."""
        into = self.recorder
        self.workers.append(worker)
        into.started_at = min(into.started_at, share.started_at)
        for nodeid, check in share.checks.items():  # every worker collected every scenario; one ran it
            mine = into.checks.get(nodeid)
            if mine is None or (check.status in RAN and mine.status not in RAN):
                into.checks[nodeid] = check
        if share.backup is not None:  # the first database's worker
            into.backup, into.restored_rows = share.backup, share.restored_rows
            into.manifests_authenticated = share.manifests_authenticated
        into.database_rows.update(share.database_rows)
        for restored in share.restored:
            into.restored = replaced_entry(into.restored, restored)
        for server in share.staging:
            into.staging_server(server)
        for measure in share.measures:
            into.measures = [m for m in into.measures if m.name != measure.name] + [measure]
            self.measured_by[measure.name] = worker
        for phase, seconds in share.rto_phases.items():  # phases timed on several workers add up, as on threads
            into.rto_phases[phase] = round(into.rto_phases.get(phase, 0.0) + seconds, 3)
        into.rto_timeline = sorted([*into.rto_timeline, *share.rto_timeline], key=lambda phase: phase.start_s)
        into.env.update(share.env)
        into.extra_items = _unique([*into.extra_items, *share.extra_items])
        into.untested |= share.untested
        into.waivers = _unique([*into.waivers, *share.waivers])
        for database, at in share.verified.items():
            into.verified[database] = at
            self.verified_on[database] = worker
        into.cut_over = share.cut_over or into.cut_over

    def lost(self, worker: str, why: str) -> None:
        """A worker went down without its share (killed, crashed): remember it until :meth:`settle`.

        One interrupted after it handed its share in (Ctrl-C) lost nothing.
        """
        if worker not in self.workers:
            self.crashed.setdefault(worker, why)

    def settle(self, incident: datetime, objectives: Sequence[str]) -> str | None:
        """Once every worker is down: fail what crashed workers held, end RTO with the last database verified.

        Then decide cut-over on every worker's checks and measures (``objectives``: every database's RPO and the
        RTO): a worker only judged its own share, and left the decision here when that share was GO. Returns
        the status this gave the cut-over scenario (``"passed"`` or ``"failed"``), ``None`` when it is as the
        worker left it (failed on its own share, or not run).
        """
        for nodeid, worker in self.crash_items.items():  # failed, even if a replacement worker ran it again
            self._fail(
                nodeid, f"worker {worker} crashed while running this scenario ({self.crashed.get(worker, 'went down')})"
            )
        for nodeid, worker in self.ran_on.items():
            if worker in self.crashed and self.recorder.checks.get(nodeid, _NOT_RUN).status not in RAN:
                self._fail(nodeid, f"worker {worker} crashed ({self.crashed[worker]}) after this scenario: its "
                                   "evidence and measures were lost with it")  # fmt: skip
        self._slowest_recovery(incident)
        return self._cut_over(objectives)

    def _cut_over(self, objectives: Sequence[str]) -> str | None:
        """The cut-over scenario's outcome on every share, where its worker passed it or left it to the merge."""
        checks = self.recorder.checks
        judged = checks.get(self.recorder.cut_over)
        if judged is None or judged.status not in ("passed", "skipped"):
            return None
        others = [check for nodeid, check in checks.items() if nodeid != self.recorder.cut_over]
        verdict = cut_over_verdict(others, self.recorder.measures, objectives=objectives)
        if verdict.decision == "GO":
            decided = {"status": "passed", "kind": "check", "message": ""}
        else:
            decided = {"status": "failed", "kind": "check", "message": "NO-GO: " + "; ".join(verdict.reasons)}
        if judged.status == decided["status"]:
            return None
        checks[self.recorder.cut_over] = judged.model_copy(update=decided)
        return decided["status"]

    def _fail(self, nodeid: str, message: str) -> None:
        check = self.recorder.checks.get(nodeid, Check(scenario=nodeid, feature="", status="skipped"))
        self.recorder.checks[nodeid] = check.model_copy(
            update={"status": "failed", "kind": "setup", "message": message}
        )

    def _slowest_recovery(self, incident: datetime) -> None:
        """RTO up to the last database verified on any worker; its detail names the worker and database."""
        recorder = self.recorder
        rto = next((m for m in recorder.measures if m.name == "RTO"), None)
        if rto is None or not recorder.verified or len(self.workers) < 2:
            return
        database, at = max(recorder.verified.items(), key=lambda entry: entry[1])
        minutes = (at - incident).total_seconds() / 60
        if minutes <= rto.value:
            by = f"set on worker {self.measured_by['RTO']}, which ran the RTO scenario"
            value = rto.value
        else:
            by = f"set by database {database}, verified on worker {self.verified_on[database]}"
            value = minutes
        detail = f"the slowest of {len(self.workers)} workers ({by}); {rto.detail}"
        recorder.measure("RTO", value, rto.objective, rto.unit, detail)
