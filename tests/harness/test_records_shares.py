"""Workers' shares of a distributed drill merged into one recorder: what ran, what crashed, RTO and cut-over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from harness.records import Check, DrillRecorder
from harness.records.shares import Shares, dump_share, load_share

INCIDENT = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
CUT_OVER = "features/test_restore_drill.py::test_cutover"
OBJECTIVES = ["RPO orders", "RPO catalog", "RTO"]


def _check(scenario: str, status: str = "skipped") -> Check:
    return Check(scenario=scenario, feature="Monthly restore drill", area="restore_drill", status=status)  # type: ignore[arg-type]


def _collected() -> dict[str, Check]:
    """Every worker collects every scenario: the rows of orders, the rows of catalog, cut-over."""
    return {"rows[orders]": _check("Row counts (database orders)"),
            "rows[catalog]": _check("Row counts (database catalog)"), CUT_OVER: _check("Cut-over")}  # fmt: skip


def _orders_worker(cut_over: str = "skipped") -> DrillRecorder:
    """The first database's worker: its rows, its RPO, RTO, and cut-over left to the merge (its share was GO)."""
    share = DrillRecorder(checks=_collected())
    share.checks["rows[orders]"] = _check("Row counts (database orders)", "passed")
    share.checks[CUT_OVER] = _check("Cut-over", cut_over)
    share.cut_over = CUT_OVER
    share.measure("RPO orders", 1.0, 6, "h")
    share.measure("RTO", 2.0, 60, "min", "stopped at every restored database verified")
    share.database_verified("orders", INCIDENT + timedelta(minutes=1))
    share.phases({"restore": 10.0})
    return share


def _catalog_worker(rpo: float = 2.0, rows: str = "passed", verified_min: float = 5.0) -> DrillRecorder:
    share = DrillRecorder(checks=_collected())
    share.checks["rows[catalog]"] = _check("Row counts (database catalog)", rows)  # type: ignore[arg-type]
    share.measure("RPO catalog", rpo, 6, "h")
    share.database_verified("catalog", INCIDENT + timedelta(minutes=verified_min))
    share.phases({"restore": 20.0})
    return share


def _merged(*shares: tuple[DrillRecorder, str]) -> Shares:
    merged = Shares(DrillRecorder())
    for share, worker in shares:
        merged.merge(load_share(dump_share(share)), worker)  # as shipped: through JSON
    return merged


def test_shares_merge_into_one_recorder_with_every_databases_checks_and_the_slowest_rto() -> None:
    merged = _merged((_orders_worker(), "gw0"), (_catalog_worker(), "gw1"))
    assert merged.settle(INCIDENT, OBJECTIVES) == "passed"  # decided here: the worker's share alone was GO
    recorder = merged.recorder
    assert {nodeid: check.status for nodeid, check in recorder.checks.items()} == {
        "rows[orders]": "passed", "rows[catalog]": "passed", CUT_OVER: "passed"}  # fmt: skip
    assert recorder.rto_phases == {"restore": 30.0}
    rto = next(m for m in recorder.measures if m.name == "RTO")
    assert rto.value == 5.0  # catalog was verified 5 minutes after the incident, after orders' worker stopped
    assert rto.detail == (
        "the slowest of 2 workers (set by database catalog, verified on worker gw1); stopped at every restored "
        "database verified"
    )


def test_cut_over_judged_go_on_one_share_is_no_go_on_every_share() -> None:
    merged = _merged((_orders_worker(), "gw0"), (_catalog_worker(rpo=7.5), "gw1"))
    assert merged.settle(INCIDENT, OBJECTIVES) == "failed"
    cut_over = merged.recorder.checks[CUT_OVER]
    assert (cut_over.status, cut_over.message) == ("failed", "NO-GO: RPO catalog 7.5 h exceeds objective 6 h")


def test_cut_over_a_worker_failed_on_its_own_share_stays_failed_and_one_not_run_is_not_decided() -> None:
    failed = _merged((_orders_worker(cut_over="failed"), "gw0"), (_catalog_worker(), "gw1"))
    assert failed.settle(INCIDENT, OBJECTIVES) is None
    assert failed.recorder.checks[CUT_OVER].status == "failed"
    unrun = _orders_worker()
    unrun.cut_over = ""  # its step never ran (deselected, interrupted): nothing to decide
    merged = _merged((unrun, "gw0"), (_catalog_worker(), "gw1"))
    assert merged.settle(INCIDENT, OBJECTIVES) is None
    assert merged.recorder.checks[CUT_OVER].status == "skipped"


def test_a_crashed_workers_scenario_fails_naming_it_even_when_its_replacement_ran_it_again() -> None:
    merged = _merged((_orders_worker(), "gw0"), (_catalog_worker(), "gw2"))  # gw2 replaced gw1
    merged.lost("gw1", "Not properly terminated")
    merged.crash_items["rows[catalog]"] = "gw1"
    merged.ran_on.update({"rows[orders]": "gw0", "rows[catalog]": "gw2"})
    merged.settle(INCIDENT, OBJECTIVES)
    crashed = merged.recorder.checks["rows[catalog]"]
    assert (crashed.status, crashed.kind, crashed.message) == (
        "failed", "setup", "worker gw1 crashed while running this scenario (Not properly terminated)")  # fmt: skip
    assert merged.recorder.checks[CUT_OVER].status == "failed"


def test_a_scenario_whose_evidence_a_crashed_worker_took_with_it_fails() -> None:
    merged = _merged((_orders_worker(), "gw0"))
    merged.ran_on["rows[catalog]"] = "gw1"  # reported passed, then gw1 died before handing its share in
    merged.lost("gw1", "Not properly terminated")
    merged.settle(INCIDENT, OBJECTIVES)
    lost = merged.recorder.checks["rows[catalog]"]
    assert (lost.status, lost.message) == ("failed", "worker gw1 crashed (Not properly terminated) after this "
                                           "scenario: its evidence and measures were lost with it")  # fmt: skip


def test_a_worker_interrupted_after_handing_its_share_in_lost_nothing() -> None:
    merged = _merged((_orders_worker(), "gw0"), (_catalog_worker(), "gw1"))
    merged.ran_on.update({"rows[orders]": "gw0", "rows[catalog]": "gw1"})
    merged.lost("gw1", "keyboard-interrupt")
    assert merged.crashed == {}
    assert merged.settle(INCIDENT, OBJECTIVES) == "passed"
    assert merged.recorder.checks["rows[catalog]"].status == "passed"
