"""Hostile base backups in the sandbox's real bucket: refused in one line, or restored without obeying them.

Each test rewrites the newest base backup the way a compromised backup host can: replace a file and "re-seal"
its manifest (sha256, size, expanded size), signed with the backup's own signing key, so hashes and signature
agree. They then prove nothing, so what must hold is what the restore does with the content. (Someone who can
only write the bucket cannot re-sign: ``tests/security/test_hostile_bucket.py``.)
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import harness.restore.base as restore_module
from harness.backup.base import BASE_ARCHIVE
from harness.backup.store import put_manifest
from harness.deployment import Deployment
from harness.errors import CheckFailed, HarnessError
from harness.restore.base import restore_base
from harness.restore.cluster_config import WRITTEN, restored_settings, take_over_config
from harness.restore.select import newest_backup
from harness.restore.tarball import size_cap
from harness.services.base import LABEL, run_id, run_tool
from harness.services.provider import Provider
from harness.storage.manifest import BackupManifest, Companion, manifest_key, parse_manifest
from sandbox.world import VariantContext, World
from tests.security.tars import Member, build, realpath_overflow_chain, rebuilt, zeros

WAL = "pg_wal.tar.gz"


def _newest(deployment: Deployment) -> BackupManifest:
    storage = deployment.config.storage
    _, manifest = newest_backup(
        deployment, [storage.base_daily_prefix, storage.base_weekly_prefix], suffix=BASE_ARCHIVE
    )
    assert manifest is not None
    return manifest


def _folder(backup: BackupManifest) -> str:
    return backup.key.rsplit("/", 1)[0]


def _get(ctx: VariantContext, key: str) -> bytes:
    return bytes(ctx.client.get_object(Bucket=ctx.bucket, Key=key)["Body"].read())


def _reseal(
    ctx: VariantContext, backup: BackupManifest, name: str, data: bytes, *, expanded: int | None = None
) -> None:
    """Replace one file of ``backup`` and make its manifest agree (``expanded``: what to declare, default the truth)."""
    ctx.client.put_object(Bucket=ctx.bucket, Key=f"{_folder(backup)}/{name}", Body=data)
    manifest = parse_manifest(_get(ctx, manifest_key(backup.key)), where="test")
    if name.endswith(".tar.gz") and expanded is None:
        expanded = len(gzip.decompress(data))
    sealed = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "expanded": expanded}
    if name == BASE_ARCHIVE:
        manifest = manifest.model_copy(update=sealed)
    else:
        manifest.companions[name] = Companion(**sealed)
    put_manifest(ctx.client, ctx.bucket, manifest, ctx.world.manifest_signer)


def _variant(world: World, name: str, mutate: Callable[[VariantContext, BackupManifest], None]) -> Deployment:
    backup = _newest(world.deployment)
    return world.variant(name, lambda ctx: mutate(ctx, backup))


def _restore_refused(provider: Provider, broken: Deployment, name: str, error: type[Exception], line: str) -> None:
    """The restore fails with exactly ``line`` and leaves no staging directory behind."""
    backup = _newest(broken)
    with pytest.raises(error) as caught:
        restore_base(provider, broken, backup, broken.config.database.critical_tables, name=name)
    assert str(caught.value) == line.format(folder=_folder(backup), key=backup.key)
    assert "\n" not in str(caught.value)
    assert glob.glob(f"{tempfile.gettempdir()}/{LABEL}-{run_id()}-base-{name}-*") == []


@pytest.fixture(name="canary_dir")
def canary_dir_fixture() -> Iterator[Path]:
    """A directory the servers' unprivileged user can write to: a command a server ran would leave a file here."""
    directory = Path(tempfile.mkdtemp(prefix=f"{LABEL}-canary-"))
    directory.chmod(0o777)
    run_tool(["touch", directory / "control"], what="touch as the service user", timeout=10, as_service_user=True)
    assert (directory / "control").exists(), "the service user must be able to write here, or the test proves nothing"
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_a_restore_command_planted_in_the_backup_never_runs(
    provider: Provider, sandbox_world: World, canary_dir: Path
) -> None:
    canary = canary_dir / "restore_command-ran"
    auto_conf = (f"restore_command = 'touch {canary}'\narchive_mode = 'on'\narchive_command = 'touch {canary}'\n"
                 "shared_preload_libraries = 'codeblack_no_such_library'\n").encode()  # fmt: skip

    def plant(ctx: VariantContext, backup: BackupManifest) -> None:
        original = _get(ctx, backup.key)
        _reseal(
            ctx, backup, BASE_ARCHIVE, rebuilt(original, {"postgresql.auto.conf": auto_conf, "recovery.signal": b""})
        )

    broken = _variant(sandbox_world, "restore command", plant)
    restored = restore_base(provider, broken, _newest(broken), broken.config.database.critical_tables, name="planted")
    try:
        assert restored.cluster_state == "in production"
        assert restored.counts["orders"] > 0
        with restored.postgres.connect() as conn:
            shown = {name: conn.execute(f"SHOW {name}").fetchone() for name in
                     ("restore_command", "archive_mode", "archive_command", "shared_preload_libraries")}  # fmt: skip
        assert shown == {"restore_command": ("",), "archive_mode": ("off",), "archive_command": ("(disabled)",),
                         "shared_preload_libraries": ("",)}  # fmt: skip
        data = restored.postgres.data_dir
        assert not (data / "postgresql.auto.conf").exists()
        assert not (data / "recovery.signal").exists()
        with restored.postgres.connect() as conn:  # the harness's authentication, not the backup's
            hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        assert hba.parent == restored.postgres.workdir
        assert "local all all peer map=harness" in hba.read_text()
    finally:
        restored.postgres.stop()
    assert not canary.exists(), "the backup's restore_command or archive_command ran on the host"


