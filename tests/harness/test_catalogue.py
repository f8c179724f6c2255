"""The backup catalogue against moto: pagination at 10,000 objects, pairing, and one-line storage errors."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from harness.errors import CheckFailed, HarnessError
from harness.services.s3 import MotoS3, S3Endpoint
from harness.storage.catalogue import fetch_manifest, list_backups
from harness.storage.manifest import BackupManifest, format_timestamp
from harness.storage.signing import ManifestTrust
from tests.ports import closed_port

PREFIX = "postgres/logical/"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _key(moment: datetime) -> str:
    return f"{PREFIX}codeblack-{format_timestamp(moment)}.dump"


@pytest.fixture(name="bucket")
def bucket_fixture(s3_server: Any) -> Iterator[tuple[Any, str]]:
    """A fresh bucket on the session's moto, emptied and removed afterwards (shared by the policy tests)."""
    client = s3_server.client()
    name = f"cat-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    yield client, name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=name)


def _put_many(s3_server: Any, bucket: str, keys: list[str]) -> None:
    """Unsigned PUTs straight to moto (which does not check auth): about twice boto3's rate."""
    with httpx.Client(base_url=s3_server.endpoint.url, timeout=10) as http, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: http.put(f"/{bucket}/{key}", content=b"x").raise_for_status(), keys))


def test_listing_follows_every_page(bucket: tuple[Any, str], s3_server: Any) -> None:
    client, name = bucket
    keys = [_key(T0 + timedelta(hours=i)) for i in range(50)]
    _put_many(s3_server, name, keys[::-1])
    catalogue = list_backups(client, name, PREFIX, page_size=7)
    assert [obj.key for obj in catalogue.objects] == keys


@pytest.mark.slow
def test_ten_thousand_objects_are_all_listed_in_order(bucket: tuple[Any, str], s3_server: Any) -> None:
    # Slow only because moto takes ~3 ms per PUT to fill the bucket (about 30 s). How fast the listing is
    # belongs to bench/run.py (``listing``: the catalogue beside the bare requests), not to an assertion that
    # a busy machine breaks.
    client, name = bucket
    keys = [_key(T0 + timedelta(minutes=i)) for i in range(10_000)]
    _put_many(s3_server, name, keys[::-1])
    catalogue = list_backups(client, name, PREFIX)
    assert [obj.key for obj in catalogue.objects] == keys
    assert [obj.taken_at for obj in catalogue.objects] == [T0 + timedelta(minutes=i) for i in range(10_000)]
    assert {(obj.size, obj.etag) for obj in catalogue.objects} == {(1, hashlib.md5(b"x").hexdigest())}
    assert catalogue.newest().key == keys[-1]


