"""The caches kept across runs (:mod:`harness.services.cache`): shared by every checkout, pruned when unused.

Keyed by the install's path, every checkout and virtual environment of the same wheel got an installation copy
and an initdb template of its own that nothing ever removed (3 GB on this machine after a few weeks).
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path

import pytest

from harness.services.cache import locked, prune_stale
from harness.services.postgres import PostgresBinaries, _template, _template_path
from harness.services.provider import Provider

DAY = 86400.0


def _entry(root: Path, name: str, *, age_days: float) -> Path:
    entry = root / name
    (entry / "base").mkdir(parents=True)
    (entry / "PG_VERSION").write_text("18\n")
    lock = root / f"{name}.lock"
    lock.touch()
    stamp = time.time() - age_days * DAY
    os.utime(lock, (stamp, stamp))
    return entry


def test_one_build_installed_at_two_paths_shares_one_template(provider: Provider, tmp_path: Path) -> None:
    if provider.kind != "local":
        pytest.skip("templates are for local servers")
    first, second = tmp_path / "checkout-a" / "bin", tmp_path / "checkout-b" / "bin"
    for where in (first, second):
        where.parent.mkdir()
        where.symlink_to(provider.binaries.bin_dir, target_is_directory=True)
    a, b = PostgresBinaries(first, "checkout a"), PostgresBinaries(second, "checkout b")
    assert _template_path(a) == _template_path(b) == _template_path(provider.binaries)


def test_an_entry_unused_for_longer_than_the_limit_is_removed_and_the_others_are_kept(tmp_path: Path) -> None:
    stale = _entry(tmp_path, "pgdata-17.1-aaaaaaaaaaaa-w1sof", age_days=60)
    fresh = _entry(tmp_path, "pgdata-18.6-bbbbbbbbbbbb-w1sof", age_days=3)
    held = _entry(tmp_path, "pgdata-16.2-cccccccccccc-w1sof", age_days=60)
    other = _entry(tmp_path, "pginstall-18.6-dddddddddddd", age_days=60)  # another cache's prefix
    with (tmp_path / f"{held.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process using it right now
        assert prune_stale(tmp_path, "pgdata-", max_age_days=45) == [stale]
    assert not stale.exists()
    assert [fresh.exists(), held.exists(), other.exists()] == [True, True, True]
    assert (tmp_path / f"{stale.name}.lock").exists()  # kept, so that no two builders ever hold two locks


def test_taking_an_entrys_lock_marks_it_used(tmp_path: Path) -> None:
    entry = _entry(tmp_path, "pgdata-18.6-eeeeeeeeeeee-w1sof", age_days=60)
    with locked(tmp_path / f"{entry.name}.lock"):
        pass
    assert prune_stale(tmp_path, "pgdata-", max_age_days=45) == []
    assert entry.exists()


def test_using_a_template_prunes_the_stale_ones_beside_it(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if provider.kind != "local":
        pytest.skip("templates are for local servers")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = _template_path(provider.binaries).parent
    root.mkdir(parents=True)
    stale = _entry(root, f"pgdata-17.1-{uuid.uuid4().hex[:12]}-w1so", age_days=90)  # an older key's, long unused
    made = _template(provider.binaries)
    assert (made / "PG_VERSION").exists()
    assert not stale.exists()
    # The maps PostgreSQL makes again on demand are not in the template: fewer files for every copy.
    assert not [*made.glob("base/*/*_fsm"), *made.glob("base/*/*_vm"), *made.glob("global/*_vm")]
    server = provider.postgres(f"cache{uuid.uuid4().hex[:4]}")
    try:
        with server.connect() as conn:
            conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 20000) g")
            conn.execute("VACUUM t")  # makes the maps the template lacks, on a table and its catalogs
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (20000,)
            assert conn.execute("SELECT count(*) FROM pg_class").fetchone()[0] > 100  # type: ignore[index]
    finally:
        server.stop()
