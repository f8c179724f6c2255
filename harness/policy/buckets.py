"""Object storage policy: deleted objects are kept (versioning, lifecycle) and, where allowed, proved to return.

Where the configuration allows a write, a canary proves a deleted object really comes back.

With versioning Enabled a delete only adds a delete marker; the object's data becomes a noncurrent version
that a lifecycle rule's ``NoncurrentVersionExpiration`` eventually removes. So "retain deleted objects for a
minimum of N days" means: versioning Enabled, and no enabled rule expires noncurrent versions sooner than N
days. For the uploads bucket the plan also wants that retention written down as a rule (``require_rule``);
a bucket with no such rule keeps noncurrent versions forever, which satisfies the minimum.
"""

from __future__ import annotations

import secrets
from typing import Any

from botocore.exceptions import ClientError

from harness.errors import CheckFailed
from harness.policy.evidence import Evidence
from harness.services.base import run_id
from harness.storage.catalogue import storage_errors

__all__ = ["CANARY_PREFIX", "check_canary_recovery", "check_noncurrent_retention", "check_versioning"]

CANARY_PREFIX = "codeblack-drills-canary/"


def check_versioning(client: Any, bucket: str) -> Evidence:
    """The bucket's versioning is ``Enabled`` (not ``Suspended``, not never enabled).

    Raises:
        CheckFailed: names the bucket and its versioning status.
        HarnessError: the bucket cannot be read.
    """
    with storage_errors(client, f"s3://{bucket}"):
        answer = client.get_bucket_versioning(Bucket=bucket)
    status = str(answer.get("Status", "never enabled"))
    if status != "Enabled":
        raise CheckFailed(
            f"bucket {bucket}: versioning is {status}; the plan requires Enabled so deleted objects can be recovered"
        )
    return Evidence("bucket versioning", bucket, status, "Enabled", "", {"Status": status,
                    "MFADelete": answer.get("MFADelete", "Disabled")})  # fmt: skip


def _rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    with storage_errors(client, f"s3://{bucket}"):
        try:
            return list(client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
            return []


def check_noncurrent_retention(client: Any, bucket: str, min_days: int, *, require_rule: bool = False) -> Evidence:
    """No enabled lifecycle rule expires noncurrent versions sooner than ``min_days``.

    With ``require_rule``, at least one enabled rule must state a ``NoncurrentVersionExpiration`` of
    ``min_days`` or more.

    Raises:
        CheckFailed: names the bucket, the offending rule and its days, or says no rule keeps them.
        HarnessError: the bucket cannot be read.
    """
    rules = _rules(client, bucket)
    enabled = [rule for rule in rules if rule.get("Status") == "Enabled"]
    days = {str(rule.get("ID", f"rule {n}")): rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
            for n, rule in enumerate(enabled, 1)}  # fmt: skip
    stated = {name: value for name, value in days.items() if value is not None}
    for name, value in sorted(stated.items(), key=lambda item: item[1]):
        if value < min_days:
            raise CheckFailed(
                f"bucket {bucket}: lifecycle rule {name!r} expires noncurrent versions after {value} days, sooner "
                f"than the {min_days} days deleted objects must be kept (objectives.noncurrent_days)"
            )
    if require_rule and not stated:
        raise CheckFailed(
            f"bucket {bucket}: no enabled lifecycle rule keeps noncurrent versions {min_days} days "
            f"(NoncurrentVersionExpiration, objectives.noncurrent_days); {len(rules)} rule(s) found"
        )
    shortest = min(stated.values(), default=None)
    return Evidence("noncurrent version retention", bucket, shortest if shortest is not None else "forever",
                    min_days, "days", {"Rules": rules})  # fmt: skip


def check_canary_recovery(client: Any, bucket: str) -> Evidence:
    """Write a canary object, delete it, read its previous version back, then remove every trace of it.

    This writes to the bucket: call it only where ``storage.allow_canary_write`` is true.

    Raises:
        CheckFailed: the write got no version id, or the deleted canary could not be read back intact.
        HarnessError: the bucket refuses the write.
    """
    key = f"{CANARY_PREFIX}{run_id()}-{secrets.token_hex(4)}.txt"
    body = secrets.token_bytes(32)
    with storage_errors(client, f"s3://{bucket}/{key}"):
        try:
            version = client.put_object(Bucket=bucket, Key=key, Body=body).get("VersionId")
            if not version or version == "null":
                raise CheckFailed(f"bucket {bucket}: canary {key} got no version id; a delete would lose it")
            marker = client.delete_object(Bucket=bucket, Key=key).get("VersionId")
            try:
                restored = client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "unknown")
                raise CheckFailed(
                    f"bucket {bucket}: deleted canary {key} could not be read back from version {version} ({code})"
                ) from None
            if restored != body:
                raise CheckFailed(f"bucket {bucket}: version {version} of deleted canary {key} has different bytes")
        finally:
            _remove_all_versions(client, bucket, key)
    return Evidence("deleted object recovery", bucket, "recovered", "recovered", "",
                    {"key": key, "version": version, "delete_marker": marker})  # fmt: skip


def _remove_all_versions(client: Any, bucket: str, key: str) -> None:
    listed = client.list_object_versions(Bucket=bucket, Prefix=key)
    for entry in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
        if entry["Key"] == key:
            client.delete_object(Bucket=bucket, Key=key, VersionId=entry["VersionId"])
