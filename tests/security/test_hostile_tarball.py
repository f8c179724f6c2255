"""Hostile tarballs fed to the unpacker: each is refused in one line and nothing lands outside the target."""

from __future__ import annotations

import gzip
import os
import re
import stat
import tarfile
from pathlib import Path

import pytest

from harness.errors import CheckFailed
from harness.restore.tarball import expanded_size, size_cap, unpack
from tests.security.tars import Member, build, realpath_overflow_chain, zeros

WHAT = "postgres/base/daily/20260101T000000Z/pg_wal.tar.gz"
ORIGINAL = b"the canary's own content"


@pytest.fixture(name="outer")
def outer_fixture(tmp_path: Path) -> Path:
    """``outer/dest`` is the target; ``outer/flag`` is a canary beside it that no archive may touch."""
    outer = tmp_path / "outer"
    (outer / "dest").mkdir(parents=True)
    (outer / "flag").write_bytes(ORIGINAL)
    return outer


def _unpack(outer: Path, members: list[Member], *, fmt: int = tarfile.USTAR_FORMAT, declared: int = 0) -> int:
    archive = outer.parent / "archive.tar.gz"
    archive.write_bytes(build(members, fmt=fmt))
    return unpack(archive, outer / "dest", what=WHAT, declared=declared or expanded_size(archive))


def _refused(outer: Path, members: list[Member], line: str, **kwargs: int) -> None:
    with pytest.raises(CheckFailed) as caught:
        _unpack(outer, members, **kwargs)
    assert str(caught.value) == line
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in outer.iterdir()) == ["dest", "flag"], "nothing may appear beside the target"
    assert (outer / "flag").read_bytes() == ORIGINAL, "the canary outside the target must be untouched"


def test_a_genuine_archive_unpacks_with_postgres_modes(outer: Path) -> None:
    members = [Member("archive_status", tarfile.DIRTYPE, mode=0o777),
               Member("archive_status/000000010000000000000001.done", mode=0o666),
               Member("./000000010000000000000001", data=b"wal" * 1000, mode=0o644)]  # fmt: skip
    _unpack(outer, members)
    dest = outer / "dest"
    assert (dest / "000000010000000000000001").read_bytes() == b"wal" * 1000
    assert stat.S_IMODE((dest / "archive_status").stat().st_mode) == 0o700
    assert stat.S_IMODE((dest / "archive_status/000000010000000000000001.done").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "000000010000000000000001").stat().st_mode) == 0o600


def test_the_cve_2025_4517_realpath_overflow_chain_is_refused(outer: Path) -> None:
    chain = realpath_overflow_chain(outer / "dest")
    _refused(outer, chain, f"{WHAT}: member '././@PaxHeader': unsupported member type b'x'; refused",
             fmt=tarfile.PAX_FORMAT)  # fmt: skip


def test_the_realpath_overflow_chain_in_gnu_format_is_refused(outer: Path) -> None:
    chain = realpath_overflow_chain(outer / "dest")
    _refused(outer, chain, f"{WHAT}: member '././@LongLink': not a POSIX ustar header (pg_basebackup writes only "
                           "those); refused", fmt=tarfile.GNU_FORMAT)  # fmt: skip


