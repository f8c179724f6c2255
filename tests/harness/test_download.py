"""Streaming download against moto: hashing, parallel ranges, refusals on size/hash, a full disk."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import progress
from harness.errors import CheckFailed, HarnessError
from harness.storage import download
from harness.storage.download import download_object, verify_against
from harness.storage.manifest import BackupManifest

KEY = "postgres/logical/codeblack-20260101T000000Z.dump"


@pytest.fixture
def bucket(s3_server: Any) -> Iterator[tuple[Any, str]]:
    client = s3_server.client()
    name = f"dl-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    yield client, name
    for obj in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)


def _manifest(data: bytes, **changes: Any) -> BackupManifest:
    values = {"kind": "logical", "key": KEY, "taken_at": datetime.now(UTC), "format": "custom",
              "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **changes}  # fmt: skip
    return BackupManifest.model_validate(values)


def test_a_small_object_streams_with_its_hash(bucket: tuple[Any, str], tmp_path: Path) -> None:
    client, name = bucket
    data = os.urandom(300_000)
    client.put_object(Bucket=name, Key=KEY, Body=data)
    got = download_object(client, name, KEY, tmp_path)
    assert (got.size, got.sha256, got.parts) == (len(data), hashlib.sha256(data).hexdigest(), 1)
    assert got.path.read_bytes() == data
    verify_against(got, _manifest(data))


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scaled down: the code path of the 64 MiB threshold, with a 1 MiB threshold and 256 KiB minimum parts."""
    monkeypatch.setattr(download, "PARALLEL_THRESHOLD", 1024 * 1024)
    monkeypatch.setattr(download, "MIN_PART_SIZE", 256 * 1024)


@pytest.mark.usefixtures("small_parts")
def test_a_large_object_comes_in_parallel_ranges(bucket: tuple[Any, str], tmp_path: Path) -> None:
    client, name = bucket
    data = os.urandom(3 * 1024 * 1024 + 17)
    client.put_object(Bucket=name, Key=KEY, Body=data)
    got = download_object(client, name, KEY, tmp_path)
    assert got.parts == download.WORKERS  # one range per worker
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.path.read_bytes() == data


class _FirstRangeShort:
    """An S3 client whose answer to the first range stops after a few bytes, as a dropped connection leaves it."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **request: Any) -> Any:
        response = self._client.get_object(**request)
        if str(request.get("Range", "")).startswith("bytes=0-"):
            response["Body"] = io.BytesIO(response["Body"].read(1000))
        return response


@pytest.mark.usefixtures("small_parts")
@pytest.mark.parametrize("size", [300_000, 3 * 1024 * 1024], ids=["whole", "parallel"])
def test_the_first_bytes_are_handed_over_once_as_soon_as_they_land(
    bucket: tuple[Any, str], tmp_path: Path, size: int
) -> None:
    client, name = bucket
    data = os.urandom(size)
    client.put_object(Bucket=name, Key=KEY, Body=data)
    heads: list[bytes] = []
    download_object(client, name, KEY, tmp_path, on_head=heads.append)
    assert len(heads) == 1
    assert len(heads[0]) >= 4096
    assert data.startswith(heads[0])


@pytest.mark.usefixtures("small_parts")
def test_a_range_that_comes_back_short_fails_the_download_and_the_hash_stops_waiting(
    bucket: tuple[Any, str], tmp_path: Path
) -> None:
    # The hash follows the ranges in file order: it waits on the first range's bytes, which never all land here.
    client, name = bucket
    data = os.urandom(3 * 1024 * 1024)
    client.put_object(Bucket=name, Key=KEY, Body=data)
    part = len(data) // download.WORKERS
    with pytest.raises(CheckFailed, match=rf"^{KEY}: range 0-{part - 1} returned 1000 bytes, not {part}$"):
        download_object(_FirstRangeShort(client), name, KEY, tmp_path)


def test_a_hash_mismatch_is_refused_naming_key_and_both_hashes(bucket: tuple[Any, str], tmp_path: Path) -> None:
    client, name = bucket
    data = b"dump" * 1000
    client.put_object(Bucket=name, Key=KEY, Body=data)
    got = download_object(client, name, KEY, tmp_path)
    with pytest.raises(CheckFailed, match=rf"^{KEY}: sha256 {got.sha256} differs from the manifest's {'0' * 64}$"):
        verify_against(got, _manifest(data, sha256="0" * 64))


def test_a_truncated_object_is_refused_by_size(bucket: tuple[Any, str], tmp_path: Path) -> None:
    client, name = bucket
    data = b"dump" * 1000
    client.put_object(Bucket=name, Key=KEY, Body=data[:1000])
    got = download_object(client, name, KEY, tmp_path)
    with pytest.raises(CheckFailed, match=rf"^{KEY}: size 1000 bytes differs from the manifest's 4000 bytes$"):
        verify_against(got, _manifest(data))


def test_a_full_disk_is_one_line_naming_the_directory(bucket: tuple[Any, str], tmp_path: Path) -> None:
    client, name = bucket
    client.put_object(Bucket=name, Key=KEY, Body=b"x" * 100_000)
    (tmp_path / KEY.rsplit("/", 1)[-1]).symlink_to("/dev/full")  # a real ENOSPC from the kernel
    with pytest.raises(HarnessError, match=rf"^no space left in {tmp_path} while downloading {KEY}"):
        download_object(client, name, KEY, tmp_path)


def test_a_missing_object_is_one_line(bucket: tuple[Any, str], tmp_path: Path) -> None:
    client, name = bucket
    with pytest.raises(HarnessError, match=rf"^cannot read s3://{name}/{KEY}: "):
        download_object(client, name, KEY, tmp_path)


def test_progress_is_logged_with_bytes_rate_and_eta_then_a_final_line(
    bucket: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line per 1 MiB chunk instead of one per 2 s
    client, name = bucket
    data = os.urandom(3 * 1024 * 1024)
    client.put_object(Bucket=name, Key=KEY, Body=data)
    with caplog.at_level(logging.INFO, logger="harness.progress"):
        download_object(client, name, KEY, tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "harness.progress"]
    assert [line.split(", ")[0] for line in lines[:3]] == [
        f"downloading {KEY}: 1.0 MiB of 3.0 MiB (33%)",
        f"downloading {KEY}: 2.0 MiB of 3.0 MiB (67%)",
        f"downloading {KEY}: 3.0 MiB of 3.0 MiB (100%)",
    ]
    assert re.fullmatch(rf"downloading {KEY}: 1\.0 MiB of 3\.0 MiB \(33%\), [\d.]+ [KMG]iB/s, ETA \d+ s", lines[0])
    assert re.fullmatch(rf"downloading {KEY}: done, 3\.0 MiB in [\d.]+ s \([\d.]+ [KMG]iB/s\), 1 part", lines[-1])
    assert len(lines) == 4


def test_progress_lines_are_throttled_and_the_final_line_always_comes(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    with caplog.at_level(logging.INFO, logger="harness.progress"):
        counter = progress.Progress("restoring", 100, unit="items", clock=lambda: now[0])
        for _ in range(10):  # 10 items per 0.5 s: a line at 2 s and at 4 s only
            now[0] += 0.5
            counter.add(10)
        counter.finish()
    assert [r.getMessage() for r in caplog.records] == [
        "restoring: 40 items of 100 items (40%), 20 items/s, ETA 3 s",
        "restoring: 80 items of 100 items (80%), 20 items/s, ETA 1 s",
        "restoring: done, 100 items in 5.0 s (20 items/s)",
    ]
