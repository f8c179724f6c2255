"""The logical and base backups against a real throwaway PostgreSQL and S3, and the streaming uploader."""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness import progress
from harness.backup.base import backup_base
from harness.backup.postgres import DumpOptions, backup_postgres
from harness.errors import HarnessError
from harness.services.postgres import PostgresServer
from harness.services.s3 import MotoS3
from harness.storage.manifest import parse_manifest
from harness.storage.upload import PART_SIZE, upload_stream

NOW = datetime.now(UTC).replace(microsecond=0)
OPTIONS = DumpOptions(critical_tables=("orders",), heartbeat_table="beats", heartbeat_column="beat_at", key_name="shop")


@pytest.fixture(name="bucket")
def bucket_fixture(s3_server: MotoS3) -> tuple[Any, str]:
    client = s3_server.client()
    name = f"b-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return client, name


@pytest.fixture(name="shop")
def shop_fixture(pg_database: Any, pg_server: PostgresServer) -> str:
    """A database with 300 orders over three days (40 in the last 24 h) and heartbeats."""
    with pg_server.connect(pg_database.name) as conn:
        conn.execute("CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz)")
        conn.execute("CREATE TABLE beats (beat_at timestamptz)")
        conn.execute(
            "INSERT INTO orders (created_at) SELECT %s - make_interval(hours => g) FROM generate_series(1, 260) g",
            (NOW - timedelta(hours=23),),
        )
        conn.execute(
            "INSERT INTO orders (created_at) SELECT %s - make_interval(mins => g) FROM generate_series(1, 40) g",
            (NOW,),
        )
        conn.execute("INSERT INTO beats VALUES (%s)", (NOW - timedelta(minutes=3),))
    return str(pg_database.dsn)