def test_the_chains_links_are_refused_where_ustar_can_carry_them(outer: Path) -> None:
    # The same shape with names short enough for ustar: the first link stops it, whatever realpath would say.
    chain = [Member("d" * 90, tarfile.DIRTYPE, mode=0o777), Member("a", tarfile.SYMTYPE, link="d" * 90),
             Member("escape", tarfile.SYMTYPE, link="a/../.."), Member("flaglink", tarfile.LNKTYPE, link="escape/flag"),
             Member("flaglink", data=b"overwrite"), Member("escape/newfile", data=b"new")]  # fmt: skip
    _refused(outer, chain, f"{WHAT}: member 'a': symbolic links are not allowed; refused")


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (Member("escape", tarfile.SYMTYPE, link="../"), "'escape': symbolic links are not allowed"),
        (Member("etc", tarfile.SYMTYPE, link="/etc"), "'etc': symbolic links are not allowed"),
        (Member("flag", tarfile.LNKTYPE, link="../flag"), "'flag': hard links are not allowed"),
        (Member("/tmp/absolute", data=b"x"), "'/tmp/absolute': absolute path"),
        (Member("../flag", data=b"x"), "'../flag': '..' component"),
        (Member("a/../../flag", data=b"x"), "'a/../../flag': '..' component"),
        (Member("a//b", data=b"x"), "'a//b': empty or '.' component"),
        (Member("null", tarfile.CHRTYPE), "'null': device nodes are not allowed"),
        (Member("sda", tarfile.BLKTYPE), "'sda': device nodes are not allowed"),
        (Member("pipe", tarfile.FIFOTYPE), "'pipe': FIFOs are not allowed"),
        (Member("setuid", data=b"x", mode=0o4755), "'setuid': mode 4755 has a setuid, setgid or sticky bit"),
        (Member("setgid", tarfile.DIRTYPE, mode=0o2700), "'setgid/': mode 2700 has a setuid, setgid or sticky bit"),
        (Member("line\nbreak", data=b"x"), "'line\\nbreak': control character in name"),
        (Member("a" * 155 + "/" + "b" * 100, data=b"x"), f"'{'a' * 80}...': name is longer than 255 bytes"),
        (Member("contiguous", tarfile.CONTTYPE, data=b"x"), "'contiguous': unsupported member type b'7'"),
        (
            Member("pg_tblspc/16385", tarfile.SYMTYPE, link="/srv/ts"),
            "'pg_tblspc/16385': tablespaces are not supported (the drill restores only the main data directory)",
        ),
    ],
    ids=lambda value: value.name[:20] if isinstance(value, Member) else None,
)
def test_a_member_postgresql_never_writes_is_refused(outer: Path, member: Member, reason: str) -> None:
    _refused(outer, [Member("ok", data=b"fine"), member], f"{WHAT}: member {reason}; refused")


def test_a_second_member_of_the_same_name_cannot_overwrite_the_first(outer: Path) -> None:
    members = [Member("000000010000000000000001", data=b"genuine"), Member("000000010000000000000001", data=b"evil")]
    _refused(outer, members, f"{WHAT}: member '000000010000000000000001': already exists (a second member of that "
                             "name); refused")  # fmt: skip
    assert (outer / "dest" / "000000010000000000000001").read_bytes() == b"genuine"


def test_a_link_already_in_the_target_is_never_followed(outer: Path) -> None:
    (outer / "dest" / "through").symlink_to(outer)
    (outer / "dest" / "flaglink").symlink_to(outer / "flag")
    _refused(outer, [Member("through/newfile", data=b"new")],
             f"{WHAT}: member 'through/newfile': a parent directory is a link or a file; refused")  # fmt: skip
    _refused(outer, [Member("flaglink", data=b"overwrite")],
             f"{WHAT}: member 'flaglink': already exists (a second member of that name); refused")  # fmt: skip


def test_a_member_larger_than_the_cap_is_refused_before_a_byte_is_written(outer: Path) -> None:
    declared = len(gzip.decompress(build([Member("000000010000000000000001", data=b"w" * 4096)])))
    bomb, cap = [zeros("000000010000000000000002", 64 * 1024 * 1024)], size_cap(declared)
    _refused(outer, bomb, f"{WHAT}: member '000000010000000000000002' declares 67108864 bytes, past the archive's "
                          f"cap of {cap} bytes; refused as an expansion bomb", declared=declared)  # fmt: skip
    assert _used(outer / "dest") == 0


def test_the_stream_is_counted_not_just_what_headers_declare(outer: Path) -> None:
    # Empty members: every header declares 0 bytes, yet the stream of headers alone passes the cap.
    declared = 64 * 1024
    cap = size_cap(declared)
    bomb = [Member(f"empty{n:05d}") for n in range(cap // 512 + 10)]
    _refused(outer, bomb, f"{WHAT}: expands past its cap of {cap} bytes (the manifest declares {declared} expanded "
                          "bytes); refused as an expansion bomb", declared=declared)  # fmt: skip
    assert len(list((outer / "dest").iterdir())) <= cap // 512


def test_a_truncated_stream_is_refused_in_one_line(outer: Path) -> None:
    whole = build([Member("000000010000000000000001", data=os.urandom(200_000))])
    archive = outer.parent / "truncated.tar.gz"
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckFailed, match=rf"^{re.escape(WHAT)}: not a valid gzip stream: .*$"):
        unpack(archive, outer / "dest", what=WHAT, declared=300_000)


def _used(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