def test_the_cve_2025_4517_chain_in_pg_wal_is_refused(provider: Provider, sandbox_world: World) -> None:
    dest = Path(tempfile.gettempdir()) / f"{LABEL}-{run_id()}-base-chain-xxxxxxxx" / "data" / "pg_wal"
    chain = build(realpath_overflow_chain(dest), fmt=tarfile.PAX_FORMAT)
    broken = _variant(sandbox_world, "realpath chain", lambda ctx, backup: _reseal(ctx, backup, WAL, chain))
    _restore_refused(provider, broken, "chain", CheckFailed,
                     f"{{folder}}/{WAL}: member '././@PaxHeader': unsupported member type b'x'; refused")  # fmt: skip


def test_a_link_in_base_tar_is_refused_and_nothing_is_written_through_it(
    provider: Provider, sandbox_world: World, canary_dir: Path
) -> None:
    def link(ctx: VariantContext, backup: BackupManifest) -> None:
        evil = {"pg_wal": Member("pg_wal", tarfile.SYMTYPE, link=str(canary_dir)),
                "pg_wal/000000010000000000000099": b"through the link"}  # fmt: skip
        _reseal(ctx, backup, BASE_ARCHIVE, rebuilt(_get(ctx, backup.key), evil))

    broken = _variant(sandbox_world, "base link", link)
    _restore_refused(provider, broken, "link", CheckFailed,
                     "{key}: member 'pg_wal': symbolic links are not allowed; refused")  # fmt: skip
    assert sorted(p.name for p in canary_dir.iterdir()) == ["control"]


def test_a_tablespace_is_refused_in_one_line(provider: Provider, sandbox_world: World) -> None:
    def tablespace(ctx: VariantContext, backup: BackupManifest) -> None:
        evil = {"pg_tblspc/16385": Member("pg_tblspc/16385", tarfile.SYMTYPE, link="/srv/tablespace")}
        _reseal(ctx, backup, BASE_ARCHIVE, rebuilt(_get(ctx, backup.key), evil))

    broken = _variant(sandbox_world, "tablespace", tablespace)
    _restore_refused(provider, broken, "tblspc", CheckFailed,
                     "{key}: member 'pg_tblspc/16385': tablespaces are not supported (the drill restores only the main "
                     "data directory); refused")  # fmt: skip


def test_an_expansion_bomb_in_pg_wal_is_refused_at_its_cap(provider: Provider, sandbox_world: World) -> None:
    declared: dict[str, int] = {}

    def bomb(ctx: VariantContext, backup: BackupManifest) -> None:
        wal = backup.companions[WAL]
        assert wal.expanded is not None
        declared["expanded"] = wal.expanded
        payload = build([zeros("000000010000000000000099", 64 * 1024 * 1024)])
        _reseal(ctx, backup, WAL, payload, expanded=wal.expanded)  # the hash re-sealed, the expanded size kept

    broken = _variant(sandbox_world, "bomb", bomb)
    cap = size_cap(declared["expanded"])
    _restore_refused(provider, broken, "bomb", CheckFailed,
                     f"{{folder}}/{WAL}: member '000000010000000000000099' declares 67108864 bytes, past the archive's "
                     f"cap of {cap} bytes; refused as an expansion bomb")  # fmt: skip


