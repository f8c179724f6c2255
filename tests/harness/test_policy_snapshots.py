"""The newest base backup verified with pg_verifybackup: a real pg_basebackup stored in moto, then broken."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.backup.base import backup_base
from harness.errors import CheckFailed
from harness.policy.snapshots import verify_base_backup
from harness.storage.catalogue import Catalogue, list_backups
from tests.harness.test_catalogue import bucket_fixture  # noqa: F401 - the bucket fixture
from tests.security.tars import Member, build

DAILY, WEEKLY = "postgres/base/daily/", "postgres/base/weekly/"


def _backups(pg_server: Any, bucket: tuple[Any, str]) -> tuple[Catalogue, Catalogue]:
    client, name = bucket
    tool = pg_server.binaries.tool("pg_basebackup")
    backup_base(pg_server.dsn("postgres"), client, name, WEEKLY, pg_basebackup=tool,
                taken_at=datetime(2026, 1, 11, tzinfo=UTC))  # fmt: skip
    backup_base(pg_server.dsn("postgres"), client, name, DAILY, pg_basebackup=tool,
                taken_at=datetime(2026, 1, 15, tzinfo=UTC))  # fmt: skip
    return (list_backups(client, name, DAILY, suffix="base.tar.gz"),
            list_backups(client, name, WEEKLY, suffix="base.tar.gz"))  # fmt: skip


def test_the_newest_base_backup_passes_pg_verifybackup(pg_server: Any, bucket: tuple[Any, str]) -> None:
    client, _ = bucket
    daily, weekly = _backups(pg_server, bucket)
    evidence = verify_base_backup(client, [daily, weekly], pg_server.binaries.tool("pg_verifybackup"))
    assert (evidence.subject, evidence.measured) == (daily.newest().key, "backup successfully verified")


def test_a_base_backup_without_its_wal_fails(pg_server: Any, bucket: tuple[Any, str]) -> None:
    client, name = bucket
    daily, weekly = _backups(pg_server, bucket)
    wal_key = daily.companion(daily.newest(), "pg_wal.tar.gz")
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w:gz"):
        pass
    client.put_object(Bucket=name, Key=wal_key, Body=empty.getvalue())
    with pytest.raises(CheckFailed) as caught:
        verify_base_backup(client, [daily, weekly], pg_server.binaries.tool("pg_verifybackup"))
    assert str(caught.value) == (
        f"pg_verifybackup of {daily.newest().key} failed: pg_verifybackup: error: WAL parsing failed for timeline 1"
    )
    client.delete_object(Bucket=name, Key=wal_key)
    with pytest.raises(CheckFailed) as caught:
        verify_base_backup(
            client,
            [list_backups(client, name, DAILY, suffix="base.tar.gz")],
            pg_server.binaries.tool("pg_verifybackup"),
        )
    assert str(caught.value) == (
        f"base backup {daily.newest().key} has no pg_wal.tar.gz beside it; it cannot be verified or restored"
    )


def test_a_base_backup_whose_tarball_holds_a_link_is_refused_before_anything_is_written_through_it(
    pg_server: Any, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    # Unpacked by the harness's reader, as the physical restore is: a link out of the data directory and a file
    # through it are refused naming the member. (The listing has no manifest now, so none vouches for the bytes.)
    client, name = bucket
    daily, weekly = _backups(pg_server, bucket)
    newest = daily.newest()
    client.delete_object(Bucket=name, Key=daily.manifest_for(newest))
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = build([Member("escape", tarfile.SYMTYPE, link=str(outside)), Member("escape/planted", data=b"x")])
    client.put_object(Bucket=name, Key=newest.key, Body=hostile)
    relisted = list_backups(client, name, DAILY, suffix="base.tar.gz")
    with pytest.raises(CheckFailed) as caught:
        verify_base_backup(client, [relisted, weekly], pg_server.binaries.tool("pg_verifybackup"))
    assert str(caught.value) == f"{newest.key}: member 'escape': symbolic links are not allowed; refused"
    assert list(outside.iterdir()) == []
