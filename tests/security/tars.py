"""Tarballs built for the hostile-backup tests: real gzip'd tar streams, as an attacker would upload them."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Member", "build", "realpath_overflow_chain", "rebuilt", "zeros"]


@dataclass(frozen=True)
class Member:
    """One tar member: a file (``data``), a directory, a link (``link``) or a special file."""

    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o600
    link: str = ""
    size: int | None = None

    def info(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type, info.mode, info.linkname = self.kind, self.mode, self.link
        info.size = len(self.data) if self.size is None else self.size
        if self.kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = 1, 3
        return info


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, read in chunks (a bomb's payload never sits in memory whole)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count

    def readable(self) -> bool:
        return True


def zeros(name: str, size: int) -> Member:
    """A member of ``size`` zero bytes (its payload is generated while the archive is written)."""
    return Member(name, size=size)


def build(members: Iterable[Member], *, fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    """A gzip'd tar stream holding ``members`` in order (ustar, as pg_basebackup writes, unless ``fmt`` says)."""
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w|", format=fmt) as tar,
    ):
        for member in members:
            info = member.info()
            if member.kind not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                tar.addfile(info)
            elif member.size is not None:
                tar.addfile(info, io.BufferedReader(_Zeros(member.size)))
            else:
                tar.addfile(info, io.BytesIO(member.data))
    return raw.getvalue()


def realpath_overflow_chain(dest: Path) -> list[Member]:
    """CPython's ``test_realpath_limit_attack`` (CVE-2025-4517) member chain, aimed at ``dest``'s parent.

    Symlinks through directories whose names are sized so that the unexpanded path fits in ``PATH_MAX`` but the
    expanded one does not: ``os.path.realpath`` stops resolving there, so ``filter="data"`` sees ``escape`` as
    inside ``dest`` while it is ``dest/..``; a hard link through it then overwrites ``../flag`` and a file
    lands in ``../newfile``.
    """
    steps = "abcdefghijklmnop"
    max_path = os.pathconf(dest.parent, "PC_PATH_MAX")
    component = "d" * ((max_path - len(str(dest)) - 1) // (len(steps) + 1))
    chain: list[Member] = []
    path = ""
    for step in steps:
        chain.append(Member(os.path.join(path, component), tarfile.DIRTYPE, mode=0o777))
        chain.append(Member(os.path.join(path, step), tarfile.SYMTYPE, link=component))
        path = os.path.join(path, component)
    linkpath = os.path.join(*steps, "l" * 254)
    chain += [
        Member(linkpath, tarfile.SYMTYPE, link=os.path.join(*[".."] * len(steps))),
        Member("escape", tarfile.SYMTYPE, link=os.path.join(linkpath, "..")),
        Member("flaglink", tarfile.LNKTYPE, link=os.path.join("escape", "flag")),
        Member("flaglink", data=b"overwrite"),
        Member("escape/newfile", data=b"new"),
    ]
    return chain


def rebuilt(original: bytes, changed: dict[str, bytes | Member]) -> bytes:
    """``original`` (a tarball the sandbox made, so trusted here) with the members named in ``changed`` replaced
    (or added at the end): bytes for a file, a :class:`Member` for anything else."""
    members: list[Member] = []
    with tarfile.open(fileobj=io.BytesIO(original), mode="r:gz") as tar:
        for info in tar:
            if info.name in changed:
                continue
            source = tar.extractfile(info) if info.isfile() else None
            members.append(Member(info.name, info.type, source.read() if source else b"", info.mode, info.linkname))
    members += [value if isinstance(value, Member) else Member(name, data=value) for name, value in changed.items()]
    return build(members)
