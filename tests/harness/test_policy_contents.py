"""Compression, manifests and off-server storage, checked on real pg_dump output stored in moto."""

from __future__ import annotations

import gzip
import hashlib
import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.backup.postgres import DumpOptions, backup_postgres
from harness.backup.store import put_manifest
from harness.errors import CheckFailed, HarnessError
from harness.policy.contents import check_compressed, check_manifests, check_off_server, describe_header
from harness.storage.catalogue import list_backups
from harness.storage.manifest import BackupManifest
from tests.harness.test_catalogue import bucket_fixture  # noqa: F401 - the bucket fixture

LOGICAL = "postgres/logical/"
T0 = datetime(2026, 1, 15, tzinfo=UTC)


def _dump(pg_server: Any, pg_database: Any, bucket: tuple[Any, str], hours: int, **options: str) -> BackupManifest:
    client, name = bucket
    return backup_postgres(pg_database.dsn, client, name, LOGICAL, pg_dump=pg_server.binaries.tool("pg_dump"),
                           options=DumpOptions(**options), taken_at=T0 + timedelta(hours=hours))  # fmt: skip


def test_compressed_custom_dumps_and_gzip_files_pass(pg_server: Any, pg_database: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    _dump(pg_server, pg_database, bucket, 0)
    client.put_object(Bucket=name, Key=f"{LOGICAL}codeblack-20260115T060000Z.sql.gz", Body=gzip.compress(b"SELECT 1;"))
    evidence = check_compressed(client, list_backups(client, name, LOGICAL), "logical backup")
    assert [(row["format"], row["compression"]) for row in evidence.details] == [("custom", "gzip"), ("gzip", "gzip")]


def test_a_custom_dump_without_compression_fails(pg_server: Any, pg_database: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    _dump(pg_server, pg_database, bucket, 0)
    plain = _dump(pg_server, pg_database, bucket, 6, compression="none")
    with pytest.raises(CheckFailed) as caught:
        check_compressed(client, list_backups(client, name, LOGICAL), "logical backup")
    assert str(caught.value) == (
        f"logical backup {plain.key} is not compressed: its header declares a custom-format archive with "
        "compression none; 1 of 2 object(s) uncompressed (the plan keeps compressed dumps)"
    )


def test_a_plain_sql_dump_fails(pg_server: Any, pg_database: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    plain = _dump(pg_server, pg_database, bucket, 0, dump_format="plain", compression="none")
    with pytest.raises(CheckFailed) as caught:
        check_compressed(client, list_backups(client, name, LOGICAL), "logical backup")
    assert str(caught.value) == (
        f"logical backup {plain.key} is not compressed: it has no PGDMP, gzip, zstd or lz4 signature (it starts "
        "b'--\\n-- Postgr'); 1 of 1 object(s) uncompressed (the plan keeps compressed dumps)"
    )


def test_headers_of_older_archives_and_other_compressors() -> None:
    level_6 = b"PGDMP\x01\x0e\x00\x04\x08\x01" + b"\x00\x06\x00\x00\x00"  # archive 1.14: compression as an int
    level_0 = b"PGDMP\x01\x0e\x00\x04\x08\x01" + b"\x00\x00\x00\x00\x00"
    assert describe_header(level_6) == ("custom", "gzip")
    assert describe_header(level_0) == ("custom", "none")
    assert describe_header(b"PGDMP\x01\x10\x00\x04\x08\x01\x03") == ("custom", "zstd")
    assert describe_header(b"\x28\xb5\x2f\xfd\x00") == ("zstd", "zstd")


def test_manifests_match_real_dumps(pg_server: Any, pg_database: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    _dump(pg_server, pg_database, bucket, 0)
    _dump(pg_server, pg_database, bucket, 6)
    evidence = check_manifests(client, list_backups(client, name, LOGICAL), "logical backup")
    assert (evidence.measured, evidence.limit) == (2, 2)


def test_a_manifest_whose_hash_does_not_match_fails(pg_server: Any, pg_database: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    old = _dump(pg_server, pg_database, bucket, 0)
    wrong = hashlib.sha256(b"not the dump").hexdigest()
    put_manifest(client, name, old.model_copy(update={"sha256": wrong}))
    _dump(pg_server, pg_database, bucket, 6)
    catalogue = list_backups(client, name, LOGICAL)
    with pytest.raises(CheckFailed) as caught:
        check_manifests(client, catalogue, "logical backup")
    assert str(caught.value) == f"logical backup {old.key} has sha256 {old.sha256} but its manifest says {wrong}"
    assert check_manifests(client, catalogue, "logical backup", hash_newest=1).measured == 1


def test_a_truncated_dump_or_a_missing_manifest_fails(
    pg_server: Any, pg_database: Any, bucket: tuple[Any, str]
) -> None:
    client, name = bucket
    dump = _dump(pg_server, pg_database, bucket, 0)
    body = client.get_object(Bucket=name, Key=dump.key)["Body"].read()
    client.put_object(Bucket=name, Key=dump.key, Body=body[:100])
    with pytest.raises(CheckFailed) as caught:
        check_manifests(client, list_backups(client, name, LOGICAL), "logical backup")
    assert str(caught.value) == (
        f"s3://{name}/{dump.key}.manifest.json: storage lists {dump.key} at 100 bytes but its manifest says "
        f"{dump.size} bytes"
    )
    client.delete_object(Bucket=name, Key=dump.key + ".manifest.json")
    with pytest.raises(CheckFailed) as caught:
        check_manifests(client, list_backups(client, name, LOGICAL), "logical backup")
    assert str(caught.value) == f"logical backup {dump.key} has no manifest ({dump.key}.manifest.json is missing)"


def test_backups_on_the_database_host_are_not_off_server() -> None:
    apart = check_off_server("10.0.0.7", "10.0.0.8", "backup storage", "x")
    assert apart.details["basis"] == "their addresses differ"
    unresolved = check_off_server("s3.eu-west-1.amazonaws.com", "db1.internal.invalid", "backup storage", "x")
    assert unresolved.details["basis"] == (
        "compared by name only: db1.internal.invalid does not resolve from the drill's machine"
    )
    with pytest.raises(CheckFailed) as caught:
        check_off_server("127.0.0.1", "localhost", "backup storage", "storage.database_host")
    assert str(caught.value) == (
        "backup storage is not off-server: the storage endpoint 127.0.0.1 and the server localhost "
        "(storage.database_host) are the same host (loopback)"
    )
    with pytest.raises(HarnessError, match=r"^storage.database_host is not set in drill.toml; "):
        check_off_server("127.0.0.1", "", "backup storage", "storage.database_host")


def test_two_names_of_one_machine_are_one_host() -> None:
    """The label-versus-address blind spot: a name and the address it resolves to are the same server."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"this machine's own name {name} does not resolve here")
    shared = "loopback" if address.startswith("127.") else re.escape(address)
    with pytest.raises(CheckFailed, match=rf"are the same host \({shared}"):
        check_off_server(address, name, "backup storage", "storage.database_host")