def test_manifests_and_companions_are_paired(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    old, new = _key(T0), _key(T0 + timedelta(hours=6))
    for key in (new, old, old + ".manifest.json"):
        client.put_object(Bucket=name, Key=key, Body=b"abc")
    catalogue = list_backups(client, name, PREFIX)
    assert [obj.key for obj in catalogue.objects] == [old, new]
    assert catalogue.objects[0].taken_at == T0
    assert (catalogue.objects[0].size, catalogue.objects[0].etag) == (3, hashlib.md5(b"abc").hexdigest())
    assert catalogue.manifest_for(catalogue.objects[0]) == old + ".manifest.json"
    assert catalogue.manifest_for(catalogue.newest()) is None
    assert catalogue.timeline()[1] == {"key": new, "taken_at": "2026-01-01T06:00:00+00:00", "size": 3,
                                       "manifest": False}  # fmt: skip


def test_base_backup_files_are_companions_of_base_tar(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    folder = f"postgres/base/daily/{format_timestamp(T0)}/"
    for file in ("base.tar.gz", "pg_wal.tar.gz", "backup_manifest", "base.tar.gz.manifest.json"):
        client.put_object(Bucket=name, Key=folder + file, Body=b"x")
    catalogue = list_backups(client, name, "postgres/base/daily/", suffix="base.tar.gz")
    (obj,) = catalogue.objects
    assert obj.key == folder + "base.tar.gz"
    assert catalogue.companion(obj, "pg_wal.tar.gz") == folder + "pg_wal.tar.gz"
    assert catalogue.companion(obj, "nothing") is None
    assert catalogue.manifest_for(obj) == folder + "base.tar.gz.manifest.json"


def test_an_unparseable_key_is_refused_naming_it(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    client.put_object(Bucket=name, Key=_key(T0), Body=b"x")
    client.put_object(Bucket=name, Key=f"{PREFIX}codeblack-latest.dump", Body=b"x")
    with pytest.raises(HarnessError) as caught:
        list_backups(client, name, PREFIX)
    assert str(caught.value) == (
        f"s3://{name}/{PREFIX}: 1 key(s) carry no timestamp matching storage.timestamp_pattern "
        "'(?P<ts>\\\\d{8}T\\\\d{6}Z)' / timestamp_format '%Y%m%dT%H%M%SZ', "
        "first 'postgres/logical/codeblack-latest.dump'; "
        "fix the pattern or move the objects"
    )
    lenient = list_backups(client, name, PREFIX, strict=False)
    assert lenient.unparsed == (f"{PREFIX}codeblack-latest.dump",)
    assert len(lenient.objects) == 1


def test_an_empty_prefix_says_no_backups(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    with pytest.raises(HarnessError, match=rf"^no backups under s3://{name}/{PREFIX}$"):
        list_backups(client, name, PREFIX)


def test_a_missing_bucket_is_named(s3_server: Any) -> None:
    with pytest.raises(HarnessError) as caught:
        list_backups(s3_server.client(), "no-such-bucket", PREFIX)
    assert str(caught.value) == (
        f"s3://no-such-bucket/{PREFIX}: the bucket does not exist at {s3_server.endpoint.url}; check "
        "storage.backup_bucket and storage.uploads_bucket in drill.toml"
    )


def test_an_unreachable_endpoint_is_named() -> None:
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}"
        endpoint = S3Endpoint(url, "us-east-1", SecretStr("k"), SecretStr("s"))
        with pytest.raises(HarnessError) as caught:
            list_backups(endpoint.client(max_attempts=1, timeout=2), "b", PREFIX)
    assert str(caught.value) == (
        f"s3://b/{PREFIX}: cannot reach object storage at {url} (connection refused or no route); "
        "check storage.endpoint_url in drill.toml"
    )


@pytest.fixture(scope="module")
def authenticating_s3() -> Iterator[MotoS3]:
    """A separate moto that checks credentials (switching auth on for the shared one would break others)."""
    with MotoS3.start() as server:
        httpx.post(f"{server.endpoint.url}/moto-api/reset-auth", content=b"0", timeout=5)
        yield server


def test_wrong_credentials_fail_in_one_line_without_the_key(authenticating_s3: MotoS3) -> None:
    endpoint = S3Endpoint(authenticating_s3.endpoint.url, "us-east-1", SecretStr("AKIAWRONGKEY0001"), SecretStr("x"))
    with pytest.raises(HarnessError) as caught:
        list_backups(endpoint.client(max_attempts=1), "codeblack-backups", PREFIX)
    message = str(caught.value)
    assert message == (
        f"s3://codeblack-backups/{PREFIX}: object storage at {endpoint.url} refused the credentials "
        "(InvalidAccessKeyId); check the variables named by storage.access_key_env and storage.secret_key_env"
    )
    assert "AKIAWRONGKEY0001" not in message


def test_fetch_manifest_parses_or_names_the_key(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    key = _key(T0)
    manifest = BackupManifest(kind="logical", key=key, taken_at=T0, format="custom", sha256="0" * 64, size=1)
    client.put_object(Bucket=name, Key=key + ".manifest.json", Body=manifest.to_json())
    assert fetch_manifest(client, name, key) == manifest
    client.put_object(Bucket=name, Key=key + ".manifest.json", Body=b'{"kind": "logical"}')
    with pytest.raises(HarnessError, match=rf"^s3://{name}/{key}.manifest.json: malformed manifest: key: "):
        fetch_manifest(client, name, key)
    with pytest.raises(HarnessError, match=rf"^s3://{name}/{PREFIX}other.dump.manifest.json: no such object$"):
        fetch_manifest(client, name, f"{PREFIX}other.dump")


class _EndlessBody:
    """A body that never ends, whatever length its response declared (as a lying endpoint's would)."""

    def read(self, amount: int) -> bytes:
        return b"{" + b" " * (amount - 1)

    def close(self) -> None:
        pass


class _LyingClient:
    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": _EndlessBody(), "ContentLength": 10}


def test_a_manifest_is_read_no_further_than_its_cap_whatever_length_it_declares() -> None:
    with pytest.raises(CheckFailed, match=r"^s3://b/k\.dump\.manifest\.json: manifest is at least 101 bytes, over "
                                          r"storage\.max_manifest_bytes = 100; not read$"):  # fmt: skip
        fetch_manifest(_LyingClient(), "b", "k.dump", ManifestTrust(max_bytes=100))