class _Watched(io.RawIOBase):
    """A readable stream that remembers the largest single read asked of it."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self._inner = io.BytesIO(data)
        self.largest = 0
        self.fail_after = fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "the uploader must never read without a bound"
        self.largest = max(self.largest, size)
        if self.fail_after is not None and self._inner.tell() >= self.fail_after:
            raise OSError("source went away")
        return self._inner.read(size)


def _object(client: Any, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_upload_streams_in_parts_and_hashes_on_the_way(
    bucket: tuple[Any, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    client, name = bucket
    data = bytes(range(256)) * (20 * 1024 * 1024 // 256 + 7)
    stream = _Watched(data)
    with caplog.at_level(logging.INFO, logger="harness.progress"):
        result = upload_stream(client, name, "big.bin", stream)  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records if r.name == "harness.progress"]
    # A pipe's size is unknown: bytes and rate after each 8 MiB part, no ETA, then the final line.
    assert [line.split(", ")[0] for line in lines] == [
        f"uploading s3://{name}/big.bin: {sent}" for sent in ("8.0 MiB", "16.0 MiB", "20.0 MiB", "done")
    ]
    assert lines[-1].startswith(f"uploading s3://{name}/big.bin: done, 20.0 MiB in ")
    assert stream.largest <= PART_SIZE
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(_object(client, name, "big.bin")).hexdigest() == result.sha256


def test_a_small_object_in_one_put_reports_its_real_bytes(
    bucket: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, name = bucket
    data = b"x" * 163_000  # below one part: a single PUT, no per-part progress line before the last
    with caplog.at_level(logging.INFO, logger="harness.progress"):
        result = upload_stream(client, name, "small.bin", io.BytesIO(data))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "harness.progress"]
    assert line.startswith(f"uploading s3://{name}/small.bin: done, 159.2 KiB in ")
    assert result.size == len(data)


def test_a_failing_source_aborts_the_multipart_upload(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    with pytest.raises(OSError, match="source went away"):
        upload_stream(client, name, "broken.bin", _Watched(b"x" * (PART_SIZE * 2), fail_after=PART_SIZE))  # type: ignore[arg-type]
    assert client.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=name).get("KeyCount") == 0


def test_manifest_numbers_equal_the_sql_counts_and_the_object(
    bucket: tuple[Any, str], shop: str, pg_server: PostgresServer
) -> None:
    client, name = bucket
    manifest = backup_postgres(shop, client, name, "postgres/logical/", pg_dump=pg_server.binaries.tool("pg_dump"),
                               options=OPTIONS, taken_at=NOW)  # fmt: skip
    assert manifest.key == f"postgres/logical/shop-{NOW:%Y%m%dT%H%M%SZ}.dump"
    stats = manifest.tables["orders"]
    assert (stats.rows, stats.rows_last_24h) == (300, 40)  # the row exactly 24 h old is not "in the last 24 h"
    assert stats.newest == NOW - timedelta(minutes=1)
    assert manifest.heartbeat == NOW - timedelta(minutes=3)
    assert manifest.server_version.startswith(pg_server.binaries.version.split(".")[0])
    body = _object(client, name, manifest.key)
    assert body[:5] == b"PGDMP"
    assert hashlib.sha256(body).hexdigest() == manifest.sha256
    assert len(body) == manifest.size
    stored = parse_manifest(_object(client, name, manifest.key + ".manifest.json"), where=manifest.key)
    assert stored == manifest


def _dumped_rows(pg_server: PostgresServer, dump: bytes, tmp_path: Path) -> int:
    path = tmp_path / "orders.dump"
    path.write_bytes(dump)
    sql = subprocess.run([pg_server.binaries.tool("pg_restore"), "--data-only", "--table=orders", "-f", "-", path],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    copy = sql.split("FROM stdin;\n", 1)[1].split("\n\\.", 1)[0]
    return len(copy.splitlines())


def test_rows_committed_after_the_snapshot_are_in_neither_dump_nor_manifest(
    bucket: tuple[Any, str], shop: str, pg_server: PostgresServer, tmp_path: Path
) -> None:
    client, name = bucket

    def write_more() -> None:
        with pg_server.connect(psycopg.conninfo.conninfo_to_dict(shop)["dbname"]) as conn:
            conn.execute("INSERT INTO orders (created_at) SELECT now() FROM generate_series(1, 25)")

    manifest = backup_postgres(shop, client, name, "p/", pg_dump=pg_server.binaries.tool("pg_dump"), options=OPTIONS,
                               on_snapshot=write_more)  # fmt: skip
    assert manifest.tables["orders"].rows == 300
    assert _dumped_rows(pg_server, _object(client, name, manifest.key), tmp_path) == 300


def test_a_failing_pg_dump_publishes_nothing(bucket: tuple[Any, str], shop: str, pg_server: PostgresServer) -> None:
    client, name = bucket
    broken = DumpOptions(critical_tables=("orders",), compression="bogus:9")
    with pytest.raises(HarnessError, match=r"^pg_dump failed for s3://.*: .*compression"):
        backup_postgres(shop, client, name, "p/", pg_dump=pg_server.binaries.tool("pg_dump"), options=broken)
    assert client.list_objects_v2(Bucket=name).get("KeyCount") == 0


def test_a_missing_critical_table_is_named(bucket: tuple[Any, str], shop: str, pg_server: PostgresServer) -> None:
    client, name = bucket
    with pytest.raises(
        HarnessError, match=r"^\[database\] critical_tables: table payouts does not exist in database t_"
    ):
        backup_postgres(shop, client, name, "p/", pg_dump=pg_server.binaries.tool("pg_dump"),
                        options=DumpOptions(critical_tables=("payouts",)))  # fmt: skip


def test_base_backup_is_complete_and_verifies(
    bucket: tuple[Any, str], pg_server: PostgresServer, tmp_path: Path
) -> None:
    client, name = bucket
    scratch = tmp_path / "work"
    scratch.mkdir()
    manifest = backup_base(pg_server.dsn(), client, name, "postgres/base/daily/", taken_at=NOW, work_dir=scratch,
                           pg_basebackup=pg_server.binaries.tool("pg_basebackup"))  # fmt: skip
    assert list(scratch.iterdir()) == [], "the temporary copy must be removed"
    folder = f"postgres/base/daily/{NOW:%Y%m%dT%H%M%SZ}/"
    keys = {item["Key"] for item in client.list_objects_v2(Bucket=name)["Contents"]}
    files = ("base.tar.gz", "pg_wal.tar.gz", "backup_manifest")
    assert keys == {folder + f for f in files} | {folder + "base.tar.gz.manifest.json"}
    assert manifest.kind == "base"
    assert manifest.key == folder + "base.tar.gz"
    download = tmp_path / "download"
    download.mkdir()
    for file in files:
        (download / file).write_bytes(_object(client, name, folder + file))
    assert hashlib.sha256((download / "base.tar.gz").read_bytes()).hexdigest() == manifest.sha256
    verified = subprocess.run([pg_server.binaries.tool("pg_verifybackup"), "--no-parse-wal", download],
                              capture_output=True, text=True, check=False)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
