"""Bucket versioning, noncurrent-version lifecycle rules and the deleted-object canary against moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.errors import CheckFailed, HarnessError
from harness.policy.buckets import (
    CANARY_PREFIX,
    check_canary_recovery,
    check_noncurrent_retention,
    check_versioning,
)
from tests.harness.test_catalogue import bucket_fixture  # noqa: F401 - the bucket fixture


def _rule(rule_id: str, days: int) -> dict[str, Any]:
    return {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": days}}  # fmt: skip


@pytest.fixture
def versioned(bucket: tuple[Any, str]) -> Iterator[tuple[Any, str]]:
    client, name = bucket
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield bucket
    listed = client.list_object_versions(Bucket=name)
    for entry in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
        client.delete_object(Bucket=name, Key=entry["Key"], VersionId=entry["VersionId"])


def test_enabled_versioning_and_a_30_day_rule_pass(versioned: tuple[Any, str]) -> None:
    client, name = versioned
    client.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [_rule("keep", 30)]})
    assert check_versioning(client, name).measured == "Enabled"
    assert check_noncurrent_retention(client, name, 30, require_rule=True).measured == 30


def test_suspended_or_never_enabled_versioning_fails(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    with pytest.raises(CheckFailed) as caught:
        check_versioning(client, name)
    assert str(caught.value) == (
        f"bucket {name}: versioning is never enabled; the plan requires Enabled so deleted objects can be recovered"
    )
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    with pytest.raises(CheckFailed) as caught:
        check_versioning(client, name)
    assert str(caught.value) == (
        f"bucket {name}: versioning is Suspended; the plan requires Enabled so deleted objects can be recovered"
    )


def test_a_seven_day_noncurrent_rule_fails(versioned: tuple[Any, str]) -> None:
    client, name = versioned
    rules = [_rule("keep", 30), _rule("tmp-cleanup", 7)]
    client.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    with pytest.raises(CheckFailed) as caught:
        check_noncurrent_retention(client, name, 30)
    assert str(caught.value) == (
        f"bucket {name}: lifecycle rule 'tmp-cleanup' expires noncurrent versions after 7 days, sooner than the 30 "
        "days deleted objects must be kept (objectives.noncurrent_days)"
    )


def test_no_rule_keeps_versions_forever_unless_a_rule_is_required(versioned: tuple[Any, str]) -> None:
    client, name = versioned
    assert check_noncurrent_retention(client, name, 30).measured == "forever"
    with pytest.raises(CheckFailed) as caught:
        check_noncurrent_retention(client, name, 30, require_rule=True)
    assert str(caught.value) == (
        f"bucket {name}: no enabled lifecycle rule keeps noncurrent versions 30 days (NoncurrentVersionExpiration, "
        "objectives.noncurrent_days); 0 rule(s) found"
    )


def test_the_canary_recovers_and_leaves_nothing_behind(versioned: tuple[Any, str]) -> None:
    client, name = versioned
    evidence = check_canary_recovery(client, name)
    assert evidence.measured == "recovered"
    assert client.list_object_versions(Bucket=name, Prefix=CANARY_PREFIX).get("Versions", []) == []
    assert client.list_object_versions(Bucket=name, Prefix=CANARY_PREFIX).get("DeleteMarkers", []) == []


def test_the_canary_fails_without_versioning(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    with pytest.raises(CheckFailed, match=rf"^bucket {name}: canary {CANARY_PREFIX}\S+ got no version id; "):
        check_canary_recovery(client, name)
    assert client.list_objects_v2(Bucket=name).get("KeyCount") == 0


def test_a_missing_bucket_is_a_setup_error(s3_server: Any) -> None:
    with pytest.raises(HarnessError, match=r"^s3://no-such-bucket-here: the bucket does not exist at "):
        check_versioning(s3_server.client(), "no-such-bucket-here")
