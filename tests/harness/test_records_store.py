"""Signed drill records kept in write-once storage (moto S3 with Object Lock), and each tampering named.

Every test forges what someone with write access to the drill machine could do, with the harness's own
functions where that is the strongest forgery, and runs ``codeblack-drills records verify`` on it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from harness.cli import main
from harness.config import load_config
from harness.errors import HarnessError
from harness.records import append_record, write_verdict_result
from harness.records.chain import record_files
from harness.records.record import content_hash
from harness.records.store import RecordStore
from harness.services.s3 import MotoS3
from harness.storage.signing import ManifestSigner
from tests.harness.test_records import make_record

SEED = "ZHJpbGwgcmVjb3JkcyB0ZXN0IHNpZ25pbmcgc2VlZCE="  # base64 of 32 bytes: a test key, not a secret
PREFIX = "drill-records/"


@pytest.fixture(name="site")
def site_fixture(tmp_path: Path, s3_server: MotoS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Three signed records of three runs with their Allure results, each kept in an Object Lock bucket."""
    bucket = f"records-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    signer = ManifestSigner(SEED)
    config = tmp_path / "drill.toml"
    config.write_text(
        f'[target]\nsandbox = false\n[storage]\nendpoint_url = "{s3_server.endpoint.url}"\n'
        'access_key_env = "T_S3_KEY"\nsecret_key_env = "T_S3_SECRET"\n'
        f'[reports]\ndir = "{tmp_path / "reports"}"\nverify_key = "{signer.public_key_b64()}"\n'
        f'storage_bucket = "{bucket}"\nstorage_prefix = "{PREFIX}"\nretention_days = 1\n'
    )
    monkeypatch.setenv("T_S3_KEY", s3_server.endpoint.access_key.get_secret_value())
    monkeypatch.setenv("T_S3_SECRET", s3_server.endpoint.secret_key.get_secret_value())
    store = RecordStore.from_config(load_config(config), client)
    assert store is not None
    drills = tmp_path / "reports" / "drills"
    for day in range(3):
        results = tmp_path / "reports" / "runs" / f"run{day}" / "allure-results"
        results.mkdir(parents=True)
        (results / f"{day}-result.json").write_text(json.dumps({"name": "The newest dump restores", "day": day}))
        _, path = append_record(drills, make_record(day, rpo=1.0 + day, rto=10.0 + 5 * day), signer=signer,
                                results=results)  # fmt: skip
        assert "(Object Lock, compliance mode)" in store.keep(
            [p for p in record_files(drills) if p.name.startswith(path.stem)]
        )
    return {"config": config, "drills": drills, "chain": sorted(drills.glob("drill-*.json")), "store": store,
            "client": client, "bucket": bucket}  # fmt: skip


