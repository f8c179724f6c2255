"""The RTO projected to production's size: basis, scaling of the data phases only, and where the size comes from."""

from __future__ import annotations

import pytest

from harness.config import Objectives
from harness.measure.projection import ProductionSize, combined_size, production_size, project_rto

MB = 1024**2


def test_a_declared_size_wins_over_the_manifest_and_none_is_unknown() -> None:
    assert production_size(2048, 5 * MB) == ProductionSize(2048 * 1024**3, "[database] production_size_gb")
    assert production_size(0, 5 * MB) == ProductionSize(5 * MB, "pg_database_size in the dump's manifest")
    assert production_size(0, None) is None
    assert production_size(0, 0) is None


def test_only_the_phases_that_grow_with_the_data_are_scaled() -> None:
    phases = {"download": 1.0, "provision": 30.0, "restore": 2.0, "checks": 1.0, "app start": 20.0}
    measure = project_rto(1.0, phases, 10 * MB, ProductionSize(100 * MB, "declared"), Objectives(rto_minutes=60))
    # 4 s of data phases grow 10x: 36 s more than the minute measured; provisioning and app start stay.
    assert measure.name == "RTO projected"
    assert measure.value == pytest.approx(1.0 + 36 / 60)
    assert measure.met
    assert measure.detail == (
        "production 100 MB (declared) / restored 10 MB = x10; download 1 s + restore 2 s + checks 1 s scaled by "
        "it, the other phases as measured (RTO 1 min at the drill's size; linear projection)"
    )


def test_a_two_terabyte_production_misses_an_rto_the_small_drill_met() -> None:
    phases = {"download": 0.1, "restore": 0.7, "checks": 0.1}
    measure = project_rto(0.2, phases, 12 * MB, ProductionSize(2 * 1024**4, "declared"), Objectives(rto_minutes=60))
    assert not measure.met
    assert measure.describe().startswith("RTO projected ")
    assert "(objective 60 min, MISSED): production 2 TB (declared) / restored 12 MB = x174762.67;" in measure.describe()


def test_a_production_smaller_than_the_restored_copy_keeps_the_measured_rto() -> None:
    measure = project_rto(3.0, {"restore": 60.0}, 100 * MB, ProductionSize(MB, "declared"), Objectives())
    assert measure.value == 3.0
    assert "= x1;" in measure.detail


def test_several_databases_are_projected_by_the_sum_of_their_sizes_each_named() -> None:
    sizes = {"orders": ProductionSize(100 * MB, "pg_database_size in the dump's manifest"),
             "catalog": ProductionSize(2 * 1024**4, "[[databases]] catalog production_size_gb")}  # fmt: skip
    both = combined_size(sizes)
    assert both.bytes == 100 * MB + 2 * 1024**4
    assert both.basis == ("2 databases: orders 100 MB (pg_database_size in the dump's manifest); catalog 2 TB "
                          "([[databases]] catalog production_size_gb)")  # fmt: skip
    assert combined_size({"orders": sizes["orders"]}) == sizes["orders"]  # the one [database]
    assert combined_size({"orders": sizes["orders"]}, of=2).basis == (
        "1 of 2 databases: orders 100 MB (pg_database_size in the dump's manifest)"  # a pytest-xdist worker's share
    )
    measure = project_rto(0.2, {"restore": 0.7}, 20 * MB, both, Objectives(rto_minutes=60))
    assert not measure.met  # the small first database alone would have met it
    assert project_rto(0.2, {"restore": 0.7}, 10 * MB, sizes["orders"], Objectives(rto_minutes=60)).met
