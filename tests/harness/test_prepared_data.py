"""A template copy made ahead (:class:`harness.services.postgres.PreparedData`): used when it fits, else removed.

A restore copies the session installation's template while the dump's header is on its way; the server must
start from that very copy when staging runs that installation, and from its own template otherwise, and the
copy must be gone either way.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.config import DrillConfig
from harness.restore.staging import _copy_ahead
from harness.services.postgres import PreparedData, find_binaries
from harness.services.provider import Provider
from harness.storage.manifest import BackupManifest
from tests.harness.test_pgversions import PG15, needs_pg15


@pytest.fixture
def prepared(provider: Provider) -> PreparedData:
    if provider.kind != "local":
        pytest.skip("a copy made ahead is for local servers; the docker provider starts containers")
    provider.postgres(f"warm{uuid.uuid4().hex[:4]}").stop()  # the session installation's template exists
    made = PreparedData.copy(provider.binaries)
    assert made is not None
    (made.data / "made-ahead").write_text("this copy\n")  # a file the template does not hold
    return made


def test_a_server_of_the_same_installation_starts_from_the_copy_made_ahead(
    provider: Provider, prepared: PreparedData
) -> None:
    server = provider.postgres(f"ahead{uuid.uuid4().hex[:4]}", prepared=prepared)
    try:
        assert (server.data_dir / "made-ahead").read_text() == "this copy\n"  # type: ignore[attr-defined]
        assert not prepared.data.exists()  # moved into the server's workdir, not copied again
        with server.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
        prepared.discard()
    assert not prepared.directory.exists()


@needs_pg15
def test_a_server_of_another_installation_ignores_the_copy_and_discard_removes_it(
    provider: Provider, prepared: PreparedData
) -> None:
    server = provider.postgres(f"other{uuid.uuid4().hex[:4]}", binaries=find_binaries(str(PG15)), prepared=prepared)
    try:
        assert not (server.data_dir / "made-ahead").exists()  # type: ignore[attr-defined]
        with server.connect() as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")  # type: ignore[index]
    finally:
        server.stop()
    assert (prepared.data / "made-ahead").exists()
    prepared.discard()
    assert not prepared.directory.exists()


def test_no_copy_is_made_ahead_for_an_installation_without_a_template(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An initdb is seconds of work: not spent on a guess of which installation staging will run.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert PreparedData.copy(provider.binaries) is None
    assert list(tmp_path.iterdir()) == []


def _manifest(server_version: str) -> BackupManifest:
    return BackupManifest(kind="logical", key="postgres/logical/x.dump", taken_at=datetime.now(UTC), format="custom",
                          size=1, sha256="0" * 64, server_version=server_version)  # fmt: skip


def test_no_copy_is_made_ahead_when_the_manifest_or_the_settings_name_another_major(
    provider: Provider, drill_config: DrillConfig
) -> None:
    if provider.kind != "local":
        pytest.skip("a copy made ahead is for local servers; the docker provider starts containers")
    session, other = int(provider.binaries.major), int(provider.binaries.major) - 3
    settings = drill_config.with_changes(services={"postgres_major": None})
    assert _copy_ahead(provider, settings, _manifest(f"{session}.1"))
    assert _copy_ahead(provider, settings, None)  # no manifest: the header alone will say
    assert _copy_ahead(provider, settings, _manifest(""))
    # A copy that would go unused is CPU taken from the download.
    assert not _copy_ahead(provider, settings, _manifest(f"{other}.18 (Debian {other}.18-0+deb12u1)"))
    assert not _copy_ahead(provider, settings.with_changes(services={"postgres_major": other}), _manifest(""))