def verify(site: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``codeblack-drills --config <site> records verify``: exit code, stdout, stderr."""
    try:
        main(["--config", str(site["config"]), "records", "verify"])
        code = 0
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_signed_records_matching_their_stored_copy_verify(site: dict[str, Any], capsys: Any) -> None:
    assert verify(site, capsys) == (
        0, f"stored copy at s3://{site['bucket']}/{PREFIX} matches\ndrill record chain OK: 3 records\n", ""
    )  # fmt: skip


def test_changing_a_number_is_named(site: dict[str, Any], capsys: Any) -> None:
    oldest = site["chain"][0]
    oldest.write_text(oldest.read_text().replace('"value": 1.0', '"value": 0.5', 1))
    assert verify(site, capsys) == (
        1, "", f"check failed: {oldest}: altered (its content no longer matches its hash)\n"
    )  # fmt: skip


def test_deleting_the_newest_record_and_rewriting_head_is_named(site: dict[str, Any], capsys: Any) -> None:
    *kept, newest = site["chain"]
    newest.unlink()
    newest.with_suffix(".md").unlink()
    previous = json.loads(kept[-1].read_text())
    (site["drills"] / "HEAD").write_text(f"{kept[-1].name} {previous['hash']}\n")
    assert verify(site, capsys) == (
        1, "", f"check failed: {newest}: missing: removed here, but the stored copy at s3://{site['bucket']}/"
        f"{PREFIX} holds it\n",
    )  # fmt: skip


def reseal(site: dict[str, Any], edit: Callable[[dict[str, Any]], object]) -> Path:
    """Edit the newest record, then seal it and rewrite ``HEAD`` exactly as the harness does; the record's path."""
    newest: Path = site["chain"][-1]
    stored = json.loads(newest.read_text())
    edit(stored)
    stored["hash"] = content_hash(stored)
    newest.write_text(json.dumps(stored, indent=2))
    (site["drills"] / "HEAD").write_text(f"{newest.name} {stored['hash']}\n")
    return newest


def test_editing_the_rto_and_resealing_with_the_harness_is_named(site: dict[str, Any], capsys: Any) -> None:
    def faster(stored: dict[str, Any]) -> None:  # the old signature is kept
        next(m for m in stored["measures"] if m["name"] == "RTO")["value"] = 4.0

    newest = reseal(site, faster)
    key_id = ManifestSigner(SEED).key_id
    assert verify(site, capsys) == (
        1, "", f"check failed: {newest}: re-sealed: its hash matches its content but not its signature by key "
        f"{key_id} (recomputed without the signing key)\n",
    )  # fmt: skip


def test_resealing_without_a_signature_after_signed_records_is_named(site: dict[str, Any], capsys: Any) -> None:
    newest = reseal(site, lambda stored: stored.update(verdict={"decision": "GO", "reasons": []}, signature=None))
    code, _, err = verify(site, capsys)
    assert (code, err) == (1, f"check failed: {newest}: re-sealed: unsigned after signed records (its hash was "
                              "recomputed without the signing key)\n")  # fmt: skip


def test_reordering_records_is_named(site: dict[str, Any], capsys: Any) -> None:
    first, second, _ = site["chain"]
    one, two = first.read_bytes(), second.read_bytes()
    first.write_bytes(two)
    second.write_bytes(one)
    assert verify(site, capsys) == (
        1, "", f"check failed: {first}: the record before it was removed, altered or reordered (previous_hash "
        "does not match)\n",
    )  # fmt: skip


def test_editing_the_chart_is_named(site: dict[str, Any], capsys: Any) -> None:
    chart = site["drills"] / f"{site['chain'][1].stem}-trend.svg"
    chart.write_text(chart.read_text().replace("#d62728", "#1f77b4"))
    assert verify(site, capsys) == (
        1, "", f"check failed: {chart}: altered or removed (its sha256 differs from its JSON record's)\n"
    )  # fmt: skip


def test_editing_an_allure_result_is_named(site: dict[str, Any], capsys: Any) -> None:
    result = site["drills"].parent / "runs" / "run1" / "allure-results" / "1-result.json"
    result.write_text(result.read_text().replace("restores", "restored fine"))
    assert verify(site, capsys) == (
        1, "", f"check failed: {result}: altered or removed (its sha256 differs from the one "
        f"{site['chain'][1].name} lists)\n",
    )  # fmt: skip


def test_a_drill_whose_verdict_left_the_chain_is_named(site: dict[str, Any], capsys: Any) -> None:
    runs = site["drills"].parent / "runs"
    (runs / "run-without-verdict" / "allure-results").mkdir(parents=True)  # a run that decided nothing
    stray = runs / "run-elsewhere" / "allure-results" / "v-result.json"
    stray.parent.mkdir(parents=True)
    write_verdict_result(stray.parent, make_record(7, rpo=7.5)).rename(stray)
    assert verify(site, capsys) == (
        1, "", f"check failed: {stray}: a drill verdict whose record is not in {site['drills']} (written to another "
        "records directory, never written, or removed)\n",
    )  # fmt: skip


def test_records_of_another_target_in_the_directory_are_left_to_their_own_key(
    site: dict[str, Any], capsys: Any
) -> None:
    """A rehearsal's signed records, then an unsigned drill of another target: not a re-sealed record of this one."""
    config: Path = site["config"]
    config.write_text(config.read_text().replace("[target]\n", '[target]\nname = "codeblack-sandbox"\n', 1))
    drills = site["drills"]
    _, library = append_record(drills, make_record(3).model_copy(update={"target": "library"}))
    site["store"].keep([p for p in record_files(drills) if p.name.startswith(library.stem)])
    code, out, err = verify(site, capsys)
    assert (code, out.splitlines()[-1]) == (0, "drill record chain OK: 4 records")
    assert err.splitlines() == [
        f"WARNING: records of other targets in {drills} were not checked against the verify key of "
        "codeblack-sandbox: library (1); verify them with their own drill.toml"
    ]
    _, own = append_record(drills, make_record(4))  # unsigned, of the key's own target: re-sealed as before
    code, _, err = verify(site, capsys)
    assert (code, err.startswith(f"check failed: {own}: re-sealed: unsigned after signed records")) == (1, True)


def test_an_unsigned_chain_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drills = tmp_path / "drills"
    for day in range(2):
        append_record(drills, make_record(day))
    config = tmp_path / "drill.toml"
    config.write_text("[target]\nsandbox = false\n")
    try:
        main(["--config", str(config), "records", "verify", str(drills)])
    except SystemExit as exited:
        pytest.fail(f"records verify exited {exited.code}")
    out, err = capsys.readouterr()
    assert out == "drill record chain OK: 2 records\n"
    assert err.splitlines() == [
        f"WARNING: 2 of 2 drill records in {drills} are unsigned: whoever can write this directory could have "
        "re-sealed them (set [reports] signing_key_env and verify_key)",
        "WARNING: no stored copy to compare with: [reports] storage_prefix is not set",
    ]


def test_a_compliance_locked_copy_cannot_be_deleted_or_replaced(site: dict[str, Any], capsys: Any) -> None:
    client, bucket = site["client"], site["bucket"]
    key = PREFIX + site["chain"][-1].name
    version = client.head_object(Bucket=bucket, Key=key)
    assert (version["ObjectLockMode"], version["ObjectLockRetainUntilDate"] > datetime.now(UTC)) == ("COMPLIANCE", True)
    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # A newer version over it, or a delete marker, leaves the locked first version as the stored copy.
    client.put_object(Bucket=bucket, Key=key, Body=b"{}")
    client.delete_object(Bucket=bucket, Key=PREFIX + site["chain"][0].name)
    locked = client.get_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])["Body"].read()
    assert locked == site["chain"][-1].read_bytes()
    assert verify(site, capsys)[0] == 0


def test_storage_that_cannot_keep_the_record_is_one_line(s3_server: MotoS3, tmp_path: Path) -> None:
    store = RecordStore(s3_server.client(), "no-such-records-bucket", PREFIX, 1)
    (tmp_path / "drill-x.json").write_text("{}")
    with pytest.raises(HarnessError) as failed:
        store.keep([tmp_path / "drill-x.json"])
    assert str(failed.value) == (
        f"s3://no-such-records-bucket/{PREFIX}: cannot read the bucket's Object Lock setting: NoSuchBucket: The "
        "specified bucket does not exist"
    )


def test_a_bucket_without_object_lock_is_kept_but_said_not_write_once(s3_server: MotoS3, tmp_path: Path) -> None:
    client = s3_server.client()
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    _, path = append_record(tmp_path, make_record())
    kept = RecordStore(client, bucket, PREFIX, 1).keep([path])
    assert kept == f"1 files kept at s3://{bucket}/{PREFIX} (NOT write-once: the bucket has no Object Lock)"
