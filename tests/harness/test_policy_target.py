"""The deployment's catalogues and the objectives a scenario states, against moto and a real configuration."""

from __future__ import annotations

from typing import Any

import pytest

from harness.config import DrillConfig
from harness.deployment import Deployment
from harness.errors import ConfigError
from harness.policy.target import catalogue_of, stated_objective
from tests.harness.test_catalogue import bucket_fixture  # noqa: F401 - the bucket fixture


def _deployment(s3_server: Any, bucket: str, **objectives: float) -> Deployment:
    config = DrillConfig().with_changes(storage={"backup_bucket": bucket}, objectives=objectives)
    return Deployment("test", config, s3_server.endpoint, None, "db.internal", "")


def test_each_kind_lists_its_prefix(s3_server: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    folder = "postgres/base/weekly/20260111T000000Z/"
    for key in ("postgres/logical/codeblack-20260115T000000Z.dump", folder + "base.tar.gz", folder + "pg_wal.tar.gz"):
        client.put_object(Bucket=name, Key=key, Body=b"x")
    deployment = _deployment(s3_server, name)
    assert catalogue_of(deployment, "logical").newest().key == "postgres/logical/codeblack-20260115T000000Z.dump"
    assert [obj.key for obj in catalogue_of(deployment, "weekly").objects] == [folder + "base.tar.gz"]


def test_a_scenario_number_differing_from_drill_toml_stops_the_scenario(s3_server: Any) -> None:
    deployment = _deployment(s3_server, "unused", dump_interval_hours=4)
    assert stated_objective(deployment, "retention_days", 14) == 14
    with pytest.raises(ConfigError) as caught:
        stated_objective(deployment, "dump_interval_hours", 6)
    assert str(caught.value) == (
        f"{deployment.config.source}: objectives.dump_interval_hours is 4 but the scenario states 6; make the "
        "feature's sentence and drill.toml agree so the report shows the number that was checked"
    )