def test_a_bomb_declaring_its_true_size_is_refused_before_the_disk_fills(
    provider: Provider, sandbox_world: World
) -> None:
    payload = build([zeros("000000010000000000000099", 1024 * 1024)])
    huge = 2**62
    broken = _variant(sandbox_world, "huge", lambda ctx, backup: _reseal(ctx, backup, WAL, payload, expanded=huge))
    backup = _newest(broken)
    with pytest.raises(HarnessError, match=rf"^base backup {_folder(backup)}/ needs \d+ bytes on disk as its manifest "
                                           r"declares it, only \d+ are free in \S+; free space there$"):  # fmt: skip
        restore_base(provider, broken, backup, broken.config.database.critical_tables, name="huge")


@pytest.mark.parametrize("name", [WAL, "backup_manifest"])
def test_a_companion_that_differs_from_its_hash_is_refused_before_unpacking(
    provider: Provider, sandbox_world: World, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    def flip(ctx: VariantContext, backup: BackupManifest) -> None:
        key = f"{_folder(backup)}/{name}"
        data = bytearray(_get(ctx, key))
        data[len(data) // 2] ^= 0xFF  # same size, other bytes; the manifest is left as it was
        ctx.client.put_object(Bucket=ctx.bucket, Key=key, Body=bytes(data))

    broken = _variant(sandbox_world, f"flipped {name}", flip)
    backup = _newest(broken)
    unpacked: list[Any] = []
    monkeypatch.setattr(restore_module, "unpack", lambda *args, **kwargs: unpacked.append(args))
    key = f"{_folder(backup)}/{name}"
    with pytest.raises(CheckFailed, match=rf"^{key}: sha256 [0-9a-f]{{64}} differs from the manifest's "
                                          rf"{backup.companions[name].sha256}$"):  # fmt: skip
        restore_base(provider, broken, backup, broken.config.database.critical_tables, name="flipped")
    assert unpacked == []


def test_a_base_backup_without_companion_hashes_is_refused(provider: Provider, sandbox_world: World) -> None:
    def strip(ctx: VariantContext, backup: BackupManifest) -> None:
        old = backup.model_copy(update={"companions": {}, "expanded": None})
        put_manifest(ctx.client, ctx.bucket, old, ctx.world.manifest_signer)

    broken = _variant(sandbox_world, "old manifest", strip)
    _restore_refused(provider, broken, "old", CheckFailed,
                     "{folder}/: base backup predates companion hashes (its manifest records no sha256 for "
                     "pg_wal.tar.gz and backup_manifest, or no expanded sizes), so it cannot be verified; take a new "
                     "base backup")  # fmt: skip


def test_the_backups_configuration_is_replaced_by_the_harnesss(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "recovery.signal").mkdir(parents=True)
    (data / "recovery.signal" / "inside").write_text("a directory counts as the signal too")
    hostile = {"postgresql.conf": "include '/etc/evil.conf'\nshared_preload_libraries = 'evil'\n",
               "postgresql.auto.conf": "restore_command = 'touch /tmp/pwned'\n", "standby.signal": "",
               "pg_hba.conf": "host all all 0.0.0.0/0 trust\n", "pg_ident.conf": "map root postgres\n",
               "postmaster.pid": "1\n", "postmaster.opts": "postgres -c archive_command=evil\n",
               "backup_label": "START WAL LOCATION: 0/2000028\n", "tablespace_map": ""}  # fmt: skip
    for name, text in hostile.items():
        (data / name).write_text(text)
    removed = take_over_config(data, what="k/base.tar.gz")
    assert removed == ["postgresql.auto.conf", "recovery.signal", "standby.signal", "postmaster.pid", "postmaster.opts"]
    assert {name: (data / name).read_text() for name in WRITTEN} == WRITTEN
    assert sorted(p.name for p in data.iterdir()) == ["backup_label", "pg_hba.conf", "pg_ident.conf",
                                                      "postgresql.conf", "tablespace_map"]  # fmt: skip


def test_a_tablespace_map_with_entries_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tablespace_map").write_text("16385 /srv/tablespace\n")
    with pytest.raises(CheckFailed) as caught:
        take_over_config(tmp_path, what="k/base.tar.gz")
    assert str(caught.value) == ("k/base.tar.gz: tablespace_map lists tablespaces; tablespaces are not supported "
                                 "(the drill restores only the main data directory)")  # fmt: skip


def test_restored_settings_follow_the_server_version() -> None:
    assert restored_settings(18)["event_triggers"] == "off"
    assert restored_settings(18)["archive_library"] == ""
    assert "event_triggers" not in restored_settings(16)
    assert "archive_library" not in restored_settings(14)
    assert restored_settings(14)["restore_command"] == ""
